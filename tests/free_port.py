"""Prints a free loopback port below the kernel's ephemeral range (ip_local_port_range), which
bind(0) and outgoing connections never pick, so nothing else takes it before the caller's
server binds it. The shell runners (tests/compat/run.sh, tests/redis-suite/run.sh) use it as
tests/common::free_port does for the Rust tests."""
import random
import socket

low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for port in random.sample(range(10000, max(low, 11000)), 200):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
