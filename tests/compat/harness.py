"""A tiny scenario runner shared by the Python programs of the compatibility suite.

Each scenario prints one line: ``PASS name``, ``FAIL name: reason`` or ``SKIPPED name: reason``.
``finish()`` prints ``counts: P F S`` (read by run.sh) and exits 1 on any failure. The server under
test is COMPAT_HOST:COMPAT_PORT (default 127.0.0.1:6379). COMPAT_NO_SKIP=1 runs the scenarios that
need EVAL even on a server without it (to see how they fail); COMPAT_EMULATE_SCRIPTS=1 runs them
with the scripts emulated on the client (emulate.py).
"""

import os
import socket
import sys
import time
import traceback

from emulate import EMULATING

HOST = os.environ.get("COMPAT_HOST", "127.0.0.1")
PORT = int(os.environ.get("COMPAT_PORT", "6379"))
URL = f"redis://{HOST}:{PORT}"
RUN_ID = f"compat:{os.getpid()}:{int(time.time() * 1000)}"

_counts = {"passed": 0, "failed": 0, "skipped": 0}
_has_eval = None


def server_has_eval():
    """True when ``COMMAND INFO eval`` describes the command (an unknown one gives a nil entry).

    Asked over a raw socket so that no client library's own startup is involved."""
    global _has_eval
    if _has_eval is None:
        with socket.create_connection((HOST, PORT), timeout=5) as s:
            s.sendall(b"*3\r\n$7\r\nCOMMAND\r\n$4\r\nINFO\r\n$4\r\neval\r\n")
            data = b""
            while True:
                if b"$4\r\neval\r\n" in data.lower():
                    _has_eval = True
                    break
                if data in (b"*1\r\n$-1\r\n", b"*1\r\n*-1\r\n", b"*1\r\n_\r\n") or data.startswith(b"-"):
                    _has_eval = False
                    break
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError(f"COMMAND INFO eval: connection closed after {data!r}")
                data += chunk
    return _has_eval


def skip(name, reason):
    _counts["skipped"] += 1
    print(f"SKIPPED {name}: {reason}", flush=True)


def scenario(name, needs_eval=False, skip_reason=None):
    """Decorator: runs the function at once as scenario ``name`` (or skips it with a reason)."""

    if EMULATING:
        name = f"{name} [emulated scripts]"

    def run(fn):
        if skip_reason:
            skip(name, skip_reason)
            return fn
        if needs_eval and not os.environ.get("COMPAT_NO_SKIP") and not EMULATING and not server_has_eval():
            skip(name, "needs EVAL")
            return fn
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
            _counts["failed"] += 1
            detail = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:]).strip()
            print(f"FAIL {name}: {detail}", flush=True)
        else:
            _counts["passed"] += 1
            print(f"PASS {name}", flush=True)
        return fn

    return run


def check(label, got, want):
    if got != want:
        raise AssertionError(f"{label}: got {got!r}, want {want!r}")


def check_between(label, got, lo, hi):
    if not (lo <= got <= hi):
        raise AssertionError(f"{label}: {got!r} not in [{lo}, {hi}]")


def finish():
    print(f"counts: {_counts['passed']} {_counts['failed']} {_counts['skipped']}", flush=True)
    sys.exit(1 if _counts["failed"] else 0)
