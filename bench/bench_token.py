"""Token endpoint throughput: Secure Access against node-oidc-provider, side by side.

Target (DESIGN.md §8): at least as many grants per second as node-oidc-provider (a certified
OpenID provider) on the same machine, with the same signing algorithms, measured in the same
run at the same concurrency. Both providers run at once on loopback, each with two worker
processes on one shared store:

- ours: ``granian --interface wsgi --workers 2 --blocking-threads 4 --factory
  idp:create_app`` (the production server, as the Dockerfile; ``--server gunicorn`` for the
  previous one) on a
  fresh PostgreSQL database and Redis database 13, ``IDP_ENV=development``, log level WARNING;
- node-oidc-provider: ``bench/node/op.mjs``, ``node --max-old-space-size=512``, a
  ``node:cluster`` of 2 workers on Redis database 14, configured like ours (docs/benchmarks.md).

One load generator (``bench/node/load.mjs``, on undici's connection pool) drives both with the
same number of concurrent connections, one request in flight on each. Each measurement
alternates between the two providers (the order flips every round, so drift hits both alike),
and the round with the median throughput is reported, with p50/p99 latency and the servers'
CPU time per request.

Measured: client_credentials, authorization_code redemption (codes obtained over HTTP the way a
signed-in browser gets them: one sign-in, then one authorization request per code, each with
its own PKCE verifier), refresh_token (each refresh token from a redemption used once; both
providers rotate), UserInfo, discovery, JWKS, and each server's floor (our Flask ``/healthz``,
node's bare ``/healthz``). Grants our provider does not serve yet are reported as not
available, and node's figures are still measured.

    .venv/bin/python -m bench.bench_token [--connections 8] [--duration 5] [--rounds 3]

Writes bench/results/token.json and bench/results/token.md. Loopback only; every run is
bounded in time and stops by itself.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from bs4 import BeautifulSoup

if TYPE_CHECKING:
    from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent

PG = os.environ.get("IDP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
DATABASE = "idp_bench_token"
OUR_REDIS = os.environ.get("IDP_BENCH_TOKEN_REDIS_URL", "redis://127.0.0.1:6379/13")
NODE_REDIS = os.environ.get("IDP_BENCH_TOKEN_NODE_REDIS_URL", "redis://127.0.0.1:6379/14")

EMAIL = "bench.token@school.example"
PASSWORD = "paper lantern orchard ribbon"  # a demo credential, not a secret
CODE_CLIENT = "bench-code-client"
CC_CLIENT = "bench-service-client"
SECRET = "bench-client-secret-for-token-benchmark-0123456789"
CC_SECRET = "bench-service-secret-for-token-benchmark-0123456789"
# Never visited: the redirect carrying the code is read from the Location header.
REDIRECT_URI = "http://127.0.0.1:9/callback"
POST_LOGOUT_URI = "http://127.0.0.1:9/"
NODE_RESOURCE = "urn:secure-access:bench:api"
CODE_SCOPE = "openid profile email offline_access"

SCENARIOS = (
    ("floor", "server floor: bare /healthz (not OIDC)"),
    ("client_credentials", "client_credentials grant"),
    ("authorization_code", "authorization_code redemption"),
    ("refresh_token", "refresh_token grant (rotating)"),
    ("userinfo", "UserInfo (GET, bearer token)"),
    ("discovery", "discovery document"),
    ("jwks", "JWKS"),
)
GRANTS = ("client_credentials", "authorization_code", "refresh_token")


class NotAvailable(Exception):
    """This provider cannot be measured for this scenario (yet); the message says why."""


# --- processes, ports, CPU -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, seconds: float, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + seconds
    parts = urlsplit(url)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
            conn.request("GET", parts.path)
            if conn.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def process_tree(pid: int) -> list[int]:
    found = [pid]
    for current in found:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                found.extend(int(child) for child in children)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes, now (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def store_pids() -> list[int]:
    """Every Redis and PostgreSQL process on the machine (the stores both sides use)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in ("redis-server", "postgres"):
                    found.append(int(entry.name))
    return found


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ensure_node_tooling() -> str:
    node = "node"
    if subprocess.run(["node", "--version"], capture_output=True, check=False).returncode:
        raise SystemExit("Node.js 20+ is needed for this benchmark (node-oidc-provider)")
    if not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        print("Installing bench/node's packages (npm ci --prefix bench/node)...", flush=True)
        subprocess.run(
            ["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
            check=True,
            timeout=300,
        )
    return node


# --- the load generator ---------------------------------------------------------------------


def run_load(job: dict[str, Any]) -> dict[str, Any]:
    """One bounded load run (bench/node/load.mjs); returns its figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(job, handle)
        path = handle.name
    try:
        result = subprocess.run(
            ["node", str(NODE_DIR / "load.mjs"), path],
            capture_output=True,
            text=True,
            timeout=300 + job.get("duration", 0),
            check=False,
        )
    finally:
        os.unlink(path)
    if result.returncode != 0:
        raise RuntimeError(f"load.mjs failed: {result.stderr[-1000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


FORM = "application/x-www-form-urlencoded"


# --- obtaining codes like a browser ---------------------------------------------------------


class Browser:
    """Just enough of a browser: one keep-alive connection, a cookie jar, forms, redirects.

    Cookies are sent whatever their Secure flag (browsers treat loopback as secure) and path.
    """

    def __init__(self, origin: str, cookies: dict[str, str] | None = None) -> None:
        parts = urlsplit(origin)
        self.origin = origin
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.cookies = dict(cookies or {})

    def request(
        self, method: str, url: str, body: str | None = None
    ) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(urljoin(self.origin, url))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Host": parts.netloc}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = FORM
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt:
                    raise
        for cookie in response.msg.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in cookie.lower() or "expires=thu, 01 jan 1970" in cookie.lower():
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
        text = response.read().decode("utf-8", "replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def follow(self, url: str, stop_at: str, form_values: dict[str, str], hops: int = 12) -> str:
        """Follow redirects and fill forms until a redirect to ``stop_at``; return its URL."""
        method, body = "GET", None
        for _ in range(hops):
            status, headers, text = self.request(method, url, body)
            if status in (301, 302, 303, 307) and "location" in headers:
                location = urljoin(url, headers["location"])
                if location.startswith(stop_at):
                    return location
                url, method, body = location, "GET", None
                continue
            if status == 200 and "<form" in text:
                url, body = self._fill(url, text, form_values)
                method = "POST"
                continue
            raise RuntimeError(f"{method} {url} gave {status}: {text[:1200]}")
        raise RuntimeError(f"no redirect to {stop_at} after {hops} steps")

    @staticmethod
    def _fill(url: str, text: str, values: dict[str, str]) -> tuple[str, str]:
        soup = BeautifulSoup(text, "html.parser")
        form = soup.find("form", attrs={"method": lambda m: (m or "").lower() == "post"})
        if form is None:
            raise RuntimeError(f"{url}: no form to fill")
        data: dict[str, str] = {}
        for field_ in form.find_all("input"):
            name = field_.get("name")
            if not name or field_.get("type") in ("checkbox", "radio"):
                continue
            data[name] = values.get(name, field_.get("value", ""))
        return urljoin(url, form.get("action") or url), urlencode(data)


@dataclass
class Code:
    code: str
    verifier: str


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Provider:
    """What the benchmark needs to know about one provider."""

    name: str
    origin: str
    pid: int
    paths: dict[str, str]
    code_client: tuple[str, str]
    cc_client: tuple[str, str]
    cc_scope: str | None
    authorize_extra: dict[str, str] = field(default_factory=dict)
    userinfo_extra: dict[str, str] = field(default_factory=dict)
    sign_in_values: dict[str, str] = field(default_factory=dict)
    available: dict[str, str] = field(default_factory=dict)  # scenario -> why not
    userinfo_token: str | None = None
    _cookies: dict[str, str] | None = None

    def authorize_url(self, challenge: str, extra: dict[str, str]) -> str:
        params = {
            "response_type": "code",
            "client_id": self.code_client[0],
            "redirect_uri": REDIRECT_URI,
            "scope": CODE_SCOPE,
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"{self.origin}{self.paths['authorize']}?{urlencode(params)}"

    def sign_in(self) -> None:
        """One sign-in; later authorization requests reuse the session cookies."""
        browser = Browser(self.origin)
        self._mint_with(browser, self.authorize_extra)
        self._cookies = browser.cookies

    def _mint_with(self, browser: Browser, extra: dict[str, str]) -> Code:
        verifier, challenge = pkce_pair()
        location = browser.follow(
            self.authorize_url(challenge, extra), REDIRECT_URI, self.sign_in_values
        )
        query = parse_qs(urlsplit(location).query)
        if "code" not in query:
            raise RuntimeError(f"{self.name}: the authorization response has no code: {location}")
        return Code(query["code"][0], verifier)

    def mint(self, count: int, extra: dict[str, str] | None = None, threads: int = 4) -> list[Code]:
        if self._cookies is None:
            self.sign_in()
        extra = self.authorize_extra if extra is None else extra
        per_thread = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]

        def work(n: int) -> list[Code]:
            # Each thread signs in with its own browser session: node-oidc-provider updates
            # the session on every consent, and four threads resuming interactions in one
            # session at once made it answer "interaction session and authentication
            # session mismatch" (or "session not found") once both workers were serving.
            browser = Browser(self.origin)
            return [self._mint_with(browser, extra) for _ in range(n)]

        with ThreadPoolExecutor(threads) as pool:
            return [code for batch in pool.map(work, per_thread) for code in batch]

    def token_request(self, body: dict[str, str], client: tuple[str, str]) -> dict[str, Any]:
        parts = urlsplit(self.origin)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request(
            "POST",
            self.paths["token"],
            body=urlencode(body),
            headers={"Authorization": basic(*client), "Content-Type": FORM},
        )
        response = conn.getresponse()
        payload = response.read().decode()
        if response.status != 200:
            raise RuntimeError(f"{self.name} token endpoint: {response.status} {payload[:300]}")
        result: dict[str, Any] = json.loads(payload)
        return result

    def code_body(self, code: Code) -> str:
        return urlencode(
            {
                "grant_type": "authorization_code",
                "code": code.code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": code.verifier,
            }
        )


# --- our provider -----------------------------------------------------------------------------


def fresh_database(name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(f"{PG}/postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{PG}/{name}"


def drop_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def prepare_ours(database_url: str, origin: str, redis_url: str | None = None) -> dict[str, Any]:
    """Migrate, create the user and two services, make the signing keys; say what exists.
    ``redis_url``: the store the app will use (this benchmark's own by default)."""
    redis_url = redis_url or OUR_REDIS
    import redis as redis_client
    from flask_migrate import upgrade

    from idp import create_app
    from idp.extensions import db
    from idp.models import UserStatus
    from idp.oidc import keys
    from idp.services import clients, users
    from idp.services.account_passwords import set_password

    # No flush: the Redis database may be shared with other benchmarks. The PostgreSQL
    # database is new, so nothing left in the store from an earlier run is reachable.
    redis_client.Redis.from_url(redis_url).delete("idp:oidc:signing-keys:version")
    app = create_app(
        env="development",
        database_url=database_url,
        redis_url=redis_url,
        public_base_url=origin,
        log_level="WARNING",
        instance_path=tempfile.mkdtemp(prefix="bench-token-"),
    )
    with app.app_context():
        upgrade()
        user = users.create_user(EMAIL, "Bench", "Mark", actor="bench", status=UserStatus.ACTIVE)
        set_password(user, PASSWORD)
        clients.register_service(
            CODE_CLIENT,
            "Benchmark code-flow service",
            redirect_uris=[REDIRECT_URI],
            post_logout_redirect_uris=[POST_LOGOUT_URI],
            allowed_scopes=CODE_SCOPE.split(),
            grant_types=["authorization_code", "refresh_token"],
            secret=SECRET,
            actor="bench",
            access_policy="open",  # the benchmark measures the protocol, not access rules
        )
        clients.register_service(
            CC_CLIENT,
            "Benchmark machine-to-machine service",
            redirect_uris=[],
            allowed_scopes=["organisation"],
            grant_types=["client_credentials"],
            secret=CC_SECRET,
            actor="bench",
        )
        db.session.commit()
        keys.ensure_keys(actor="bench")
        db.session.commit()
        views = set(app.view_functions)
        db.engine.dispose()
    return {"views": views}


def in_process_app(database: str, redis_url: str, origin: str) -> Flask:
    """Our app in this process, on a fresh PostgreSQL database ``database`` prepared as for the
    benchmark (:func:`prepare_ours`) and configured as the benchmark's server is, for the
    in-process benchmarks (bench_grant_overhead, bench_grant_steps)."""
    from idp import create_app

    database_url = fresh_database(database)
    prepare_ours(database_url, origin, redis_url)
    return create_app(
        env="development",
        database_url=database_url,
        redis_url=redis_url,
        public_base_url=origin,
        log_level="WARNING",
    )


def server_command(args: argparse.Namespace, port: int) -> list[str]:
    """How our provider is served: granian (the production server, as the Dockerfile) or
    gunicorn (the previous one, kept for comparison)."""
    if args.server == "granian":
        return [
            str(VENV_BIN / "granian"),
            "--interface",
            "wsgi",
            "--workers",
            str(args.workers),
            "--blocking-threads",
            str(args.threads),
            "--no-ws",
            "--log-level",
            "warning",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--factory",
            "idp:create_app",
        ]
    command = [
        str(VENV_BIN / "gunicorn"),
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--keep-alive",
        "5",
        "--log-level",
        "warning",
        "-b",
        f"127.0.0.1:{port}",
    ]
    if args.worker_class == "gthread":
        command += ["--threads", str(args.threads)]
    return [*command, "idp:create_app()"]


@contextlib.contextmanager
def our_provider(args: argparse.Namespace) -> Iterator[Provider]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    database_url = fresh_database(DATABASE)
    try:
        views = prepare_ours(database_url, origin)["views"]
        env = {
            **os.environ,
            "IDP_ENV": "development",
            "IDP_DATABASE_URL": database_url,
            "IDP_REDIS_URL": OUR_REDIS,
            "IDP_PUBLIC_BASE_URL": origin,
            "IDP_LOG_LEVEL": "WARNING",
        }
        command = server_command(args, port)
        process = subprocess.Popen(command, cwd=ROOT, env=env)
        try:
            wait_for_http(origin + "/healthz", 60, process)
            available: dict[str, str] = {}
            needs = {
                "client_credentials": ("oidc.token",),
                "authorization_code": ("oidc.authorize", "oidc.token"),
                "refresh_token": ("oidc.authorize", "oidc.token"),
                "userinfo": ("oidc.authorize", "oidc.token", "oidc.userinfo"),
            }
            for scenario, endpoints in needs.items():
                missing = [e for e in endpoints if e not in views]
                if missing:
                    available[scenario] = f"not available: no {', '.join(missing)} endpoint yet"
            yield Provider(
                name="Secure Access",
                origin=origin,
                pid=process.pid,
                paths={
                    "floor": "/healthz",
                    "discovery": "/.well-known/openid-configuration",
                    "jwks": "/.well-known/jwks.json",
                    "authorize": "/authorize",
                    "token": "/token",
                    "userinfo": "/userinfo",
                },
                code_client=(CODE_CLIENT, SECRET),
                cc_client=(CC_CLIENT, CC_SECRET),
                cc_scope=None,
                sign_in_values={"email": EMAIL, "password": PASSWORD},
                available=available,
            )
        finally:
            stop(process)
    finally:
        with contextlib.suppress(Exception):
            drop_database(DATABASE)


@contextlib.contextmanager
def node_provider(args: argparse.Namespace) -> Iterator[Provider]:
    port = free_port()
    env = {
        **os.environ,
        "NODE_ENV": "production",
        "OP_PORT": str(port),
        "OP_WORKERS": str(args.workers),
        "OP_REDIS_URL": NODE_REDIS,
        # Never flush a database that is shared (the brief's Redis database 0, for instance).
        "OP_REDIS_NO_FLUSH": "1" if NODE_REDIS == OUR_REDIS or NODE_REDIS.endswith("/0") else "0",
        "OP_CLIENT_ID": CODE_CLIENT,
        "OP_CLIENT_SECRET": SECRET,
        "OP_REDIRECT_URI": REDIRECT_URI,
        "OP_POST_LOGOUT_REDIRECT_URI": POST_LOGOUT_URI,
    }
    process = subprocess.Popen(
        ["node", "--max-old-space-size=512", str(NODE_DIR / "op.mjs")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        origin = f"http://127.0.0.1:{port}"
        wait_for_http(origin + "/.well-known/openid-configuration", 30, process)
        yield Provider(
            name="node-oidc-provider",
            origin=origin,
            pid=process.pid,
            paths={
                "floor": "/healthz",
                "discovery": "/.well-known/openid-configuration",
                "jwks": "/jwks",
                "authorize": "/auth",
                "token": "/token",
                "userinfo": "/me",
            },
            code_client=(CODE_CLIENT, SECRET),
            cc_client=(CODE_CLIENT, SECRET),
            cc_scope="api:read",
            # offline_access needs prompt=consent at node-oidc-provider (OIDC Core §11);
            # the resource makes its access tokens ES256 JWTs, like ours.
            authorize_extra={"prompt": "consent", "resource": NODE_RESOURCE},
            userinfo_extra={"prompt": "consent"},
        )
    finally:
        stop(process)


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Side:
    provider: Provider
    rounds: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None


def measure(provider: Provider, job: dict[str, Any]) -> dict[str, Any]:
    """One load run, with the CPU time the server and the stores spent on it per request.

    The stores' figure counts every Redis and PostgreSQL process on the machine, so anything
    else using them at the same time inflates it; only one provider is under load at a time.
    """
    server, stores = process_tree(provider.pid), store_pids()
    server_before, stores_before = cpu_seconds(server), cpu_seconds(stores)
    figures = run_load(job)
    server_used = cpu_seconds(process_tree(provider.pid)) - server_before
    stores_used = cpu_seconds(stores) - stores_before
    count = figures["requests"]
    figures["server_cpu_ms_per_request"] = round(1000 * server_used / count, 3) if count else None
    figures["stores_cpu_ms_per_request"] = round(1000 * stores_used / count, 3) if count else None
    return figures


def fixed_job(provider: Provider, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    job: dict[str, Any] = {"connections": args.connections, "duration": args.duration}
    if scenario == "client_credentials":
        body = {"grant_type": "client_credentials"}
        if provider.cc_scope:
            body["scope"] = provider.cc_scope
        job.update(
            url=provider.origin + provider.paths["token"],
            method="POST",
            headers={"authorization": basic(*provider.cc_client), "content-type": FORM},
            body=urlencode(body),
        )
    elif scenario == "userinfo":
        job.update(
            url=provider.origin + provider.paths["userinfo"],
            headers={"authorization": f"Bearer {provider.userinfo_token}"},
        )
    else:
        job.update(url=provider.origin + provider.paths[scenario])
    return job


def grant_job(provider: Provider, bodies: list[str], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "url": provider.origin + provider.paths["token"],
        "method": "POST",
        "headers": {"authorization": basic(*provider.code_client), "content-type": FORM},
        "bodies": bodies,
        "connections": args.connections,
        "collect": "refresh_token",
    }


def check_fixed(provider: Provider, scenario: str, args: argparse.Namespace) -> None:
    """One request first: a scenario that fails outright is 'not available', not a figure."""
    probe = fixed_job(provider, scenario, args) | {"duration": 1, "connections": 1}
    figures = run_load(probe)
    if figures["non_2xx"] or figures["errors"] or not figures["requests"]:
        detail = "; ".join(figures["error_bodies"]) or f"{figures['errors']} socket errors"
        raise NotAvailable(f"not available: {detail[:300]}")


def prepare_userinfo_token(provider: Provider) -> None:
    """An access token UserInfo accepts, from a code redeemed here."""
    (code,) = provider.mint(1, provider.userinfo_extra or provider.authorize_extra, threads=1)
    body = {k: v[0] for k, v in parse_qs(provider.code_body(code)).items()}
    provider.userinfo_token = provider.token_request(body, provider.code_client)["access_token"]


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rounds, key=lambda r: r["rps"])
    return ordered[(len(ordered) - 1) // 2]


def summary(side: Side) -> dict[str, Any]:
    if side.note:
        return {"available": False, "note": side.note}
    chosen = median_round(side.rounds)
    return {
        "available": True,
        "rps": round(chosen["rps"], 1),
        "p50_ms": chosen["latency_ms"]["p50"],
        "p99_ms": chosen["latency_ms"]["p99"],
        "server_cpu_ms_per_request": chosen["server_cpu_ms_per_request"],
        "stores_cpu_ms_per_request": chosen["stores_cpu_ms_per_request"],
        "requests": chosen["requests"],
        "non_2xx": chosen["non_2xx"],
        "errors": chosen["errors"],
        "error_bodies": chosen["error_bodies"],
        "rounds_rps": [round(r["rps"], 1) for r in side.rounds],
    }


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    ensure_node_tooling()
    results: dict[str, dict[str, Side]] = {}
    with node_provider(args) as node, our_provider(args) as ours:
        providers = (node, ours)
        say = lambda text: print(text, flush=True)  # noqa: E731

        # Fixed-request scenarios: a warm-up, then rounds alternating between the providers.
        for scenario in ("floor", "discovery", "jwks", "client_credentials", "userinfo"):
            if scenario not in args.scenarios:
                continue
            sides = {p.name: Side(p) for p in providers}
            results[scenario] = sides
            for provider in providers:
                side = sides[provider.name]
                if scenario in provider.available:
                    side.note = provider.available[scenario]
                    continue
                try:
                    if scenario == "userinfo":
                        prepare_userinfo_token(provider)
                    check_fixed(provider, scenario, args)
                    run_load(fixed_job(provider, scenario, args) | {"duration": args.warmup})
                except (NotAvailable, RuntimeError) as error:
                    side.note = (
                        str(error)
                        if isinstance(error, NotAvailable)
                        else (f"not available: {error}")
                    )
            for round_ in range(args.rounds):
                order = providers if round_ % 2 == 0 else providers[::-1]
                for provider in order:
                    side = sides[provider.name]
                    if side.note:
                        continue
                    figures = measure(provider, fixed_job(provider, scenario, args))
                    side.rounds.append(figures)
                    say(
                        f"{scenario:>20} {provider.name:>20} round {round_ + 1}: "
                        f"{figures['rps']:8.1f}/s p50 {figures['latency_ms']['p50']} ms "
                        f"p99 {figures['latency_ms']['p99']} ms non-2xx {figures['non_2xx']}"
                    )

        # Code redemption, then refresh with the refresh tokens the redemption returned.
        code_sides = {p.name: Side(p) for p in providers}
        refresh_sides = {p.name: Side(p) for p in providers}
        if not {"authorization_code", "refresh_token"} & set(args.scenarios):
            return {
                scenario: {name: summary(side) for name, side in sides.items()}
                for scenario, sides in results.items()
            }
        results["authorization_code"] = code_sides
        results["refresh_token"] = refresh_sides
        for provider in providers:
            if "authorization_code" in provider.available:
                code_sides[provider.name].note = provider.available["authorization_code"]
                refresh_sides[provider.name].note = provider.available["refresh_token"]
        # Codes live 60 s, so each round mints just enough for about --duration seconds of
        # redemption at the rate the warm-up round (200 codes) showed, at most --codes.
        counts: dict[str, int] = {}
        for round_ in range(-1, args.rounds):  # round -1 is the warm-up
            order = providers if round_ % 2 == 0 else providers[::-1]
            for provider in order:
                code_side, refresh_side = code_sides[provider.name], refresh_sides[provider.name]
                if code_side.note:
                    continue
                n = 200 if round_ < 0 else counts[provider.name]
                try:
                    started = time.monotonic()
                    codes = provider.mint(n)
                    minted = time.monotonic() - started
                except RuntimeError as error:
                    code_side.note = refresh_side.note = f"not available: {error}"
                    continue
                figures = measure(
                    provider, grant_job(provider, [provider.code_body(c) for c in codes], args)
                )
                tokens = [t for t in figures.pop("collected") if t]
                if round_ >= 0:
                    figures["mint_seconds"] = round(minted, 2)
                    code_side.rounds.append(figures)
                else:
                    wanted = min(args.codes, int(figures["rps"] * args.duration))
                    counts[provider.name] = max(
                        args.connections, wanted - wanted % args.connections
                    )
                say(
                    f"{'authorization_code':>20} {provider.name:>20} round {round_ + 1}: "
                    f"{figures['rps']:8.1f}/s p50 {figures['latency_ms']['p50']} ms "
                    f"p99 {figures['latency_ms']['p99']} ms non-2xx {figures['non_2xx']} "
                    f"({n} codes minted in {minted:.1f} s)"
                )
                if figures["non_2xx"] and not tokens:
                    code_side.note = "not available: " + "; ".join(figures["error_bodies"])
                    code_side.rounds.clear()
                if len(tokens) < len(codes):
                    refresh_side.note = (
                        f"not available: {len(codes) - len(tokens)} of {len(codes)} "
                        "redemptions returned no refresh_token"
                    )
                    continue
                bodies = [
                    urlencode({"grant_type": "refresh_token", "refresh_token": t}) for t in tokens
                ]
                figures = measure(provider, grant_job(provider, bodies, args))
                figures.pop("collected", None)
                if round_ >= 0:
                    refresh_side.rounds.append(figures)
                say(
                    f"{'refresh_token':>20} {provider.name:>20} round {round_ + 1}: "
                    f"{figures['rps']:8.1f}/s p50 {figures['latency_ms']['p50']} ms "
                    f"p99 {figures['latency_ms']['p99']} ms non-2xx {figures['non_2xx']}"
                )
    return {
        scenario: {name: summary(side) for name, side in sides.items()}
        for scenario, sides in results.items()
    }


# --- reporting --------------------------------------------------------------------------------


def ratios(table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ours, node = table.get("Secure Access", {}), table.get("node-oidc-provider", {})
    if not (ours.get("available") and node.get("available")):
        return {"rps_ratio": None, "p50_ratio": None, "p99_ratio": None}
    return {
        "rps_ratio": round(ours["rps"] / node["rps"], 3),
        "p50_ratio": round(ours["p50_ms"] / node["p50_ms"], 3) if node["p50_ms"] else None,
        "p99_ratio": round(ours["p99_ms"] / node["p99_ms"], 3) if node["p99_ms"] else None,
    }


def markdown(report: dict[str, Any]) -> str:
    setup = report["setup"]
    lines = [
        "# Token endpoint benchmark: Secure Access vs node-oidc-provider",
        "",
        f"`python -m bench.bench_token` on {report['when']}, {setup['machine']}. "
        f"Both providers side by side on loopback, {setup['workers']} worker processes each "
        f"(ours: {setup['worker_class']}; node: node:cluster), "
        f"{setup['connections']} concurrent connections from one load generator "
        "(bench/node/load.mjs), "
        f"{setup['rounds']} alternating rounds of {setup['duration']} s "
        f"(grants: each round redeems enough codes for about {setup['duration']} s, at most "
        f"{setup['codes']}, then refreshes each refresh token once); the median round is shown. "
        f"Load average before / after: {setup['load_before']} / {setup['load_after']} "
        "(anything else running on the machine slows both sides and adds noise).",
        "",
        "Signing: ID tokens RS256 (2048-bit RSA) on both; access tokens are JWTs signed ES256 on "
        "both (node: resource indicators, `accessTokenFormat: 'jwt'`). See docs/benchmarks.md.",
        "",
        "| Measure | Secure Access /s | p50 / p99 ms | CPU ms/req server + stores "
        "| node-oidc-provider /s | p50 / p99 ms | CPU ms/req server + stores | Ours / node |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario, title in SCENARIOS:
        table = report["results"].get(scenario)
        if not table:
            continue
        cells = []
        for name in ("Secure Access", "node-oidc-provider"):
            side = table[name]
            if side["available"]:
                flag = " (!)" if side["non_2xx"] or side["errors"] else ""
                cells += [
                    f"{side['rps']:,.0f}{flag}",
                    f"{side['p50_ms']:.2f} / {side['p99_ms']:.2f}",
                    f"{side['server_cpu_ms_per_request']:.2f} + "
                    f"{side['stores_cpu_ms_per_request']:.2f}",
                ]
            else:
                cells += ["not available", "-", "-"]
        ratio = report["ratios"][scenario]["rps_ratio"]
        ratio_text = f"{ratio:.2f}x" if ratio is not None else "-"
        lines.append(f"| {title} | " + " | ".join(cells) + f" | {ratio_text} |")
    lines += ["", "Target: every grant at least 1.0x node-oidc-provider.", ""]
    for grant in GRANTS:
        ratio = report["ratios"].get(grant, {}).get("rps_ratio")
        verdict = "not measured" if ratio is None else ("met" if ratio >= 1.0 else "NOT met")
        lines.append(f"- {grant}: {verdict}" + (f" ({ratio:.2f}x)" if ratio is not None else ""))
    notes = [
        f"- {scenario}, {name}: {side['note']}"
        for scenario, table in report["results"].items()
        for name, side in table.items()
        if not side["available"]
    ] + [
        f"- {scenario}, {name}: {side['non_2xx']} non-2xx, {side['errors']} socket errors: "
        + "; ".join(side["error_bodies"])
        for scenario, table in report["results"].items()
        for name, side in table.items()
        if side["available"] and (side["non_2xx"] or side["errors"])
    ]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per fixed run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--codes", type=int, default=4000, help="at most this many codes per redemption round"
    )
    parser.add_argument("--workers", type=int, default=2)
    # --server gunicorn: gthread keeps connections alive (sync closes every connection).
    parser.add_argument("--server", default="granian", choices=("granian", "gunicorn"))
    parser.add_argument("--worker-class", default="gthread", choices=("sync", "gthread"))
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker")
    parser.add_argument("--output", default="token", help="bench/results/<output>.json|md")
    parser.add_argument(
        "--scenarios",
        default=",".join(name for name, _ in SCENARIOS),
        help="comma-separated subset to measure (quick comparisons); default: all",
    )
    args = parser.parse_args()
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - {name for name, _ in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results = run_benchmark(args)
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    node_version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    report = {
        "benchmark": "token endpoint: Secure Access vs node-oidc-provider",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "setup": {
            "machine": f"Python {platform.python_version()}, Node {node_version}, "
            f"{os.cpu_count()} CPUs",
            "connections": args.connections,
            "duration": args.duration,
            "rounds": args.rounds,
            "codes": args.codes,
            "workers": args.workers,
            "worker_class": (
                f"granian wsgi ({args.threads} blocking threads)"
                if args.server == "granian"
                else f"gunicorn {args.worker_class}"
                + (f" ({args.threads} threads)" if args.worker_class == "gthread" else "")
            ),
            "load_before": load_before,
            "load_after": load_after,
            "id_token_alg": "RS256",
            "access_token_alg": "ES256",
        },
        "results": results,
        "ratios": {scenario: ratios(table) for scenario, table in results.items()},
        "target_ratio": 1.0,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.output}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
