"""Sign-in with the ``organisation`` scope for a person in 20 organisations, against a plain
sign-in, in the same run (issue 7 "Must show").

- **plain**: the sign-in page, the password POST and its finish, landing on "Your services"
  with nothing waiting: what a person signing in at the provider directly does.
- **choose**: a relying service's authorization request with ``openid organisation roles``,
  the same sign-in, the choose-organisation page (20 radios), the choice, and the access check,
  up to the redirect that carries the code.

Both use production argon2id parameters (as bench_sign_in), so the ratio says what the extra
steps cost beside the one password hash. Each round uses a fresh browser (test client), so
nothing is remembered between rounds; the two kinds alternate in blocks so that drift affects
both alike. Runs against PostgreSQL + Redis when IDP_BENCH_DATABASE_URL / IDP_BENCH_REDIS_URL
are set, else embedded. Writes bench/results/choose_organisation[_server].json.

    .venv/bin/python -m bench.bench_choose_organisation [--rounds 20]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import secrets
import time
from urllib.parse import urlencode, urlsplit

from flask.testing import FlaskClient

from bench.common import (
    PASSWORD,
    argon2_figures,
    backend,
    bench_app,
    median_ms,
    on_server,
    write_figures,
)
from idp.extensions import db
from idp.models import Organisation, OrganisationType, User, UserStatus
from idp.oidc.keys import ensure_keys
from idp.services import access, clients
from idp.services.passwords import get_passwords

EMAIL = "bench.twenty@school.example"
CLIENT_ID = "bench-organisations"
REDIRECT_URI = "https://bench-organisations.example/callback"
ORGANISATIONS = 20


# Regular expressions, not an HTML parser: parsing in the timed loop would be the benchmark's
# own cost, not the provider's (a parser took about a third of the extra time measured).
_CSRF = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"')
_RADIO = re.compile(rb'name="organisation" type="radio" value="([^"]+)"')


def _csrf(html: bytes) -> str:
    found = _CSRF.search(html)
    assert found is not None
    return found.group(1).decode()


def _setup(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        ensure_keys(actor="bench")
        user = db.session.query(User).filter_by(email=EMAIL).one_or_none()
        if user is None:
            user = User(
                email=EMAIL,
                given_name="Bench",
                family_name="Twenty",
                status=UserStatus.ACTIVE,
                password_hash=get_passwords().hash(PASSWORD),
            )
            db.session.add(user)
            service, _ = clients.register_service(
                CLIENT_ID,
                "Benchmark service",
                redirect_uris=[REDIRECT_URI],
                allowed_scopes=["openid", "profile", "organisation", "roles"],
                grant_types=["authorization_code"],
                roles=[{"code": "viewer", "name": "Viewer"}],
                actor="bench",
            )
            for n in range(ORGANISATIONS):
                org = Organisation(
                    name=f"Bench School {n:02d}",
                    type=OrganisationType.ESTABLISHMENT,
                    urn=f"9{n:05d}",
                )
                db.session.add(org)
                db.session.flush()
                access.add_membership(user, org, actor="bench")
                access.set_access(user, org, service, ["viewer"], actor="bench")
        db.session.commit()


def _sign_in(client: FlaskClient, i: int) -> object:
    page = client.get("/sign-in?prompt=login")
    return client.post(
        "/sign-in",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": _csrf(page.data)},
        environ_base={"REMOTE_ADDR": f"10.1.{i // 250}.{i % 250}"},
    )


def _follow(client: FlaskClient, response):  # type: ignore[no-untyped-def]
    while response.status_code in (302, 303) and response.headers["Location"].startswith("/"):
        response = client.get(response.headers["Location"])
    return response


def plain(app, i: int) -> float:  # type: ignore[no-untyped-def]
    client = app.test_client()
    started = time.perf_counter()
    landed = _follow(client, _sign_in(client, i))
    elapsed = time.perf_counter() - started
    assert landed.status_code == 200, landed.status_code
    assert b"Your services" in landed.data
    return elapsed


def choose(app, i: int) -> float:  # type: ignore[no-untyped-def]
    client = app.test_client()
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid organisation roles",
            "state": "s",
            "nonce": "n",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    started = time.perf_counter()
    _follow(client, client.get("/authorize?" + query))  # to the sign-in page
    page = _follow(client, _sign_in(client, i))
    assert b"Which organisation" in page.data, page.status_code
    radios = _RADIO.findall(page.data)
    assert len(radios) == ORGANISATIONS
    done = _follow(
        client,
        client.post(
            urlsplit(page.request.url).path,
            data={"organisation": radios[-1].decode(), "csrf_token": _csrf(page.data)},
        ),
    )
    elapsed = time.perf_counter() - started
    assert done.headers["Location"].startswith(REDIRECT_URI + "?code="), done.status_code
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    app = bench_app("bench-choose-org-")
    _setup(app)
    plains: list[float] = []
    chooses: list[float] = []
    # No app context around the rounds: each request has its own, as in production (an outer
    # one would share ``g``, and so one browser's CSRF token, between the two clients).
    for i in range(3):  # warm-up, discarded
        plain(app, i)
        choose(app, i)
    block = 5
    for b in range(max(1, args.rounds // block)):
        plains += [plain(app, 100 + b * block + k) for k in range(block)]
        chooses += [choose(app, 500 + b * block + k) for k in range(block)]
    with app.app_context():
        db.engine.dispose()

    plain_ms = median_ms(plains)
    choose_ms = median_ms(chooses)
    figures = {
        "benchmark": "sign-in + choose organisation (20) + code vs plain sign-in",
        "backend": backend(),
        "argon2": argon2_figures(app),
        "organisations": ORGANISATIONS,
        "rounds": len(plains),
        "plain_sign_in_median_ms": round(plain_ms, 2),
        "choose_organisation_to_code_median_ms": round(choose_ms, 2),
        "ratio": round(choose_ms / plain_ms, 3),
    }
    write_figures("choose_organisation" + ("_server" if on_server() else ""), figures)


if __name__ == "__main__":
    main()
