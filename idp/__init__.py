"""Secure Access: the identity provider. ``create_app`` reads as the table of contents."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, PrefixLoader
from sqlalchemy import event
from sqlalchemy.engine import Engine

from idp import pool, store
from idp.config import Settings, load_settings
from idp.extensions import csrf, db, migrate
from idp.logging import setup_logging
from idp.oidc import machine_lane
from idp.web import errors, filters, forms, headers, requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None, **overrides: object) -> Flask:
    """Build the provider. Each line is one concern, in the order they must be set up."""
    settings = settings or load_settings(**overrides)
    app = Flask(__name__, instance_path=settings.instance_path or str(PROJECT_ROOT / "instance"))
    setup_logging(settings)
    setup_config(app, settings)
    setup_templates(app)
    machine_lane.init_app(app, settings)  # inside ProxyFix: it sees the client's address
    requests.init_app(app, settings)
    headers.init_app(app, settings)
    setup_database(app, settings)
    store.init_app(app, settings.redis_url, settings.cache_version_window_seconds)
    setup_services(app, settings)
    csrf.init_app(app)
    errors.init_app(app)
    register_blueprints(app)
    register_cli(app)
    return app


def setup_config(app: Flask, settings: Settings) -> None:
    app.extensions["settings"] = settings
    app.config.update(
        SECRET_KEY=settings.secret_key.get_secret_value(),
        # The signed Flask session carries only short-lived references (the CSRF token, the
        # pending sign-in id, MFA ceremony ids), never personal data.
        SESSION_COOKIE_NAME="__Host-sa_flow",
        SESSION_COOKIE_PATH="/",
        TESTING=settings.env == "test",
        PREFERRED_URL_SCHEME="https" if settings.uses_https else "http",
        WTF_CSRF_TIME_LIMIT=3600,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Browsers accept Secure cookies from http://localhost and 127.0.0.1 too.
        SESSION_COOKIE_SECURE=True,
        PERMANENT_SESSION_LIFETIME=settings.session_absolute_seconds,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )


def setup_templates(app: Flask) -> None:
    """Our templates first, then GOV.UK Frontend's Jinja macros under their own prefix."""
    app.jinja_loader = ChoiceLoader(
        [
            FileSystemLoader(str(Path(app.root_path) / "templates")),
            PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")}),
        ]
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.globals["has_endpoint"] = lambda name: name in app.view_functions
    forms.init_app(app)
    filters.init_app(app)


def setup_services(app: Flask, settings: Settings) -> None:
    """The service objects views and the worker use, each with its dependencies bound."""
    from idp.services import audit_writer, jobs, mail, passwords, sso_sessions, throttle

    audit_writer.init_app(app, settings)  # routine audit rows, batched per process (issue 4)
    passwords.init_app(app, settings)
    throttle.init_app(app, settings)
    sso_sessions.init_app(app, settings)
    mail.init_app(app, settings)
    jobs.init_app()
    from idp.oidc import backchannel  # back-channel logout: ended sessions -> Logout Tokens

    backchannel.init_app(app)


def setup_database(app: Flask, settings: Settings) -> None:
    url = settings.database_url
    if not url:
        os.makedirs(app.instance_path, exist_ok=True)
        url = f"sqlite:///{Path(app.instance_path) / 'idp.sqlite3'}"
        app.logger.warning(
            "IDP_DATABASE_URL is not set: using SQLite at %s (one machine only)", url
        )
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    postgres = url.startswith("postgresql")
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = (
        # No pool_pre_ping: it costs a round trip per request. idp.pool pings only idle
        # connections, which keeps a PostgreSQL restart harmless (DESIGN.md §9, issue 3).
        {"pool_size": 10, "max_overflow": 10, "pool_recycle": pool.RECYCLE_SECONDS}
        if postgres
        else {}
    )
    db.init_app(app)
    if postgres:
        with app.app_context():
            pool.ping_when_idle(db.engine)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    """SQLite enforces foreign keys only when asked, and WAL lets the worker read while we write."""
    module = type(dbapi_connection).__module__
    if module.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


def register_blueprints(app: Flask) -> None:
    """Every public URL, and the access guard of each area, is visible here."""
    from idp.account import mfa as account_mfa
    from idp.account import views as account
    from idp.auth import (  # noqa: F401 (these add routes to the auth blueprint)
        invitation,
        mfa,
        mfa_reenrol,
        replace_password,
        reset,
        sign_in,
        sign_out,
    )
    from idp.web import health, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)
    # Public journeys: anyone may reach them; each step guards itself (idp.auth.flow).
    app.register_blueprint(sign_in.bp)
    app.register_blueprint(invitation.bp)
    app.register_blueprint(reset.bp)
    # The signed-in person's own pages: every view is @login_required (idp.account.guards).
    app.register_blueprint(account.bp)
    app.register_blueprint(account_mfa.bp)
    # Your services and requesting access (issue 7): @login_required on every view.
    from idp.account import services as your_services

    app.register_blueprint(your_services.bp)
    # Services you have allowed (F11): view and withdraw consents; @login_required on each.
    from idp.account import allowed_services

    app.register_blueprint(allowed_services.bp)
    # Health probes are machine-to-machine and carry no forms.
    csrf.exempt(health.bp)
    # OIDC discovery and JWKS: public, read-only JSON documents (GET only, no forms).
    from idp.oidc import discovery as oidc_discovery

    app.register_blueprint(oidc_discovery.bp)
    csrf.exempt(oidc_discovery.bp)
    # The OIDC protocol: /authorize (GET, and POST from a relying service's page), /token,
    # /userinfo, /revoke and /introspect. No CSRF token: callers are other sites and machines,
    # which prove themselves by client authentication, bearer tokens, PKCE and state.
    from idp.oidc import endpoints as oidc_endpoints

    app.register_blueprint(oidc_endpoints.bp)
    csrf.exempt(oidc_endpoints.bp)
    # Choose organisation, a step of an authorization request (issue 7): our own form, so it
    # keeps CSRF protection; the waiting request is re-validated when it resumes.
    from idp.oidc import choose_organisation

    app.register_blueprint(choose_organisation.bp)
    # Consent for services that are not first-party (F11): our own form, so it keeps CSRF
    # (E07); it also revokes refresh tokens when a consent is withdrawn.
    from idp.oidc import consent

    app.register_blueprint(consent.bp)
    # RP-Initiated Logout: relying services send GET or POST /logout without our CSRF token;
    # the confirmation form shown there posts to /logout/confirm, which keeps CSRF (E07, I03).
    from idp.oidc import logout as oidc_logout

    app.register_blueprint(oidc_logout.bp)
    csrf.exempt(oidc_logout.end_session)
    # The service-to-service API (/api/v1): JSON for relying services, each call guarded by a
    # client-credentials bearer token and its scope (idp.api.auth). No CSRF: no cookies count.
    from idp.api import views as api

    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)
    # Staff areas: the helpdesk console (/helpdesk) and approvers' pages (/organisations).
    # Every view carries one guard from idp.console.guards; tests/console enumerates them.
    from idp.console import blueprints as console
    from idp.console import pages as console_pages  # noqa: F401 (adds routes to the blueprints)

    app.register_blueprint(console.helpdesk_bp)
    app.register_blueprint(console.approver_bp)
    # The emails the development outbox wrote: the URLs exist in development only.
    if app.extensions["settings"].env == "development":
        from idp.web import dev_outbox

        app.register_blueprint(dev_outbox.bp)


def register_cli(app: Flask) -> None:
    from idp import cli

    cli.init_app(app)
