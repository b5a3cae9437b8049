"""Jinja filters that turn stored values into plain English."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

EVENT_DESCRIPTIONS = {
    "sign_in.succeeded": "You signed in",
    "sign_in.failed": "Someone tried to sign in with the wrong password",
    "sign_in.throttled": "Sign-in attempts were paused after too many tries",
    "account.locked": "Your account was locked for 15 minutes after too many wrong passwords",
    "password.changed": "Your password was changed",
    "email.changed": "Your email address was changed",
    "sign_out": "You signed out",
    "sessions.ended": "You signed out on other devices",
    "mfa.failed": "Someone entered a wrong security code or used the wrong key",
    "mfa.totp.added": "You set up an authenticator app",
    "mfa.totp.removed": "An authenticator app was removed from your account",
    "mfa.webauthn.added": "You added a security key or passkey",
    "mfa.webauthn.removed": "A security key or passkey was removed from your account",
    "mfa.recovery_code.used": "A recovery code was used to sign in",
    "mfa.recovery_codes.issued": "You got a new set of recovery codes",
    "consent.granted": "You allowed a service to see your account details",
    "consent.refused": "You did not allow a service to see your account details",
    "consent.withdrawn": "You withdrew a service's permission to see your account details",
}


def describe_event(event: str) -> str:
    return EVENT_DESCRIPTIONS.get(event, event.replace(".", " ").replace("_", " ").capitalize())


def format_epoch(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%-d %B %Y at %H:%M")


def describe_browser(user_agent: str | None) -> str:
    """A rough, friendly name for a browser; people recognise "Chrome on Windows"."""
    ua = user_agent or ""
    browser = next(
        (
            name
            for key, name in (
                ("Edg/", "Edge"),
                ("Chrome/", "Chrome"),
                ("Firefox/", "Firefox"),
                ("Safari/", "Safari"),
            )
            if key in ua
        ),
        "A browser",
    )
    system = next(
        (
            name
            for key, name in (
                ("Windows", "Windows"),
                ("Mac OS", "macOS"),
                ("iPhone", "iPhone"),
                ("iPad", "iPad"),
                ("Android", "Android"),
                ("CrOS", "ChromeOS"),
                ("Linux", "Linux"),
            )
            if key in ua
        ),
        None,
    )
    return f"{browser} on {system}" if system else browser


def init_app(app: Flask) -> None:
    app.jinja_env.filters["describe_event"] = describe_event
    app.jinja_env.filters["format_epoch"] = format_epoch
    app.jinja_env.filters["describe_browser"] = describe_browser
    app.jinja_env.globals["password_min_length"] = lambda: (
        app.extensions["settings"].password_min_length
    )
