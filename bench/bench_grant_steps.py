"""What each step of a code redemption and a refresh costs inside the machine lane.

Why (issue 4): the user grants are short of node-oidc-provider's rate (token.md), and the
question for the next change is which step to make cheaper. This runs the real grants in one
process against PostgreSQL + Redis, like production:

1. prepares a fresh database as ``bench_token`` does (the person, the code-flow service),
   serves the app on loopback (werkzeug, a thread) only to obtain codes exactly as a browser
   does (``bench_token.Provider.mint``);
2. redeems each code, then refreshes each refresh token once, by calling the app's WSGI
   callable (so the machine lane) directly, with a timer (``time.thread_time``: this thread's
   CPU, not the waiting) around each step function of :mod:`idp.oidc.user_grant_lane`;
3. as the baseline, measured in the same run: the same kinds of call in a tight loop (a
   Redis ``GET``, a ``SELECT`` of the person through SQLAlchemy Core and through psycopg
   directly, ``SELECT 1``, and the raw RS256 and ES256 signatures), which shows what a
   step costs when nothing else runs between its calls.

    .venv/bin/python -m bench.bench_grant_steps [--grants 600] [--rounds 3]

Writes bench/results/grant_steps.json and .md. Figures are µs of CPU per call, the median
over rounds; the stores' own CPU is not counted (see token.md for that).
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from bench import bench_token as bt
from bench.common import write_figures

DATABASE = "idp_bench_grant_steps"
REDIS = os.environ.get("IDP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")

#: (module, function) of each step timed inside a grant, in the order a grant runs them.
STEPS = [
    ("idp.oidc.machine_lane", "_authenticate"),
    ("idp.oidc.codes", "redeem"),
    ("idp.oidc.tokens", "find_refresh_token"),
    ("idp.oidc.tokens", "rotate_if_usable"),
    ("idp.oidc.user_grant_lane", "active_user"),
    ("idp.oidc.tokens", "read_person_adding_family"),
    ("idp.oidc.user_grant_lane", "mint_user_access"),
    ("idp.oidc.user_grant_lane", "id_token_for"),
    ("idp.oidc.user_grant_lane", "add_refresh_token"),
    ("idp.oidc.user_grant_lane", "commit_issued"),
    ("idp.oidc.codes", "record_issued"),
]


class Timers:
    """Wraps module functions so each call's thread CPU is added up under its name."""

    def __init__(self) -> None:
        self.totals: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.counts: collections.Counter[str] = collections.Counter()

    def wrap(self, module_name: str, name: str) -> None:
        import importlib

        module = importlib.import_module(module_name)
        original = getattr(module, name)
        label = f"{module_name.rsplit('.', 1)[-1]}.{name}"

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[label] += time.thread_time() - started
                self.counts[label] += 1

        setattr(module, name, timed)

    def take(self) -> dict[str, float]:
        """µs per call since the last take, and reset."""
        result = {k: self.totals[k] * 1e6 / self.counts[k] for k in self.totals}
        self.totals.clear()
        self.counts.clear()
        return result


@contextmanager
def serving(app: Any, port: int) -> Iterator[None]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()


def token_request(origin: str, body: str) -> dict[str, Any]:
    """The WSGI environ of a token request (built before the timing starts)."""
    from werkzeug.test import EnvironBuilder

    environ: dict[str, Any] = EnvironBuilder(
        path="/token",
        method="POST",
        data=body.encode(),
        base_url=origin,
        content_type=bt.FORM,
        headers=[("Authorization", bt.basic(bt.CODE_CLIENT, bt.SECRET))],
    ).get_environ()
    return environ


def call(app: Any, environ: dict[str, Any]) -> dict[str, Any]:
    status: list[str] = []
    answer = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    if not status[0].startswith("200"):
        raise RuntimeError(f"{status[0]}: {answer[:300]!r}")
    result: dict[str, Any] = json.loads(answer)
    return result


def tight_loop(label: str, fn: Callable[[], Any], count: int = 2000) -> tuple[str, float]:
    for _ in range(100):
        fn()
    started = time.thread_time()
    for _ in range(count):
        fn()
    return label, (time.thread_time() - started) * 1e6 / count


