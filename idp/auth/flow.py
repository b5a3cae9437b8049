"""The sign-in state machine (CONVENTIONS.md 5; DESIGN.md §4).

A pending sign-in records who is signing in, which steps are done, and where to go after.
It lives in the store under a random id kept in this browser's signed Flask session, and it
expires after 15 minutes, so it is bound to the browser that started it (D06: a second
factor entered for user A can never finish user B's sign-in). Each step is a view guarded
by :func:`auth_step`; arriving at a step out of order redirects to the step that is due.
Other rooms add steps with :func:`register_step` (MFA, choose organisation, first-time set-up).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from flask import abort, g, redirect, session, url_for
from flask.typing import ResponseReturnValue
from redis.client import Pipeline

from idp.models import User
from idp.services import users
from idp.store import Store, get_store

PENDING_TTL_SECONDS = 900
_KEY = "signin:{}"
_SESSION_FIELD = "signin"

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


@dataclass
class PendingSignIn:
    id: str
    sub: str | None = None
    done: list[str] = field(default_factory=list)
    amr: list[str] = field(default_factory=list)
    return_to: str | None = None
    client_id: str | None = None
    started_at: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)

    def user(self) -> User | None:
        return users.find_by_sub(self.sub) if self.sub else None


@dataclass(frozen=True)
class Step:
    """One step: its name, the view that performs it, and when it applies to a user."""

    name: str
    endpoint: str
    applies: Callable[[PendingSignIn, User], bool]
    #: Optional: queue on a store pipeline the command ``applies`` would send, and return a
    #: callback that receives its reply (or None to queue nothing). The sign-in POST sends
    #: these with its own writes in one round trip (issue 3); see :func:`send_with_prefetch`.
    prefetch: Callable[[PendingSignIn, User, Store], Callable[[Any], None] | None] | None = None


_steps: list[Step] = []


def register_step(step: Step, *, before: str | None = None) -> None:
    """Add a step after the password (or before another named step)."""
    if any(s.name == step.name for s in _steps):
        return
    if before is not None:
        index = next(i for i, s in enumerate(_steps) if s.name == before)
        _steps.insert(index, step)
    else:
        _steps.append(step)


def safe_return_to(target: str | None) -> str | None:
    """Only paths on this site: never an absolute or scheme-relative URL (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(c in target for c in "\r\n\t\\"):
        return None
    return target


def start(
    *, return_to: str | None = None, client_id: str | None = None, batch: Store | None = None
) -> PendingSignIn:
    """Begin a pending sign-in in this browser (saved on ``batch`` when given)."""
    pending = PendingSignIn(
        id=secrets.token_urlsafe(24), return_to=safe_return_to(return_to), client_id=client_id
    )
    save(pending, batch=batch)
    return pending


def start_step_up(
    sub: str,
    amr: list[str],
    *,
    return_to: str | None,
    client_id: str | None = None,
    require_mfa: bool = True,
) -> PendingSignIn:
    """Ask an already signed-in person for more (e.g. a second factor), keeping their session.

    The password step counts as done and the session's methods carry over; steps that apply
    (MFA when ``require_mfa``) run, then ``finish`` upgrades the existing SSO session in
    place (same ``sid``, new cookie value) instead of starting a new one.
    """
    pending = PendingSignIn(
        id=secrets.token_urlsafe(24),
        sub=sub,
        done=["password"],
        amr=list(amr),
        return_to=safe_return_to(return_to),
        client_id=client_id,
        data={"step_up": True, "require_mfa": require_mfa},
    )
    save(pending)
    return pending


def save(pending: PendingSignIn, *, batch: Store | None = None) -> None:
    """Store ``pending`` (on ``batch``, a pipeline the caller executes, when given)."""
    store = get_store() if batch is None else batch
    # vars(), not asdict(): the same JSON without asdict's deep copy (issue 3's budget).
    store.set(_KEY.format(pending.id), json.dumps(vars(pending)), ex=PENDING_TTL_SECONDS)
    if session.get(_SESSION_FIELD) != pending.id:
        session[_SESSION_FIELD] = pending.id  # an unchanged session is not re-signed


def load() -> PendingSignIn | None:
    key = pending_key()
    return parse(get_store().get(key)) if key is not None else None


def pending_key() -> str | None:
    """The store key of this browser's pending sign-in, or None if it has not started one.

    For callers that read it on a round trip they send anyway (the sign-in POST, issue 3).
    """
    pending_id = session.get(_SESSION_FIELD)
    return _KEY.format(pending_id) if isinstance(pending_id, str) else None


def parse(raw: bytes | str | None) -> PendingSignIn | None:
    """A pending sign-in from the value stored at :func:`pending_key` (None if expired)."""
    return PendingSignIn(**json.loads(raw)) if raw is not None else None


def discard(pending: PendingSignIn | None = None) -> None:
    pending_id = pending.id if pending else session.get(_SESSION_FIELD)
    if isinstance(pending_id, str):
        get_store().delete(_KEY.format(pending_id))
    session.pop(_SESSION_FIELD, None)


def next_step(pending: PendingSignIn, user: User | None = None) -> Step | None:
    """The first step that applies and is not done; None when the sign-in is complete.

    Pass ``user`` when the caller has already loaded it, to save a query.
    """
    user = user if user is not None and user.sub == pending.sub else pending.user()
    if user is None:
        return None
    for step in _steps:
        if step.name not in pending.done and step.applies(pending, user):
            return step
    return None


def send_with_prefetch(pending: PendingSignIn, user: User, batch: Pipeline) -> None:
    """Queue the store reads of every step still to do, then execute ``batch``.

    The caller has queued its writes (the pending sign-in, the throttle reset) on ``batch``;
    the steps' questions ride the same round trip and their answers land in
    :func:`request_cache`, where :func:`next_step` finds them (issue 3: 1.2x budget).
    Call it after the last :func:`mark_done` of the request, which clears that cache.
    """
    callbacks: list[tuple[int, Callable[[Any], None]]] = []
    for step in _steps:
        if step.prefetch is None or step.name in pending.done:
            continue
        position = len(batch)
        callback = step.prefetch(pending, user, batch)
        if callback is not None:
            callbacks.append((position, callback))
    replies = batch.execute()
    for position, callback in callbacks:
        callback(replies[position])


def request_cache() -> dict[str, Any]:
    """Facts steps look up to decide whether they apply, kept for one request only.

    Several steps ask the same question while the next step is chosen; the answers are
    dropped whenever a step is marked done, since doing a step can change them.
    """
    cache: dict[str, Any] = g.setdefault("signin_cache", {})
    return cache


def any_factor_key(user: User) -> str:
    """The :func:`request_cache` key for "has this person a second factor?".

    The MFA steps ask it; the sign-in POST already knows the answer from its account look-up
    and stores it here after marking the password done (issue 3: one query fewer).
    """
    return f"mfa-any:{user.id}"


def mark_done(
    pending: PendingSignIn,
    step: str,
    *,
    amr: list[str] | None = None,
    batch: Store | None = None,
) -> None:
    """Record ``step`` as done and save; with ``batch``, the save waits for the caller's
    ``batch.execute()`` (the sign-in POST shares one round trip between its writes)."""
    g.pop("signin_cache", None)
    if step not in pending.done:
        pending.done.append(step)
    for method in amr or []:
        if method not in pending.amr:
            pending.amr.append(method)
    save(pending, batch=batch)


def auth_step(name: str) -> Callable[[F], F]:
    """Guard a step's view: it runs only when ``name`` is the step that is due now.

    No pending sign-in (or a password not yet checked) sends the browser back to the start;
    any other step out of order sends it to the step that is due (forced browsing, D06).
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            pending = load()
            if pending is None or pending.sub is None:
                return redirect(url_for("auth.sign_in"))
            due = next_step(pending)
            if due is None:
                return redirect(url_for("auth.finish"))
            if due.name != name:
                return redirect(url_for(due.endpoint))
            return view(pending, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def require_pending() -> PendingSignIn:
    pending = load()
    if pending is None or pending.sub is None:
        abort(400)
    return pending
