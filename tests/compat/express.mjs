// express-rate-limit with rate-limit-redis's RedisStore behind a real express app listening on a
// free loopback port, driven with fetch. The store runs through node-redis (one app) and ioredis
// (another), against COMPAT_HOST:COMPAT_PORT.
//
// RedisStore loads two Lua scripts at start (SCRIPT LOAD) and counts with EVALSHA, so every
// scenario here needs EVAL; on a server without it they are all skipped.
import assert from 'node:assert/strict';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import Redis from 'ioredis';
import { createClient } from 'redis';
import { assertBetween, finish, host, port, runId, scenario, serverHasEval, sleep, url } from './harness.mjs';
import { emulatedSendCommand, emulating } from './emulate.mjs';

const LIMIT = 3;
const WINDOW_MS = 1000;

/// Starts an express app with one rate-limited route (/) and one failing route (/fail, 500), the
/// limiter keyed on the X-Client header. Returns { base, limiter, close }.
async function startApp({ sendCommand, prefix, headers }) {
  const limiter = rateLimit({
    windowMs: WINDOW_MS,
    limit: LIMIT,
    standardHeaders: headers,
    legacyHeaders: headers === 'draft-6',
    keyGenerator: (req) => req.get('x-client') || 'anonymous',
    skipFailedRequests: true,
    store: new RedisStore({ sendCommand: emulating ? emulatedSendCommand(sendCommand) : sendCommand, prefix }),
  });
  const app = express();
  app.use(limiter);
  app.get('/', (_req, res) => res.send('ok'));
  app.get('/fail', (_req, res) => res.status(500).send('boom'));
  const server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    limiter,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

const get = (base, path, client) => fetch(`${base}${path}`, { headers: { 'x-client': client } });

/// The remaining count and reset (seconds) the response announces, in the header flavour used.
function announced(res, headers) {
  if (headers === 'draft-6') {
    assert.equal(res.headers.get('ratelimit-limit'), String(LIMIT), 'RateLimit-Limit');
    assert.equal(res.headers.get('x-ratelimit-limit'), String(LIMIT), 'X-RateLimit-Limit');
    assert.equal(res.headers.get('x-ratelimit-remaining'), res.headers.get('ratelimit-remaining'));
    return {
      remaining: Number(res.headers.get('ratelimit-remaining')),
      reset: Number(res.headers.get('ratelimit-reset')),
    };
  }
  // draft-7: `RateLimit: limit=3, remaining=2, reset=1` and `RateLimit-Policy: 3;w=1`.
  assert.equal(res.headers.get('ratelimit-policy'), `${LIMIT};w=${WINDOW_MS / 1000}`, 'RateLimit-Policy');
  const m = /^limit=(\d+), remaining=(\d+), reset=(\d+)$/.exec(res.headers.get('ratelimit') || '');
  assert.ok(m, `RateLimit header: ${res.headers.get('ratelimit')}`);
  assert.equal(Number(m[1]), LIMIT);
  return { remaining: Number(m[2]), reset: Number(m[3]) };
}

async function apps() {
  const nodeRedis = createClient({ url });
  nodeRedis.on('error', (e) => console.error(`node-redis error: ${e.message}`));
  await nodeRedis.connect();
  const ioredis = new Redis({ host, port });
  return [
    {
      name: 'node-redis',
      headers: 'draft-6',
      sendCommand: (...args) => nodeRedis.sendCommand(args),
      close: () => nodeRedis.close(),
    },
    {
      name: 'ioredis',
      headers: 'draft-7',
      sendCommand: (command, ...args) => ioredis.call(command, ...args),
      close: () => ioredis.quit(),
    },
  ];
}

if (emulating || (await serverHasEval()) || process.env.COMPAT_NO_SKIP) {
  for (const a of await apps()) {
    const app = await startApp({ sendCommand: a.sendCommand, prefix: `${runId}:express:${a.name}:`, headers: a.headers });
    const name = (s) => `express-rate-limit+rate-limit-redis/${a.name}: ${s}`;

    await scenario(name(`${LIMIT} requests pass, the next gets 429, then the window resets`), { needsEval: true }, async () => {
      const started = Date.now();
      for (let i = 1; i <= LIMIT; i += 1) {
        const res = await get(app.base, '/', 'alice');
        assert.equal(res.status, 200, `request ${i}`);
        assert.equal(await res.text(), 'ok');
        const { remaining, reset } = announced(res, a.headers);
        assert.equal(remaining, LIMIT - i, `remaining after request ${i}`);
        assertBetween(reset, 0, WINDOW_MS / 1000, 'reset seconds');
      }
      const denied = await get(app.base, '/', 'alice');
      assert.equal(denied.status, 429, 'request over the limit');
      assert.equal(announced(denied, a.headers).remaining, 0);
      assertBetween(Number(denied.headers.get('retry-after')), 0, WINDOW_MS / 1000, 'Retry-After');
      // Another client has its own counter.
      const bob = await get(app.base, '/', 'bob');
      assert.equal(bob.status, 200);
      assert.equal(announced(bob, a.headers).remaining, LIMIT - 1);
      // The key expires with the window (PX set by the script on the first hit).
      await sleep(Math.max(0, started + WINDOW_MS + 150 - Date.now()));
      const again = await get(app.base, '/', 'alice');
      assert.equal(again.status, 200, 'first request of the next window');
      assert.equal(announced(again, a.headers).remaining, LIMIT - 1);
    });

    await scenario(name('getKey reads the hits and reset time'), { needsEval: true }, async () => {
      assert.equal((await get(app.base, '/', 'carol')).status, 200);
      assert.equal((await get(app.base, '/', 'carol')).status, 200);
      const info = await app.limiter.getKey('carol');
      assert.equal(info.totalHits, 2);
      assertBetween(info.resetTime.getTime() - Date.now(), 1, WINDOW_MS, 'resetTime');
      // For an unknown client the get script replies [nil, -2] (GET's nil is Lua false, which
      // converts back to a nil); the library parses that nil as NaN hits (its behaviour on Redis).
      const none = await app.limiter.getKey('nobody');
      assert.ok(Number.isNaN(none.totalHits), `hits of an unknown client: ${none.totalHits}`);
      assertBetween(none.resetTime.getTime() - Date.now(), -1000, 0, 'resetTime of an unknown client (PTTL -2)');
    });

    await scenario(name('resetKey clears a limited client'), { needsEval: true }, async () => {
      for (let i = 0; i < LIMIT; i += 1) await get(app.base, '/', 'dave');
      assert.equal((await get(app.base, '/', 'dave')).status, 429);
      await app.limiter.resetKey('dave');
      const res = await get(app.base, '/', 'dave');
      assert.equal(res.status, 200);
      assert.equal(announced(res, a.headers).remaining, LIMIT - 1);
    });

    await scenario(name('failed requests are given back (skipFailedRequests, DECR)'), { needsEval: true }, async () => {
      for (let i = 0; i < LIMIT + 2; i += 1) {
        const res = await get(app.base, '/fail', 'erin');
        assert.equal(res.status, 500, `failing request ${i + 1} is not limited`);
      }
      // The decrement runs after the response; let it land before reading.
      await sleep(50);
      assert.equal((await app.limiter.getKey('erin')).totalHits, 0);
      const ok = await get(app.base, '/', 'erin');
      assert.equal(ok.status, 200);
      assert.equal(announced(ok, a.headers).remaining, LIMIT - 1);
    });

    await app.close();
    await a.close();
  }
} else {
  for (const s of ['node-redis', 'ioredis']) {
    await scenario(`express-rate-limit+rate-limit-redis/${s}: all scenarios`, { needsEval: true }, async () => {});
  }
}

finish();
