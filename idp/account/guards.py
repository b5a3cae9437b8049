"""Access guards for pages that need a signed-in person."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, redirect, request, url_for
from flask.typing import ResponseReturnValue

from idp.auth.sso_cookie import current_sso_session

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


def login_required(view: F) -> F:
    """No live SSO session: go to sign-in and come back here afterwards."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if current_sso_session() is None:
            return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def recent_sign_in_required(view: F) -> F:
    """E05: sensitive changes need a sign-in within ``recent_auth_seconds``; else confirm it."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        sso = current_sso_session()
        if sso is None:
            return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))
        max_age = current_app.extensions["settings"].recent_auth_seconds
        if time.time() - sso.auth_time > max_age:
            return redirect(url_for("account.confirm_password", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
