// The restart scenario for the Node libraries: limiters count, the server restarts (with its
// append-only file on), the same client objects go on counting. Asserts that the counts and
// expiries continue and, when COMPAT_SCRIPTS_PERSIST=1 (limitkv), that no NOSCRIPT reply reaches
// any library (the libraries would hide it by reloading the script, so every client's replies are
// watched) and that SCRIPT EXISTS still knows every script sent before the restart.
// redis-server forgets its scripts on restart: against it the NOSCRIPT count is only reported.
//
// Needs COMPAT_RESTART (a shell command that restarts the server, from run.sh) and EVAL.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import Redis from 'ioredis';
import { createClient } from 'redis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { assertBetween, finish, host, port, restartServer, runId, scenario, serverHasEval, url } from './harness.mjs';
import { emulatedSendCommand, emulateRateLimiter, emulating } from './emulate.mjs';

const expectPersist = process.env.COMPAT_SCRIPTS_PERSIST === '1';
const noscript = { ioredis: 0, 'node-redis': 0 };
const scriptsSent = new Set();

/// Counts the NOSCRIPT errors ioredis receives (its script helper retries them with EVAL, so the
/// caller never sees one) and records every script body it sends.
function watchIoredis(client) {
  const send = client.sendCommand.bind(client);
  client.sendCommand = (command, stream) => {
    const reject = command.reject;
    command.reject = (err) => {
      if (/NOSCRIPT/.test(err?.message)) noscript.ioredis += 1;
      reject.call(command, err);
    };
    return send(command, stream);
  };
}

function remember(args) {
  const name = String(args[0]).toUpperCase();
  if (name === 'EVAL') scriptsSent.add(String(args[1]));
  if (name === 'SCRIPT' && String(args[1]).toUpperCase() === 'LOAD') scriptsSent.add(String(args[2]));
}

let skip = null;
if (!process.env.COMPAT_RESTART) skip = 'COMPAT_RESTART is not set (run it through tests/compat/run.sh)';

if (skip || !(emulating || (await serverHasEval()))) {
  await scenario('restart: limiters continue across a server restart (Node libraries)', { needsEval: true, skip }, async () => {});
} else {
  const ioredis = new Redis({ host, port });
  watchIoredis(ioredis);
  const nodeRedis = createClient({ url });
  nodeRedis.on('error', () => {}); // the restart drops the connection; node-redis reconnects
  await nodeRedis.connect();
  const origEval = nodeRedis.eval.bind(nodeRedis);
  nodeRedis.eval = (script, opts) => {
    scriptsSent.add(script);
    return origEval(script, opts);
  };

  const sendVia = {
    'node-redis': async (...args) => {
      remember(args);
      try {
        return await nodeRedis.sendCommand(args);
      } catch (e) {
        if (/^NOSCRIPT/.test(e.message)) noscript['node-redis'] += 1;
        throw e;
      }
    },
    ioredis: (command, ...args) => {
      remember([command, ...args]);
      return ioredis.call(command, ...args);
    },
  };

  const limiters = {
    ioredis: new RateLimiterRedis({ storeClient: ioredis, keyPrefix: `${runId}:restart:io`, points: 10, duration: 60 }),
    'node-redis': new RateLimiterRedis({
      storeClient: nodeRedis, useRedisPackage: true, keyPrefix: `${runId}:restart:nr`, points: 10, duration: 60,
    }),
  };
  // ioredis's defineCommand sends EVAL with the body on a new connection, then EVALSHA.
  scriptsSent.add(limiters.ioredis._incrTtlLuaScript);
  if (emulating) {
    emulateRateLimiter(limiters.ioredis, ioredis, 'ioredis');
    emulateRateLimiter(limiters['node-redis'], nodeRedis, 'node-redis');
  }

  const apps = {};
  for (const [name, sendCommand] of Object.entries(sendVia)) {
    const limiter = rateLimit({
      windowMs: 60000, limit: 5, standardHeaders: 'draft-6', legacyHeaders: false,
      keyGenerator: () => 'restart',
      store: new RedisStore({
        sendCommand: emulating ? emulatedSendCommand(sendCommand) : sendCommand,
        prefix: `${runId}:restart:express:${name}:`,
      }),
    });
    const app = express().use(limiter).get('/', (_req, res) => res.send('ok'));
    const server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    apps[name] = { base: `http://127.0.0.1:${server.address().port}`, server };
  }
  const hit = async (name) => {
    const res = await fetch(apps[name].base);
    return { status: res.status, remaining: Number(res.headers.get('ratelimit-remaining')) };
  };

  const before = {};
  for (const name of Object.keys(limiters)) {
    for (let i = 0; i < 3; i += 1) before[`rlflex ${name}`] = await limiters[name].consume('user');
    before[`express ${name}`] = [await hit(name), await hit(name)];
  }

  // Only the NOSCRIPT replies after the restart count (none are expected before it either:
  // rate-limit-redis loads its scripts at start and ioredis sends EVAL first on a connection).
  noscript.ioredis = 0;
  noscript['node-redis'] = 0;
  await restartServer();

  for (const name of Object.keys(limiters)) {
    await scenario(`restart: rate-limiter-flexible/${name} counts continue`, {}, async () => {
      assert.equal(before[`rlflex ${name}`].consumedPoints, 3, 'before the restart');
      const res = await limiters[name].consume('user');
      assert.equal(res.consumedPoints, 4, 'consumedPoints after the restart');
      assert.equal(res.remainingPoints, 6);
      assertBetween(res.msBeforeNext, 40000, 60000, 'the expiry survived the restart');
    });
    await scenario(`restart: express-rate-limit+rate-limit-redis/${name} counts continue`, {}, async () => {
      assert.deepEqual(before[`express ${name}`], [{ status: 200, remaining: 4 }, { status: 200, remaining: 3 }]);
      assert.deepEqual(await hit(name), { status: 200, remaining: 2 }, 'after the restart');
    });
  }

  await scenario('restart: no NOSCRIPT reached the libraries, SCRIPT EXISTS knows their scripts', {
    skip: emulating ? 'scripts are emulated on the client (COMPAT_EMULATE_SCRIPTS=1)'
      : expectPersist ? null : `server does not keep scripts across restarts; NOSCRIPT seen after it: ${JSON.stringify(noscript)}`,
  }, async () => {
    assert.deepEqual(noscript, { ioredis: 0, 'node-redis': 0 }, 'NOSCRIPT replies received by the clients');
    const shas = [...scriptsSent].map((s) => createHash('sha1').update(s).digest('hex'));
    assert.ok(shas.length >= 3, `scripts sent: ${shas.length}`);
    assert.deepEqual(await nodeRedis.scriptExists(shas), shas.map(() => 1), `SCRIPT EXISTS ${shas.join(' ')}`);
  });

  for (const { server } of Object.values(apps)) server.close();
  await nodeRedis.close();
  ioredis.disconnect();
}

finish();
