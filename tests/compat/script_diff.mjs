// Each recorded rate-limiter-flexible and rate-limit-redis script, run by the server (SCRIPT LOAD
// + EVALSHA), against its client-side emulation (emulate.mjs), on the same server: same starting
// keys in two namespaces, then the replies and the resulting keys (type, value, TTL within
// 100 ms) must be equal. The Node half of script_diff.py (which covers limits); see there.
// Needs EVAL.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createClient } from 'redis';
import { finish, runId, scenario, serverHasEval, url } from './harness.mjs';
import { implementation, nodeRedisCall } from './emulate.mjs';

const SCRIPTS = process.env.COMPAT_SCRIPTS_DIR || new URL('./scripts', import.meta.url).pathname;
const TTL_SLACK_MS = 100;

// [script file, description, setup commands, keys, args, indexes of ms TTLs in the reply]
const CASES = [
  ['rate-limiter-flexible-incr-ttl.lua', 'fresh key', [], ['{1}'], ['1', '60', '5', '60'], [1]],
  ['rate-limiter-flexible-incr-ttl.lua', 'counting key keeps its expiry', [['SET', '{1}', '3', 'EX', '30']], ['{1}'], ['2', '60', '5', '60'], [1]],
  ['rate-limiter-flexible-incr-ttl.lua', 'key without expiry gets one', [['SET', '{1}', '4']], ['{1}'], ['1', '60', '5', '60'], [1]],
  ['rate-limiter-flexible-incr-ttl.lua', 'reward below zero', [], ['{1}'], ['-2', '60', '5', '60'], [1]],
  ['rate-limiter-flexible-incr-ttl.lua', 'wrong type', [['RPUSH', '{1}', 'x']], ['{1}'], ['1', '60', '5', '60'], []],
  ['rate-limiter-flexible-incr-ttl.lua', 'not an integer', [['SET', '{1}', 'abc']], ['{1}'], ['1', '60', '5', '60'], []],
  ['rate-limit-redis-increment.lua', 'fresh key', [], ['{1}'], ['1000'], [1]],
  ['rate-limit-redis-increment.lua', 'counting key', [['SET', '{1}', '2', 'PX', '800']], ['{1}'], ['1000'], [1]],
  ['rate-limit-redis-increment.lua', 'key without expiry restarts at 1', [['SET', '{1}', '7']], ['{1}'], ['1000'], [1]],
  ['rate-limit-redis-increment.lua', 'wrong type', [['SET', '{1}', 'x', 'PX', '800']], ['{1}'], ['1000'], []],
  ['rate-limit-redis-get.lua', 'unknown key', [], ['{1}'], [], [1]],
  ['rate-limit-redis-get.lua', 'counting key', [['SET', '{1}', '2', 'PX', '800']], ['{1}'], [], [1]],
];

const expand = (t, ns) => t.replaceAll('{1}', `${ns}:k1`);

async function outcome(fn) {
  try {
    return { reply: await fn() };
  } catch (e) {
    if (!e || typeof e.message !== 'string' || e.constructor.name === 'AssertionError') throw e;
    return { error: e.message.split(' ')[0] };
  }
}

function sameReply(a, b, ttlPositions) {
  if ('error' in a || 'error' in b) return a.error === b.error;
  if (!Array.isArray(a.reply)) return JSON.stringify(a.reply) === JSON.stringify(b.reply);
  return Array.isArray(b.reply) && a.reply.length === b.reply.length && a.reply.every((v, i) => (
    ttlPositions.includes(i) && v > 0 && b.reply[i] > 0 ? Math.abs(v - b.reply[i]) <= TTL_SLACK_MS : v === b.reply[i]));
}

async function keyspace(c, ns) {
  const state = {};
  for (const key of (await c.keys(`${ns}:*`)).sort()) {
    const type = await c.type(key);
    const value = type === 'string' ? await c.get(key) : type === 'list' ? await c.lRange(key, 0, -1) : null;
    state[key.slice(ns.length)] = { type, value, ttl: await c.pTTL(key) };
  }
  return state;
}

function sameState(a, b) {
  const ka = Object.keys(a);
  return JSON.stringify(ka) === JSON.stringify(Object.keys(b)) && ka.every((k) => (
    a[k].type === b[k].type && JSON.stringify(a[k].value) === JSON.stringify(b[k].value)
    && (a[k].ttl === b[k].ttl || (a[k].ttl > 0 && b[k].ttl > 0 && Math.abs(a[k].ttl - b[k].ttl) <= TTL_SLACK_MS))));
}

if (!(await serverHasEval())) {
  await scenario('script diff: Node libraries\' scripts, server vs emulation', { needsEval: true }, async () => {});
} else {
  const c = createClient({ url });
  await c.connect();
  const index = readFileSync(`${SCRIPTS}/index.tsv`, 'utf8').split('\n').slice(1).filter(Boolean)
    .map((l) => l.split('\t'));
  const shaOf = Object.fromEntries(index.map(([file, , , sha]) => [file, sha]));
  let n = 0;
  for (const [file, what, setup, keys, args, ttlPositions] of CASES) {
    n += 1;
    await scenario(`script diff: ${file} ${what}`, {}, async () => {
      const body = readFileSync(`${SCRIPTS}/${file}`, 'utf8');
      const sha = await c.scriptLoad(body);
      assert.equal(sha, shaOf[file], 'SCRIPT LOAD digest vs index.tsv');
      const results = [];
      const states = [];
      for (const side of ['server', 'emulated']) {
        const ns = `${runId}:diff:${n}:${side}`;
        for (const cmd of setup) await c.sendCommand(cmd.map((a) => expand(a, ns)));
        const ks = keys.map((k) => expand(k, ns));
        results.push(await outcome(() => (side === 'server'
          ? c.sendCommand(['EVALSHA', sha, String(ks.length), ...ks, ...args])
          : implementation(sha)(nodeRedisCall(c), ks, args))));
        states.push(await keyspace(c, ns));
      }
      assert.ok(sameReply(results[0], results[1], ttlPositions),
        `reply: server ${JSON.stringify(results[0])}, emulated ${JSON.stringify(results[1])}`);
      assert.ok(sameState(states[0], states[1]),
        `keys: server ${JSON.stringify(states[0])}, emulated ${JSON.stringify(states[1])}`);
    });
  }
  await c.close();
}

finish();
