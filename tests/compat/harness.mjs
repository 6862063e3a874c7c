// A tiny scenario runner shared by the Node programs of the compatibility suite.
//
// Each scenario prints one line: `PASS name`, `FAIL name: reason` or `SKIPPED name: reason`.
// `finish()` prints `counts: P F S` (read by run.sh) and sets the exit code (1 on any failure).
// The server under test is COMPAT_HOST:COMPAT_PORT (default 127.0.0.1:6379). COMPAT_NO_SKIP=1 runs
// the scenarios that need EVAL even on a server without it (to see how they fail);
// COMPAT_EMULATE_SCRIPTS=1 runs them with the scripts emulated on the client (emulate.mjs).
import assert from 'node:assert/strict';
import net from 'node:net';
import { emulating } from './emulate.mjs';

export const host = process.env.COMPAT_HOST || '127.0.0.1';
export const port = Number(process.env.COMPAT_PORT || 6379);
export const url = `redis://${host}:${port}`;

const counts = { passed: 0, failed: 0, skipped: 0 };

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/// Runs `fn` as scenario `name`. `opts.needsEval`: skipped when the server has no EVAL.
export async function scenario(name, opts, fn) {
  if (emulating) name = `${name} [emulated scripts]`;
  if (opts.needsEval && !process.env.COMPAT_NO_SKIP && !emulating && !(await serverHasEval())) {
    counts.skipped += 1;
    console.log(`SKIPPED ${name}: needs EVAL`);
    return;
  }
  if (opts.skip) {
    counts.skipped += 1;
    console.log(`SKIPPED ${name}: ${opts.skip}`);
    return;
  }
  try {
    await fn();
    counts.passed += 1;
    console.log(`PASS ${name}`);
  } catch (e) {
    counts.failed += 1;
    const reason = e instanceof Error ? (e.stack || e.message) : JSON.stringify(e);
    console.log(`FAIL ${name}: ${reason}`);
  }
}

export function finish() {
  console.log(`counts: ${counts.passed} ${counts.failed} ${counts.skipped}`);
  process.exitCode = counts.failed > 0 ? 1 : 0;
}

let hasEval;

/// True when `COMMAND INFO eval` describes the command. An unknown command gives a nil entry
/// (`*1\r\n$-1\r\n` in RESP2); a known one a nested array that starts with its name. Asked over a
/// raw socket so that no client library's own startup is involved.
export async function serverHasEval() {
  if (hasEval === undefined) {
    hasEval = await new Promise((resolve, reject) => {
      const socket = net.createConnection({ host, port });
      let data = '';
      const done = (value) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(value);
      };
      const timer = setTimeout(() => reject(new Error(`COMMAND INFO eval: no complete reply, got ${JSON.stringify(data)}`)), 5000);
      socket.on('connect', () => socket.write('*3\r\n$7\r\nCOMMAND\r\n$4\r\nINFO\r\n$4\r\neval\r\n'));
      socket.on('data', (chunk) => {
        data += chunk.toString();
        if (/\$4\r\neval\r\n/i.test(data)) done(true);
        else if (/^\*1\r\n(\$-1|\*-1|_)\r\n$/.test(data) || data.startsWith('-')) done(false);
      });
      socket.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }
  return hasEval;
}

/// Asserts lo <= value <= hi with a readable message.
export function assertBetween(value, lo, hi, what) {
  assert.ok(typeof value === 'number' && value >= lo && value <= hi, `${what}: ${value} not in [${lo}, ${hi}]`);
}

/// A key prefix unique to this run, so reruns against a long-lived server never collide.
export const runId = `compat:${process.pid}:${Date.now()}`;

/// Restarts the server under test with the command in COMPAT_RESTART (set by run.sh for the
/// restart scenario), waiting until it answers PING again.
export async function restartServer() {
  const { execFileSync } = await import('node:child_process');
  execFileSync('bash', ['-c', process.env.COMPAT_RESTART], { stdio: ['ignore', 'inherit', 'inherit'] });
}
