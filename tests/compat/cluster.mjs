// ioredis's Cluster client, then node-redis's createCluster with rate-limit-redis, against three
// limitkv nodes in cluster mode (docs/cluster.md).
// Usage: node cluster.mjs PORT1 PORT2 PORT3 (slots 0-5460, 5461-10922, 10923-16383; policy
// `free RATE 3/1m QUOTA 5/day` pushed by `limitkv cluster apply`). Exits non-zero on a mismatch.
import Redis from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { RedisStore } from 'rate-limit-redis';
import { createCluster } from 'redis';
import assert from 'node:assert/strict';

const ports = process.argv.slice(2, 5).map(Number);
const cluster = new Redis.Cluster([{ host: '127.0.0.1', port: ports[0] }]);

// CL.THROTTLE key 4 10 60: 5 of 8 quick calls admitted per key; ioredis does not know the
// command's key, so it sends it anywhere and follows MOVED. Keys and identities of their own:
// run.sh runs cluster.py against the same three nodes first.
let admitted = 0;
for (let i = 0; i < 30; i++) {
  for (let j = 0; j < 8; j++) {
    const r = await cluster.call('CL.THROTTLE', `io-user:${i}`, '4', '10', '60');
    if (r[0] === 0) admitted++;
  }
}
assert.equal(admitted, 150, 'CL.THROTTLE admitted');
const sizes = await Promise.all(cluster.nodes('master').map((n) => n.dbsize()));
assert.equal(sizes.length, 3, 'three masters');
assert.ok(sizes.every((n) => n > 0), `keys on every node: ${sizes}`);

let allowed = 0;
for (let i = 0; i < 12; i++) {
  for (let j = 0; j < 5; j++) {
    const reply = await cluster.call('LIMIT.CHECK', 'free', `io-customer-${i}`);
    const fields = Object.fromEntries(reply.flatMap((v, k) => (k % 2 ? [] : [[v, reply[k + 1]]])));
    if (fields.allowed === 1) allowed++;
  }
}
assert.equal(allowed, 36, 'LIMIT.CHECK allowed');

// A transaction on hash-tagged keys (INCR first: ioredis takes the slot from known commands).
const tx = cluster.multi().incr('{acct-9}:calls');
for (let i = 0; i < 4; i++) tx.call('CL.THROTTLE', '{acct-9}:api', '2', '10', '60');
const results = await tx.exec();
assert.equal(results[0][1], 1, 'MULTI incr');
assert.equal(results.slice(1).filter(([, r]) => r[0] === 0).length, 3, 'MULTI admitted');
// rate-limiter-flexible on the cluster client: 5 points per 60 s for each of 6 users spread
// over the nodes, the 6th to 8th consume of each rejected.
const rl = new RateLimiterRedis({ storeClient: cluster, points: 5, duration: 60, keyPrefix: `rlf${Date.now()}` });
let consumed = 0;
for (let u = 0; u < 6; u++) {
  for (let i = 0; i < 8; i++) {
    try {
      await rl.consume(`user-${u}`);
      consumed++;
    } catch (e) {
      if (!(e && typeof e.msBeforeNext === 'number')) throw e;
    }
  }
}
assert.equal(consumed, 30, 'rate-limiter-flexible consumed');
await cluster.quit();

// rate-limit-redis on node-redis's cluster client, as its README sets it up for a cluster
// (sendCommandCluster routes each script load and EVALSHA by key): 5 hits per window for each
// of 6 clients, the 6th to 8th hit of each over the limit.
const nr = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${ports[1]}` }] });
await nr.connect();
const store = new RedisStore({
  sendCommandCluster: ({ key, isReadOnly, command }) => nr.sendCommand(key, isReadOnly, command),
  prefix: `rlr${Date.now()}:`,
});
await store.init({ windowMs: 60_000 });
let within = 0;
for (let u = 0; u < 6; u++) {
  for (let i = 0; i < 8; i++) {
    const { totalHits } = await store.increment(`client-${u}`);
    if (totalHits <= 5) within++;
  }
}
assert.equal(within, 30, 'rate-limit-redis hits within the limit');
// A reservation through node-redis's cluster client: the tagged id routes the settle.
const reserved = await nr.sendCommand('nr-reserver', false, ['LIMIT.RESERVE', 'free', 'nr-reserver']);
const rfields = Object.fromEntries(
  Array.isArray(reserved) ? reserved.flatMap((v, k) => (k % 2 ? [] : [[String(v), reserved[k + 1]]])) : Object.entries(reserved),
);
const rid = String(rfields.reservation);
assert.ok(rid.startsWith('{nr-reserver}'), `tagged reservation id: ${rid}`);
const settled = await nr.sendCommand(rid, false, ['LIMIT.SETTLE', rid]);
assert.ok(JSON.stringify(settled).includes('settle'), `settled: ${JSON.stringify(settled)}`);
await nr.close();
console.log('all cluster checks passed');
