"""How much of a client_credentials grant is the grant, and how much is everything around it.

Why (issue 4): node-oidc-provider issues a client_credentials token for about 0.35-0.5 ms of
CPU and ours takes several times that. This measures, in one process and one run:

- **essentials**: what the grant itself must do, written plainly: parse the form body, check a
  Basic client secret against its HMAC-SHA-256 (constant time), sign an RFC 9068 access token
  with ES256 (joserfc, as we do) and serialise the JSON answer. No framework, no store.
- **ours**: the same grant through our WSGI app as production builds it (since the machine
  lane, idp/oidc/machine_lane.py: the lane, the service cache, the shared cache-version read
  and the batched audit row, whose writer thread's CPU is counted too), called in process
  with a prepared WSGI environ, so no HTTP server is counted.

CPU time per grant (``time.process_time``) for each, and the ratio: the share of our grant that
is overhead a leaner design could remove. PostgreSQL + Redis, like production; the store work
of the audit row is not counted (it happens in the PostgreSQL process).

    .venv/bin/python -m bench.bench_grant_overhead [--grants 3000]

Writes bench/results/grant_overhead.json and .md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import json
import os
import secrets
import statistics
import time
from typing import Any
from urllib.parse import parse_qsl

from joserfc import jwt
from joserfc.jwk import ECKey

from bench import bench_token as bt
from bench.common import write_figures

DATABASE = "idp_bench_grant_overhead"
REDIS = os.environ.get("IDP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
ORIGIN = "http://127.0.0.1:5000"
BODY = b"grant_type=client_credentials"


def essentials() -> Any:
    """One grant's necessary work, as a function of nothing (keys made once, like a cache)."""
    key = ECKey.generate_key("P-256", parameters={"kid": "bench"})
    hmac_key = secrets.token_bytes(32)
    stored = hmac.new(hmac_key, bt.CC_SECRET.encode(), hashlib.sha256).digest()
    authorization = bt.basic(bt.CC_CLIENT, bt.CC_SECRET)

    def grant() -> bytes:
        params = dict(parse_qsl(BODY.decode()))
        if params.get("grant_type") != "client_credentials":
            raise AssertionError("unsupported grant")
        client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        given = hmac.new(hmac_key, secret.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(given, stored):
            raise AssertionError("bad secret")
        now = int(time.time())
        claims = {
            "iss": ORIGIN,
            "sub": client_id,
            "aud": client_id,
            "client_id": client_id,
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_urlsafe(16),
            "scope": "",
        }
        header = {"alg": "ES256", "kid": "bench", "typ": "at+jwt"}
        token = jwt.encode(header, claims, key, algorithms=["ES256"])
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": 600}
        return json.dumps(answer).encode()

    return grant


def ours() -> Any:
    """The same grant through our app's WSGI callable, on PostgreSQL + Redis."""
    from werkzeug.test import EnvironBuilder

    app = bt.in_process_app(DATABASE, REDIS, ORIGIN)
    environ = EnvironBuilder(
        path="/token",
        method="POST",
        data=BODY,
        base_url=ORIGIN,
        content_type="application/x-www-form-urlencoded",
        headers={"Authorization": bt.basic(bt.CC_CLIENT, bt.CC_SECRET)},
    ).get_environ()

    def grant() -> bytes:
        call = dict(environ, **{"wsgi.input": io.BytesIO(BODY)})
        status: list[str] = []
        body = b"".join(app(call, lambda s, h, e=None: status.append(s)))
        if not status[0].startswith("200"):
            raise AssertionError(body[:300])
        return body

    return grant


def cpu_ms(grant: Any, count: int) -> float:
    for _ in range(min(500, count)):
        grant()  # warm caches, compiled statements, connections
    rounds = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(count):
            grant()
        rounds.append((time.process_time() - started) * 1000 / count)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=3000)
    args = parser.parse_args()
    lean = cpu_ms(essentials(), args.grants)
    full = cpu_ms(ours(), args.grants)
    figures = {
        "essentials_cpu_ms": round(lean, 3),
        "ours_cpu_ms": round(full, 3),
        "ours_over_essentials": round(full / lean, 1),
        "grants_per_round": args.grants,
        "load_average": os.getloadavg(),
    }
    markdown = "\n".join(
        [
            "# A client_credentials grant: the grant itself against our whole path",
            "",
            f"`python -m bench.bench_grant_overhead`: CPU per grant in one process, median of "
            f"3 rounds of {args.grants}. Load average {os.getloadavg()[0]:.2f}.",
            "",
            "| | CPU ms per grant |",
            "|---|---|",
            f"| essentials (form, HMAC secret check, ES256 JWT, JSON) | {lean:.3f} |",
            f"| ours (the app's WSGI callable: machine lane, caches, batched audit row) "
            f"| {full:.3f} |",
            f"| ours / essentials | {full / lean:.1f}x |",
            "",
            "The HTTP server adds about 0.06 ms either way (bench/results/server.md).",
            "",
        ]
    )
    write_figures("grant_overhead", figures, markdown)


if __name__ == "__main__":
    main()
