#!/usr/bin/env python3
"""Busy-script stress: a looping script can always be stopped, under load, N times in a row.

    scripts/busy-script-stress.py BIN [--threads 1,2,8] [--rounds 1000] [--load 4]

For each worker-thread count, starts BIN (`--threads T --busy-reply-threshold 20`) on a free
loopback port, starts LOAD client threads that pipeline 16 requests at a time (INCR, GET, a
short EVAL, EVALSHA of a recognised library script, SCRIPT LOAD), and then runs ROUNDS rounds,
each of which must finish within 10 s:

  1. a runner connection starts a script that never ends, taking turns among
     `EVAL while true do end`, a loop under pcall, a loop in a coroutine, and `FCALL spin`;
  2. another connection sends GET until it answers BUSY (Redis's exact text for the kind);
  3. it sends SCRIPT KILL (FUNCTION KILL for the function) and must get +OK;
  4. the runner must get the "Script killed by user" error, and PING must answer PONG.

Finally a script that wrote (so it cannot be killed) is started and SHUTDOWN NOSAVE must stop
the server within 10 s. Prints one line per thread count (rounds passed / rounds) and exits
non-zero on the first failure. Needs nothing but Python 3 and the binary.
"""

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

BUSY_EVAL = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
BUSY_FUNCTION = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
# rate-limiter-flexible's incr-ttl script (tests/compat/scripts), answered natively.
RLF = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "compat",
                        "scripts", "rate-limiter-flexible-incr-ttl.lua")).read()
LOOPS = [
    ("EVAL", "while true do end"),
    ("EVAL", "while true do pcall(function() while true do end end) end"),
    ("EVAL", "local co = coroutine.wrap(function() while true do end end) co()"),
    ("FCALL", "spin"),
]
ROUND_LIMIT = 10.0


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port, timeout=ROUND_LIMIT):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, *args):
        self.s.sendall(resp(*args))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:].decode()
        if kind in (b"+",):
            return rest
        if kind == b"-":
            return Err(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError("unexpected reply %r" % line)

    def cmd(self, *args):
        self.send(*args)
        return self.reply()

    def close(self):
        self.s.close()


class Err(str):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(binary, threads):
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--threads",
                             str(threads), "--busy-reply-threshold", "20"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            c = Conn(port)
            if c.cmd("PING") == "PONG":
                c.close()
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")


def load(port, stop, sha, counts):
    try:
        load_until(port, stop, sha, counts)
    except OSError:
        pass  # the server was shut down at the end


def load_until(port, stop, sha, counts):
    c = Conn(port, timeout=60)
    i = 0
    while not stop.is_set():
        batch = []
        for j in range(16):
            k = "load:%d" % ((i + j) % 97)
            batch.append([("INCR", k), ("GET", k), ("EVAL", "return redis.call('incr', KEYS[1])", 1, k),
                          ("EVALSHA", sha, 1, "rlf:" + k, 1, 60), ("SCRIPT", "LOAD", "return 1")][j % 5])
        c.s.sendall(b"".join(resp(*a) for a in batch))
        for _ in batch:
            r = c.reply()
            counts["busy" if isinstance(r, Err) and r.startswith("BUSY") else
                   "err" if isinstance(r, Err) else "ok"] += 1
        i += 16
    c.close()


def fail(proc, msg):
    proc.kill()
    raise SystemExit("FAIL: " + msg)


def run(binary, threads, rounds, loaders):
    proc, port = start(binary, threads)
    setup = Conn(port)
    setup.cmd("FUNCTION", "LOAD", "#!lua name=spin\nredis.register_function('spin', function() while true do end end)")
    sha = setup.cmd("SCRIPT", "LOAD", RLF)
    stop = threading.Event()
    counts = {"ok": 0, "busy": 0, "err": 0}
    workers = [threading.Thread(target=load, args=(port, stop, sha, counts), daemon=True)
               for _ in range(loaders)]
    for w in workers:
        w.start()
    runner, other = Conn(port), Conn(port)
    started = time.time()
    passed = 0
    for n in range(rounds):
        kind, body = LOOPS[n % len(LOOPS)]
        t0 = time.time()
        if kind == "EVAL":
            runner.send("EVAL", body, 0)
            busy_text, kill = BUSY_EVAL, ("SCRIPT", "KILL")
        else:
            runner.send("FCALL", body, 0)
            busy_text, kill = BUSY_FUNCTION, ("FUNCTION", "KILL")
        while True:
            if time.time() - t0 > ROUND_LIMIT:
                fail(proc, "threads %d round %d: no BUSY within %ss" % (threads, n, ROUND_LIMIT))
            r = other.cmd("GET", "k")
            if isinstance(r, Err) and r.startswith("BUSY"):
                if r != busy_text:
                    fail(proc, "round %d: %r" % (n, r))
                break
            time.sleep(0.001)
        r = other.cmd(*kill)
        if r != "OK":
            fail(proc, "threads %d round %d: %s answered %r" % (threads, n, " ".join(kill), r))
        r = runner.reply()
        if not (isinstance(r, Err) and r.startswith("ERR Script killed by user with SCRIPT KILL...")):
            fail(proc, "threads %d round %d: the runner got %r" % (threads, n, r))
        if other.cmd("PING") != "PONG" or time.time() - t0 > ROUND_LIMIT:
            fail(proc, "threads %d round %d: not served after the kill" % (threads, n))
        passed += 1
    elapsed = time.time() - started
    # A script that wrote cannot be killed; SHUTDOWN NOSAVE still stops the server.
    runner.send("EVAL", "redis.call('set', KEYS[1], 'x') while true do end", 1, "w")
    t0 = time.time()
    while True:
        r = other.cmd("PING")
        if isinstance(r, Err) and r.startswith("BUSY"):
            break
        if time.time() - t0 > ROUND_LIMIT:
            fail(proc, "no BUSY for the writing script")
        time.sleep(0.001)
    if not other.cmd("SCRIPT", "KILL").startswith("UNKILLABLE"):
        fail(proc, "SCRIPT KILL of a script that wrote was not refused")
    other.send("SHUTDOWN", "NOSAVE")
    try:
        proc.wait(timeout=ROUND_LIMIT)
    except subprocess.TimeoutExpired:
        fail(proc, "SHUTDOWN NOSAVE did not stop the server")
    stop.set()
    print("threads %d: %d/%d rounds killed, then SHUTDOWN NOSAVE stopped a script that wrote "
          "(%.1f s; load: %d replies, %d BUSY, %d other errors)"
          % (threads, passed, rounds, elapsed, counts["ok"], counts["busy"], counts["err"]),
          flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("binary")
    p.add_argument("--threads", default="1,2,8")
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--load", type=int, default=4)
    a = p.parse_args()
    for t in [int(x) for x in a.threads.split(",")]:
        run(a.binary, t, a.rounds, a.load)


if __name__ == "__main__":
    main()
