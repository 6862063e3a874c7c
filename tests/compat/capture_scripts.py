"""Keeps tests/compat/scripts/ (the exact Lua scripts the rate-limit libraries send) honest.

  capture_scripts.py verify DIR              every file listed in DIR/index.tsv exists and has the
                                             SHA1 the index gives; every .lua file is listed
  capture_scripts.py check DIR MONITOR...    verify, plus: every script body (EVAL, SCRIPT LOAD)
                                             and every EVALSHA digest in the redis-server MONITOR
                                             logs is a listed script
  capture_scripts.py write DIR MONITOR...    (re)writes each script body seen in the logs: a known
                                             digest rewrites its file; an unknown one is saved as
                                             unknown-<sha1 prefix>.lua and added to the index with
                                             library "?" for a person to name and describe

Prints PASS/FAIL lines and a `counts: P F S` line like the other programs of the suite.
The files hold the script bytes exactly as sent (no trailing newline added), so
`sha1sum FILE` and `redis-cli -x SCRIPT LOAD < FILE` give the digest in the index.
"""

import hashlib
import os
import re
import sys

COLUMNS = ["file", "library", "version", "sha1", "numkeys", "purpose", "keys", "argv"]
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def read_index(directory):
    rows = []
    with open(os.path.join(directory, "index.tsv"), encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != COLUMNS:
            raise SystemExit(f"index.tsv header is {header}, expected {COLUMNS}")
        for line in f:
            if line.strip():
                rows.append(dict(zip(COLUMNS, line.rstrip("\n").split("\t"))))
    return rows


def write_index(directory, rows):
    with open(os.path.join(directory, "index.tsv"), "w", encoding="utf-8") as f:
        f.write("\t".join(COLUMNS) + "\n")
        for row in rows:
            f.write("\t".join(row.get(c, "") for c in COLUMNS) + "\n")


def unquote_args(text):
    """The arguments of one MONITOR line (sdscatrepr quoting) as bytes."""
    args = []
    i = 0
    while i < len(text):
        if text[i] != '"':
            i += 1
            continue
        i += 1
        out = bytearray()
        while text[i] != '"':
            c = text[i]
            if c == "\\":
                n = text[i + 1]
                if n == "x":
                    out.append(int(text[i + 2 : i + 4], 16))
                    i += 4
                    continue
                out += ESCAPES[n].encode()
                i += 2
                continue
            out += c.encode("latin-1")
            i += 1
        args.append(bytes(out))
        i += 1
    return args


def scripts_in_monitor(paths):
    """Script bodies (EVAL/EVAL_RO, SCRIPT LOAD) and EVALSHA digests sent by clients."""
    bodies, digests = set(), set()
    line_re = re.compile(r"^\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$")
    for path in paths:
        with open(path, encoding="latin-1") as f:
            for line in f:
                m = line_re.match(line.rstrip("\n"))
                if not m or m.group(1) == "lua":
                    continue
                args = unquote_args(m.group(2))
                name = args[0].upper()
                if name in (b"EVAL", b"EVAL_RO") and len(args) > 1:
                    bodies.add(args[1])
                elif name == b"SCRIPT" and len(args) > 2 and args[1].upper() == b"LOAD":
                    bodies.add(args[2])
                elif name in (b"EVALSHA", b"EVALSHA_RO") and len(args) > 1:
                    digests.add(args[1].decode().lower())
    return bodies, digests


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def result(self, name, problems):
        if problems:
            self.failed += 1
            print(f"FAIL {name}: " + "; ".join(problems))
        else:
            self.passed += 1
            print(f"PASS {name}")

    def finish(self):
        print(f"counts: {self.passed} {self.failed} 0")
        sys.exit(1 if self.failed else 0)


def verify(directory, report):
    rows = read_index(directory)
    problems = []
    for row in rows:
        path = os.path.join(directory, row["file"])
        if not os.path.exists(path):
            problems.append(f"{row['file']} is listed but missing")
            continue
        with open(path, "rb") as f:
            digest = sha1(f.read())
        if digest != row["sha1"]:
            problems.append(f"{row['file']} has SHA1 {digest}, the index says {row['sha1']}")
    listed = {row["file"] for row in rows}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".lua") and name not in listed:
            problems.append(f"{name} is not listed in index.tsv")
    report.result(f"scripts: {len(rows)} scripts in index.tsv match their files' SHA1", problems)
    return rows


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("verify", "check", "write"):
        raise SystemExit(__doc__)
    mode, directory, logs = sys.argv[1], sys.argv[2], sys.argv[3:]
    report = Report()
    if mode == "write":
        rows = read_index(directory)
        by_sha = {row["sha1"]: row for row in rows}
        bodies, _ = scripts_in_monitor(logs)
        for body in sorted(bodies):
            digest = sha1(body)
            row = by_sha.get(digest)
            if row is None:
                row = {"file": f"unknown-{digest[:12]}.lua", "library": "?", "sha1": digest}
                rows.append(row)
                by_sha[digest] = row
                print(f"new script {digest}: saved as {row['file']}, name and describe it in index.tsv")
            with open(os.path.join(directory, row["file"]), "wb") as f:
                f.write(body)
        write_index(directory, rows)
    rows = verify(directory, report)
    if mode in ("check", "write"):
        known = {row["sha1"] for row in rows}
        bodies, digests = scripts_in_monitor(logs)
        problems = [f"script {sha1(b)} is not recorded: {b[:60]!r}..." for b in bodies if sha1(b) not in known]
        problems += [f"EVALSHA {d} is not a recorded script" for d in sorted(digests - known)]
        seen = {sha1(b) for b in bodies} | digests
        report.result(
            f"scripts: the {len(seen)} scripts the libraries sent (MONITOR) are all recorded", problems
        )
    report.finish()


if __name__ == "__main__":
    main()
