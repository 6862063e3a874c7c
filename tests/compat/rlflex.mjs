// rate-limiter-flexible's RateLimiterRedis (no insuranceLimiter, so every server error reaches the
// caller) with ioredis, node-redis (RESP2) and node-redis (RESP3) against COMPAT_HOST:COMPAT_PORT.
//
// RateLimiterRedis talks to the server in two ways:
//   - duration > 0: its Lua script (EVALSHA, falling back to EVAL, with ioredis; EVAL with
//     node-redis); those scenarios need EVAL and are skipped on a server without it;
//   - duration 0 (points never expire), block(), set() and get(): MULTI ... EXEC with SET/INCRBY/
//     GET/PTTL, and delete(): DEL. Those run everywhere.
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { createClient } from 'redis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { assertBetween, finish, host, port, runId, scenario, sleep, url } from './harness.mjs';
import { emulateRateLimiter, emulating } from './emulate.mjs';

async function clients() {
  const ioredis = new Redis({ host, port, lazyConnect: true });
  await ioredis.connect();
  const nodeRedis2 = createClient({ url, RESP: 2 });
  const nodeRedis3 = createClient({ url, RESP: 3 });
  for (const c of [nodeRedis2, nodeRedis3]) {
    c.on('error', (e) => console.error(`node-redis error: ${e.message}`));
    await c.connect();
  }
  return [
    { name: 'ioredis', client: ioredis, opts: {}, close: () => ioredis.quit() },
    { name: 'node-redis-resp2', client: nodeRedis2, opts: { useRedisPackage: true }, close: () => nodeRedis2.close() },
    { name: 'node-redis-resp3', client: nodeRedis3, opts: { useRedisPackage: true }, close: () => nodeRedis3.close() },
  ];
}

/// Resolves with the RateLimiterRes of a consume that must be rejected (a rejection that is an
/// Error, i.e. a server or client failure, fails the scenario).
async function denied(promise) {
  try {
    const res = await promise;
    assert.fail(`expected a denial, got an allowance: ${JSON.stringify(res)}`);
  } catch (e) {
    if (!(e instanceof RateLimiterRes)) throw e;
    return e;
  }
}

function expectRes(res, { consumed, remaining, first }) {
  assert.ok(res instanceof RateLimiterRes, `not a RateLimiterRes: ${res}`);
  assert.equal(res.consumedPoints, consumed, 'consumedPoints');
  assert.equal(res.remainingPoints, remaining, 'remainingPoints');
  if (first !== undefined) assert.equal(res.isFirstInDuration, first, 'isFirstInDuration');
}

