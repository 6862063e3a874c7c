// COMPAT_EMULATE_SCRIPTS=1: the Node libraries' Lua scripts run on the client instead, as the
// same sequence of plain commands (not atomic, which a single test client does not notice). This
// exercises every command the scripts call, with the scripts' exact arguments, on a server that
// has no EVAL yet, and pins the scripts' semantics (tests/compat/scripts/README.md) in code.
// Against redis-server the same scenarios must pass with and without emulation.
import { createHash } from 'node:crypto';

export const emulating = process.env.COMPAT_EMULATE_SCRIPTS === '1';

const sha1 = (s) => createHash('sha1').update(s).digest('hex');

// Lua's tonumber() of a command argument, and Redis's conversion of a Lua number reply (truncation).
const num = (v) => Number(v);
const luaInt = (n) => Math.trunc(n);

/// The script implementations by SHA1 of the exact text the library sends (so a library upgrade
/// that changes a script fails with "no emulation for script" instead of emulating stale code): (call, keys, argv) => reply, `call(...args)` sending one
/// command and resolving with its reply (integers as numbers, nil as null, errors thrown).
const IMPLEMENTATIONS = {
  // rate-limiter-flexible-incr-ttl.lua
  a1de965f42e177aa339706bd580f049065eca79a: async (call, [key], [points, secs]) => {
    await call('set', key, '0', 'EX', secs, 'NX');
    const consumed = await call('incrby', key, points);
    let ttl = await call('pttl', key);
    if (ttl === -1) {
      await call('expire', key, secs);
      ttl = luaInt(1000 * num(secs));
    }
    return [consumed, ttl];
  },
  // rate-limit-redis-increment.lua
  '895b92e1712734e1b464999be23953485475357b': async (call, [key], [windowMs]) => {
    const w = num(windowMs);
    const timeToExpire = await call('PTTL', key);
    if (timeToExpire <= 0) {
      await call('SET', key, '1', 'PX', String(w));
      return [1, luaInt(w)];
    }
    return [await call('INCR', key), timeToExpire];
  },
  // rate-limit-redis-get.lua
  '6aeb97ed6086dcdeafdc6fda3999a0d0e38ec96a': async (call, [key]) => [await call('GET', key), await call('PTTL', key)],
};

export function implementation(scriptOrSha) {
  const sha = /^[0-9a-f]{40}$/.test(scriptOrSha) ? scriptOrSha : sha1(scriptOrSha);
  const impl = IMPLEMENTATIONS[sha];
  if (!impl) throw new Error(`no emulation for script ${sha}`);
  return impl;
}

/// A `call` for ioredis: replies as ioredis gives them (integers as numbers).
export const ioredisCall = (client) => (...args) => client.call(...args.map(String));

/// A `call` for node-redis.
export const nodeRedisCall = (client) => (...args) => client.sendCommand(args.map(String));

/// Wraps a rate-limit-redis `sendCommand(...args)` so SCRIPT LOAD answers the digest without
/// the server and EVALSHA runs the emulation; other commands pass through.
export function emulatedSendCommand(sendCommand) {
  const call = (...args) => sendCommand(...args.map(String));
  return async (...args) => {
    const name = String(args[0]).toUpperCase();
    if (name === 'SCRIPT' && String(args[1]).toUpperCase() === 'LOAD') {
      implementation(args[2]);
      return sha1(args[2]);
    }
    if (name === 'EVALSHA') {
      const numkeys = Number(args[2]);
      return implementation(args[1])(call, args.slice(3, 3 + numkeys), args.slice(3 + numkeys));
    }
    return sendCommand(...args);
  };
}

/// Makes a RateLimiterRedis run its script on the client: ioredis's defined command
/// (`rlflxIncr`) or node-redis's `eval`.
export function emulateRateLimiter(limiter, client, kind) {
  if (kind === 'ioredis') {
    const impl = implementation(limiter._incrTtlLuaScript);
    client.rlflxIncr = ([key, ...argv]) => impl(ioredisCall(client), [key], argv);
  } else if (!client.__emulated) {
    client.__emulated = true;
    client.eval = (script, { keys, arguments: argv }) => implementation(script)(nodeRedisCall(client), keys, argv);
  }
}
