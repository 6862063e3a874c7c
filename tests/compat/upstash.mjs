// @upstash/redis and @upstash/ratelimit, unchanged, against limitkv's Upstash-compatible REST API
// on its HTTP listener (COMPAT_HTTP_PORT; every scenario is skipped without it, e.g. against
// redis-server, which has no REST API). The client talks JSON over HTTP with its defaults:
// `Upstash-Encoding: base64` replies, read-your-writes sync tokens, EVALSHA with an EVAL
// fallback for the rate-limit scripts (which carry Upstash's `allow-key-locking` flag).
import assert from 'node:assert/strict';
import { Redis } from '@upstash/redis';
import { Ratelimit } from '@upstash/ratelimit';
import { finish, host, runId, scenario } from './harness.mjs';

const httpPort = process.env.COMPAT_HTTP_PORT;
const skip = httpPort ? undefined : 'no COMPAT_HTTP_PORT (the server has no Upstash REST API)';
const restUrl = `http://${host}:${httpPort}`;
// The default user has no password here: any token is accepted, as the RESP port accepts any
// connection. The token is still sent, as with Upstash.
const redis = new Redis({ url: restUrl, token: 'unused', enableTelemetry: false });
const key = (name) => `${runId}:upstash:${name}`;

await scenario('upstash-redis set/get/incr/del (base64 replies)', { skip }, async () => {
  assert.equal(await redis.set(key('s'), 'héllo wörld'), 'OK');
  assert.equal(await redis.get(key('s')), 'héllo wörld');
  assert.equal(await redis.incr(key('n')), 1);
  assert.equal(await redis.incrby(key('n'), 41), 42);
  // Automatic JSON deserialization, as with Upstash.
  await redis.set(key('j'), { a: 1, b: ['x'] });
  assert.deepEqual(await redis.get(key('j')), { a: 1, b: ['x'] });
  assert.equal(await redis.get(key('missing')), null);
  await redis.hset(key('h'), { f: 'v', g: 2 });
  assert.deepEqual(await redis.hgetall(key('h')), { f: 'v', g: 2 });
  assert.equal(await redis.del(key('s'), key('n'), key('j'), key('h')), 4);
  assert.equal(await redis.ping(), 'PONG');
});

await scenario('upstash-redis without base64 (responseEncoding: false)', { skip }, async () => {
  const plain = new Redis({ url: restUrl, token: 'unused', responseEncoding: false, enableTelemetry: false });
  await plain.set(key('p'), 'plain');
  assert.equal(await plain.get(key('p')), 'plain');
  assert.deepEqual(await plain.mget(key('p'), key('nope')), ['plain', null]);
});

await scenario('upstash-redis errors surface as UpstashError', { skip }, async () => {
  await redis.set(key('str'), 'abc');
  await assert.rejects(redis.incr(key('str')), /ERR value is not an integer or out of range/);
  await assert.rejects(redis.hget(key('str'), 'f'), /WRONGTYPE/);
});

await scenario('upstash-redis pipeline', { skip }, async () => {
  const p = redis.pipeline();
  p.set(key('pa'), 1);
  p.incr(key('pa'));
  p.get(key('pa'));
  p.incr(key('pstr'));
  assert.deepEqual(await p.exec(), ['OK', 2, 2, 1]);
  await redis.set(key('pstr'), 'x');
  const q = redis.pipeline();
  q.incr(key('pa'));
  q.incr(key('pstr'));
  const res = await q.exec({ keepErrors: true });
  assert.equal(res[0].result, 3);
  assert.match(res[1].error, /not an integer/);
  await assert.rejects(redis.pipeline().incr(key('pstr')).exec(), /Command 1 \[ incr \] failed/);
});

await scenario('upstash-redis multi (MULTI/EXEC)', { skip }, async () => {
  const tx = redis.multi();
  tx.set(key('m'), 'v');
  tx.incr(key('mc'));
  tx.incr(key('mc'));
  tx.get(key('m'));
  assert.deepEqual(await tx.exec(), ['OK', 1, 2, 'v']);
});

await scenario('upstash-redis ACL user by user:password token', { skip }, async () => {
  const user = `${runId}-ro`.replace(/:/g, '-');
  assert.equal(await redis.exec(['ACL', 'SETUSER', user, 'on', '>ro-pw', '+@read', '~*']), 'OK');
  const ro = new Redis({ url: restUrl, token: `${user}:ro-pw`, enableTelemetry: false });
  await redis.set(key('acl'), 'x');
  assert.equal(await ro.get(key('acl')), 'x');
  await assert.rejects(ro.set(key('acl'), 'y'), /NOPERM/);
  const wrong = new Redis({ url: restUrl, token: `${user}:nope`, enableTelemetry: false, retry: false });
  await assert.rejects(wrong.get(key('acl')), /WRONGPASS/);
  await redis.exec(['ACL', 'DELUSER', user]);
});

/// Calls `limit` limit + 1 times on a fresh identifier: admits exactly `limit` with `remaining`
/// counting down to 0, then denies.
async function admitsExactly(limiter, limit, name) {
  const id = `${runId}:${name}`;
  for (let i = 1; i <= limit; i++) {
    const r = await limiter.limit(id);
    await r.pending;
    assert.equal(r.success, true, `${name}: request ${i} admitted`);
    assert.equal(r.limit, limit, `${name}: limit`);
    assert.equal(r.remaining, limit - i, `${name}: remaining after request ${i}`);
    assert.ok(r.reset > Date.now() - 1000, `${name}: reset ${r.reset} is not in the past`);
  }
  const denied = await limiter.limit(id);
  await denied.pending;
  assert.equal(denied.success, false, `${name}: request ${limit + 1} denied`);
  assert.equal(denied.remaining, 0, `${name}: remaining when denied`);
  const left = await limiter.getRemaining(id);
  assert.equal(left.remaining, 0, `${name}: getRemaining`);
}

const limiter = (algorithm, name) =>
  new Ratelimit({ redis, limiter: algorithm, prefix: `${runId}:rl:${name}`, analytics: false, ephemeralCache: false });

await scenario('upstash-ratelimit fixedWindow(5, "10 s")', { skip }, async () => {
  await admitsExactly(limiter(Ratelimit.fixedWindow(5, '10 s'), 'fixed'), 5, 'fixed');
});

await scenario('upstash-ratelimit slidingWindow(10, "10 s")', { skip }, async () => {
  await admitsExactly(limiter(Ratelimit.slidingWindow(10, '10 s'), 'sliding'), 10, 'sliding');
});

await scenario('upstash-ratelimit tokenBucket(1, "10 s", 5)', { skip }, async () => {
  await admitsExactly(limiter(Ratelimit.tokenBucket(1, '10 s', 5), 'bucket'), 5, 'bucket');
});

await scenario('upstash-ratelimit resetUsedTokens admits again', { skip }, async () => {
  const rl = limiter(Ratelimit.fixedWindow(2, '10 s'), 'reset');
  const id = `${runId}:reset`;
  for (let i = 0; i < 2; i++) assert.equal((await rl.limit(id)).success, true);
  assert.equal((await rl.limit(id)).success, false);
  await rl.resetUsedTokens(id);
  assert.equal((await rl.limit(id)).success, true);
});

finish();
