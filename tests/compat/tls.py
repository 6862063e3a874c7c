"""redis-py over TLS (``ssl=True`` and ``rediss://``) against the TLS port of a running server.

Environment (set by run.sh): COMPAT_TLS_PORT (the TLS port), COMPAT_PORT (the plain port of the
same server), COMPAT_TLS_DIR (ca.crt, client.crt, client.key made with the openssl CLI), and
COMPAT_TLS_SERVER (limitkv or redis: limitkv's own commands are skipped against redis-server).
The server runs with ``tls-auth-clients optional``: a client certificate is verified if sent.
"""

import os
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness import HOST, PORT, RUN_ID, check, finish, scenario

TLS_PORT = int(os.environ["COMPAT_TLS_PORT"])
TLS_DIR = os.environ["COMPAT_TLS_DIR"]
LIMITKV = os.environ.get("COMPAT_TLS_SERVER", "limitkv") == "limitkv"
CA = os.path.join(TLS_DIR, "ca.crt")


def client(proto, **kw):
    return redis.Redis(
        host=HOST,
        port=TLS_PORT,
        protocol=proto,
        decode_responses=True,
        ssl=True,
        ssl_ca_certs=CA,
        socket_timeout=10,
        **kw,
    )


for proto in (2, 3):

    @scenario(f"redis-py ssl=True resp{proto}: commands and a pipeline")
    def _():
        r = client(proto)
        key = f"{RUN_ID}:tls:r{proto}"
        check("ping", r.ping(), True)
        check("set", r.set(key, "1", ex=10), True)
        check("get", r.get(key), "1")
        check("pipeline", r.pipeline().incr(f"{key}:n").incr(f"{key}:n").get(f"{key}:n").execute(), [1, 2, "2"])
        r.close()

    @scenario(
        f"redis-py ssl=True resp{proto}: CL.THROTTLE",
        skip_reason=None if LIMITKV else "limitkv's own command",
    )
    def _():
        r = client(proto)
        got = r.execute_command("CL.THROTTLE", f"{RUN_ID}:tls:u{proto}", 15, 30, 60)
        check("throttle", got, [0, 16, 15, -1, 2])
        r.close()


@scenario("redis-py with a client certificate")
def _():
    r = client(
        2,
        ssl_certfile=os.path.join(TLS_DIR, "client.crt"),
        ssl_keyfile=os.path.join(TLS_DIR, "client.key"),
    )
    check("ping", r.ping(), True)
    r.close()


@scenario("redis-py rediss:// URL")
def _():
    r = redis.from_url(f"rediss://{HOST}:{TLS_PORT}/0", ssl_ca_certs=CA, decode_responses=True, socket_timeout=10)
    check("ping", r.ping(), True)
    r.close()


@scenario("redis-py ssl=True on the plain port fails")
def _():
    # One attempt: redis-py otherwise retries a failed connect with a backoff.
    r = redis.Redis(
        host=HOST, port=PORT, ssl=True, ssl_ca_certs=CA, socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )
    started = time.monotonic()
    try:
        r.ping()
    except redis.ConnectionError:
        pass
    except redis.TimeoutError:
        # redis-server waits for a newline that the ClientHello may not contain; limitkv
        # recognises the handshake and fails it at once.
        if LIMITKV:
            raise
    else:
        raise AssertionError("a TLS handshake with the plain port succeeded")
    if LIMITKV:
        check("fails at once", time.monotonic() - started < 2, True)
    check("plain port still serves", redis.Redis(host=HOST, port=PORT, socket_timeout=5).ping(), True)


@scenario("redis-py without ssl on the TLS port fails")
def _():
    r = redis.Redis(host=HOST, port=TLS_PORT, socket_timeout=5)
    try:
        r.ping()
    except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
        pass
    else:
        raise AssertionError("plain text was answered on the TLS port")
    check("TLS port still serves", client(2).ping(), True)


finish()