def baselines(app: Any) -> dict[str, float]:
    """The same kinds of call as the steps, each alone in a tight loop."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from sqlalchemy import text

    from idp.extensions import db
    from idp.oidc.keys import get_keyring
    from idp.services import authentication
    from idp.store import get_store

    with app.app_context():
        sub = db.session.execute(text("SELECT sub FROM users LIMIT 1")).scalar_one()
        db.session.commit()
        connection = db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        raw: Any = connection.connection.driver_connection
        store = get_store()
        ring = get_keyring()
        rsa_key: Any = ring.signing_key("RS256").private_key
        ec_key: Any = ring.signing_key("ES256").private_key
        person_sql = str(
            authentication._READ_BY_SUB.compile(
                dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
            )
        ).replace("%(key)s", "%s")
        results = [
            tight_loop("Redis GET", lambda: store.get("bench:nothing")),
            tight_loop("SELECT 1 (psycopg)", lambda: raw.execute("SELECT 1").fetchone()),
            tight_loop("the person (psycopg)", lambda: raw.execute(person_sql, (sub,)).fetchone()),
            tight_loop(
                "the person (SQLAlchemy Core)",
                lambda: authentication.read_account(sub=sub),
            ),
            tight_loop(
                "RS256 signature (OpenSSL)",
                lambda: rsa_key.sign(b"x" * 700, padding.PKCS1v15(), hashes.SHA256()),
            ),
            tight_loop(
                "ES256 signature (OpenSSL)",
                lambda: ec_key.sign(b"x" * 400, ec.ECDSA(hashes.SHA256())),
            ),
        ]
        db.session.rollback()
    return dict(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import redis

    port = bt.free_port()
    origin = f"http://127.0.0.1:{port}"
    redis.Redis.from_url(REDIS).flushdb()  # sign-in rate limits from an earlier run
    app = bt.in_process_app(DATABASE, REDIS, origin)
    timers = Timers()
    for module_name, name in STEPS:
        timers.wrap(module_name, name)
    provider = bt.Provider(
        name="ours",
        origin=origin,
        pid=os.getpid(),
        paths={"authorize": "/authorize", "token": "/token"},
        code_client=(bt.CODE_CLIENT, bt.SECRET),
        cc_client=(bt.CC_CLIENT, bt.CC_SECRET),
        cc_scope=None,
        sign_in_values={"email": bt.EMAIL, "password": bt.PASSWORD},
    )
    rounds: dict[str, list[dict[str, float]]] = {"authorization_code": [], "refresh_token": []}
    totals: dict[str, list[float]] = {"authorization_code": [], "refresh_token": []}
    with serving(app, port):
        for _ in range(args.rounds):
            requests = [
                token_request(origin, provider.code_body(c)) for c in provider.mint(args.grants)
            ]
            timers.take()
            started = time.thread_time()
            answers = [call(app, environ) for environ in requests]
            totals["authorization_code"].append((time.thread_time() - started) * 1e6 / len(answers))
            rounds["authorization_code"].append(timers.take())
            requests = [
                token_request(
                    origin,
                    urlencode({"grant_type": "refresh_token", "refresh_token": a["refresh_token"]}),
                )
                for a in answers
            ]
            started = time.thread_time()
            for environ in requests:
                call(app, environ)
            totals["refresh_token"].append((time.thread_time() - started) * 1e6 / len(requests))
            rounds["refresh_token"].append(timers.take())
    floor = baselines(app)
    bt.drop_database(DATABASE)

    figures: dict[str, Any] = {"grants_per_round": args.grants, "baselines_us": floor}
    lines = [
        "# What each step of a user grant costs inside the machine lane",
        "",
        f"`python -m bench.bench_grant_steps`: {args.rounds} rounds of {args.grants} code "
        "redemptions and as many refreshes, through the app's WSGI callable in one process, "
        "PostgreSQL + Redis; µs of this thread's CPU per call (median over rounds). Load "
        f"average {os.getloadavg()[0]:.2f}. See the module docstring.",
        "",
    ]
    for grant in ("authorization_code", "refresh_token"):
        per_step = {
            label: statistics.median(r[label] for r in rounds[grant] if label in r)
            for label in rounds[grant][0]
        }
        whole = statistics.median(totals[grant])
        figures[grant] = {"whole_us": round(whole, 1), "steps_us": per_step}
        lines += [f"## {grant}", "", "| step | µs per call |", "|---|---|"]
        lines += [f"| `{k}` | {v:.0f} |" for k, v in per_step.items()]
        lines += [f"| **the whole grant** (through the WSGI callable) | **{whole:.0f}** |", ""]
    lines += [
        "## Baselines: the same kinds of call in a tight loop",
        "",
        "| call | µs |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.0f} |" for k, v in floor.items()]
    lines.append("")
    write_figures("grant_steps", figures, "\n".join(lines))


if __name__ == "__main__":
    main()