for (const c of await clients()) {
  let n = 0;
  const limiter = (opts) => {
    const rl = new RateLimiterRedis({ storeClient: c.client, keyPrefix: `${runId}:${c.name}:${(n += 1)}`, ...c.opts, ...opts });
    if (emulating) emulateRateLimiter(rl, c.client, c.name === 'ioredis' ? 'ioredis' : 'node-redis');
    return rl;
  };
  const name = (s) => `rate-limiter-flexible/${c.name}: ${s}`;

  await scenario(name('consume counts points exactly within duration'), { needsEval: true }, async () => {
    const rl = limiter({ points: 5, duration: 60 });
    for (let i = 1; i <= 5; i += 1) {
      const res = await rl.consume('user');
      expectRes(res, { consumed: i, remaining: 5 - i, first: i === 1 });
      assertBetween(res.msBeforeNext, 59000, 60000, 'msBeforeNext');
    }
    const res = await denied(rl.consume('user'));
    expectRes(res, { consumed: 6, remaining: 0, first: false });
    assertBetween(res.msBeforeNext, 59000, 60000, 'msBeforeNext of the denial');
    // Several points at once: a fresh key takes 3 of 5, then 3 more are refused (6 > 5).
    expectRes(await rl.consume('bulk', 3), { consumed: 3, remaining: 2, first: true });
    expectRes(await denied(rl.consume('bulk', 3)), { consumed: 6, remaining: 0, first: false });
  });

  await scenario(name('penalty and reward move the counter both ways'), { needsEval: true }, async () => {
    const rl = limiter({ points: 5, duration: 60 });
    expectRes(await rl.penalty('user', 3), { consumed: 3, remaining: 2, first: true });
    expectRes(await rl.reward('user', 2), { consumed: 1, remaining: 4, first: false });
    expectRes(await rl.consume('user'), { consumed: 2, remaining: 3, first: false });
    // A penalty never rejects, even past the limit; the next consume does.
    expectRes(await rl.penalty('user', 5), { consumed: 7, remaining: 0 });
    expectRes(await denied(rl.consume('user')), { consumed: 8, remaining: 0 });
    // A reward on a fresh key goes negative and leaves room above the limit.
    expectRes(await rl.reward('fresh', 2), { consumed: -2, remaining: 7 });
    const g = await rl.get('fresh');
    assert.equal(g.consumedPoints, -2);
    assertBetween(g.msBeforeNext, 59000, 60000, 'msBeforeNext of get');
  });

  await scenario(name('never-expiring points (duration 0) count exactly'), {}, async () => {
    const rl = limiter({ points: 3, duration: 0 });
    for (let i = 1; i <= 3; i += 1) {
      const res = await rl.consume('user');
      expectRes(res, { consumed: i, remaining: 3 - i, first: i === 1 });
      assert.equal(res.msBeforeNext, -1, 'msBeforeNext without expiry');
    }
    const res = await denied(rl.consume('user'));
    expectRes(res, { consumed: 4, remaining: 0 });
    assert.equal(res.msBeforeNext, -1);
    expectRes(await rl.penalty('user', 2), { consumed: 6, remaining: 0 });
    expectRes(await rl.reward('user', 4), { consumed: 2, remaining: 1 });
  });

  await scenario(name('get and delete'), {}, async () => {
    const rl = limiter({ points: 5, duration: 0 });
    assert.equal(await rl.get('user'), null, 'get of an unknown key');
    await rl.consume('user');
    await rl.consume('user', 2);
    const res = await rl.get('user');
    expectRes(res, { consumed: 3, remaining: 2, first: false });
    assert.equal(res.msBeforeNext, -1);
    assert.equal(await rl.delete('user'), true, 'delete of a present key');
    assert.equal(await rl.delete('user'), false, 'delete of a deleted key');
    assert.equal(await rl.get('user'), null, 'get after delete');
    expectRes(await rl.consume('user'), { consumed: 1, remaining: 4, first: true });
  });

  await scenario(name('block and set store points with an expiry'), {}, async () => {
    const rl = limiter({ points: 3, duration: 0 });
    const blocked = await rl.block('user', 5);
    assert.equal(blocked.consumedPoints, 4, 'block stores points + 1');
    assert.equal(blocked.msBeforeNext, 5000);
    const g = await rl.get('user');
    expectRes(g, { consumed: 4, remaining: 0 });
    assertBetween(g.msBeforeNext, 4000, 5000, 'msBeforeNext of a blocked key');
    const res = await denied(rl.consume('user'));
    expectRes(res, { consumed: 5, remaining: 0 });
    assertBetween(res.msBeforeNext, 4000, 5000, 'a consume keeps the block expiry');
    // set() overwrites the points and the expiry; seconds 0 means no expiry.
    await rl.set('user', 1, 0);
    const s = await rl.get('user');
    expectRes(s, { consumed: 1, remaining: 2 });
    assert.equal(s.msBeforeNext, -1);
    await rl.set('other', 2, 7);
    assertBetween((await rl.get('other')).msBeforeNext, 6000, 7000, 'set with seconds');
  });

  await scenario(name('a block keeps its expiry under consume with a duration'), { needsEval: true }, async () => {
    const rl = limiter({ points: 3, duration: 60 });
    await rl.block('user', 5);
    const res = await denied(rl.consume('user'));
    expectRes(res, { consumed: 5, remaining: 0 });
    assertBetween(res.msBeforeNext, 4000, 5000, 'the script keeps the existing expiry');
  });

  await scenario(name('blockDuration blocks once the points are spent (duration 0)'), {}, async () => {
    const rl = limiter({ points: 2, duration: 0, blockDuration: 3 });
    await rl.consume('user');
    await rl.consume('user');
    const first = await denied(rl.consume('user'));
    expectRes(first, { consumed: 3, remaining: 0 });
    assert.equal(first.msBeforeNext, 3000, 'the denial that starts the block reports blockDuration');
    const g = await rl.get('user');
    expectRes(g, { consumed: 3, remaining: 0 });
    assertBetween(g.msBeforeNext, 2000, 3000, 'the block is stored with an expiry');
  });

  await scenario(name('blockDuration blocks once the points are spent'), { needsEval: true }, async () => {
    const rl = limiter({ points: 2, duration: 1, blockDuration: 3 });
    await rl.consume('user');
    await rl.consume('user');
    const first = await denied(rl.consume('user'));
    expectRes(first, { consumed: 3, remaining: 0 });
    assert.equal(first.msBeforeNext, 3000);
    const next = await denied(rl.consume('user'));
    expectRes(next, { consumed: 4, remaining: 0 });
    assertBetween(next.msBeforeNext, 2000, 3000, 'a later denial reports the remaining block');
  });

  await scenario(name('a server error reaches the caller (no insuranceLimiter)'), { needsEval: true }, async () => {
    const rl = limiter({ points: 2, duration: 60 });
    if (c.name === 'ioredis') await c.client.lpush(rl.getKey('user'), 'x');
    else await c.client.lPush(rl.getKey('user'), 'x');
    await assert.rejects(rl.consume('user'), (e) => e instanceof Error && /WRONGTYPE/.test(e.message));
  });

  await scenario(name('points reset after the duration (real clock, 1 s)'), { needsEval: true }, async () => {
    const rl = limiter({ points: 2, duration: 1 });
    await rl.consume('user');
    await rl.consume('user');
    const res = await denied(rl.consume('user'));
    assertBetween(res.msBeforeNext, 1, 1000, 'msBeforeNext within the duration');
    await sleep(res.msBeforeNext + 150);
    expectRes(await rl.consume('user'), { consumed: 1, remaining: 1, first: true });
  });

  await c.close();
}

finish();
