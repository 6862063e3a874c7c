// ioredis (`tls` option) and node-redis (`rediss://`) against the TLS port of a running server.
// Environment (set by run.sh): COMPAT_TLS_PORT, COMPAT_PORT (the same server's plain port),
// COMPAT_TLS_DIR (ca.crt, client.crt, client.key), COMPAT_TLS_SERVER (limitkv or redis).
// The server runs with `tls-auth-clients optional`.
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { createClient } from 'redis';
import { finish, host, port, runId, scenario } from './harness.mjs';

const tlsPort = Number(process.env.COMPAT_TLS_PORT);
const dir = process.env.COMPAT_TLS_DIR;
const limitkv = (process.env.COMPAT_TLS_SERVER || 'limitkv') === 'limitkv';
const ca = fs.readFileSync(path.join(dir, 'ca.crt'));
const tls = { ca, servername: 'localhost' };
// No reconnection: a failed connection is reported, not retried forever.
const once = { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5000 };

await scenario('ioredis tls: commands and a pipeline', {}, async () => {
  const r = new Redis({ host, port: tlsPort, tls, ...once });
  await r.connect();
  const key = `${runId}:tls`;
  assert.equal(await r.ping(), 'PONG');
  assert.equal(await r.set(key, '2', 'EX', 5), 'OK');
  assert.equal(await r.get(key), '2');
  const results = await r.pipeline().incr(`${key}:n`).incr(`${key}:n`).get(`${key}:n`).exec();
  assert.deepEqual(results.map(([, v]) => v), [1, 2, '2']);
  r.disconnect();
});

await scenario('ioredis tls: CL.THROTTLE', { skip: limitkv ? undefined : "limitkv's own command" }, async () => {
  const r = new Redis({ host, port: tlsPort, tls, ...once });
  await r.connect();
  assert.deepEqual(await r.call('CL.THROTTLE', `${runId}:tls:v`, '15', '30', '60'), [0, 16, 15, -1, 2]);
  r.disconnect();
});

await scenario('ioredis tls with a client certificate', {}, async () => {
  const r = new Redis({
    host,
    port: tlsPort,
    tls: { ...tls, cert: fs.readFileSync(path.join(dir, 'client.crt')), key: fs.readFileSync(path.join(dir, 'client.key')) },
    ...once,
  });
  await r.connect();
  assert.equal(await r.ping(), 'PONG');
  r.disconnect();
});

await scenario('ioredis tls on the plain port fails', {}, async () => {
  const r = new Redis({ host, port, tls, ...once });
  r.on('error', () => {});
  await assert.rejects(r.connect());
  r.disconnect();
  const plain = new Redis({ host, port, ...once });
  await plain.connect();
  assert.equal(await plain.ping(), 'PONG');
  plain.disconnect();
});

await scenario('node-redis rediss:// (RESP3)', {}, async () => {
  const c = createClient({ url: `rediss://${host}:${tlsPort}`, RESP: 3, socket: { tls: true, ca, servername: 'localhost', reconnectStrategy: false } });
  c.on('error', () => {});
  await c.connect();
  assert.equal(await c.ping(), 'PONG');
  assert.equal(await c.incr(`${runId}:tls:nr`), 1);
  await c.close();
});

finish();
