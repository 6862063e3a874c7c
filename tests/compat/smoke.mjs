// node-redis (RESP3 and default) and ioredis (default) against a running limitkv.
// Usage: node smoke.mjs PORT. Exits non-zero on the first mismatch.
import { createClient } from 'redis';
import Redis from 'ioredis';
import assert from 'node:assert/strict';

const port = Number(process.argv[2]);

for (const RESP of [3, undefined]) {
  const c = createClient({ url: `redis://127.0.0.1:${port}`, RESP });
  c.on('error', (e) => { console.error('node-redis error', e); process.exit(1); });
  await c.connect();
  await c.flushAll();
  assert.equal(await c.ping(), 'PONG');
  assert.equal(await c.set('a', '1', { EX: 10 }), 'OK');
  assert.equal(await c.get('a'), '1');
  assert.equal(await c.incr('n'), 1);
  assert.equal(await c.ttl('a'), 10);
  assert.deepEqual(await c.sendCommand(['CL.THROTTLE', 'u', '15', '30', '60']), [0, 16, 15, -1, 2]);
  assert.match(await c.info('server'), /redis_version:7\.4\.0/);
  await assert.rejects(c.get('u'), /WRONGTYPE/);
  await c.close();
}

const r = new Redis({ port });
assert.equal(await r.ping(), 'PONG');
assert.equal(await r.set('b', '2', 'EX', 5), 'OK');
assert.equal(await r.get('b'), '2');
assert.deepEqual(await r.call('CL.THROTTLE', 'v', '15', '30', '60'), [0, 16, 15, -1, 2]);
const results = await r.pipeline().incr('p').incr('p').get('p').exec();
assert.deepEqual(results.map(([, v]) => v), [1, 2, '2']);
r.disconnect();
console.log('node-redis + ioredis smoke: ok');
