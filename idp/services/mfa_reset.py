"""A helpdesk MFA reset after an identity check, with four eyes for the sensitive accounts.

D07 / NIST SP 800-63B-4 §4.2: someone who lost every second factor gets back in only after
identity proofing equivalent to enrolment: here, the agent's recorded check against the
school's records (e.g. "called back on the school's number from the register"). Then:

- every second factor and recovery code is removed, every session ends (with back-channel
  logout, E06), and an enrolment link (``TokenPurpose.MFA_ENROLMENT``, at most 24 hours,
  ``mfa_enrolment_link_hours``) is emailed. The link starts a sign-in that ends in set-up
  (:mod:`idp.auth.mfa_reenrol`); staff, and anyone a service requires MFA of, are made to
  set one up at any sign-in anyway (:mod:`idp.services.mfa.policy`). The link itself proves
  nothing (C07): sign-in still needs the password.
- **Four eyes** (issue 8, K02): when the person is helpdesk staff or an approver of any
  organisation, the reset waits as a pending :class:`MfaResetRequest` until a *different*
  ``helpdesk_admin`` approves it; the requester cannot approve their own, nor can the target.

Every step is audited: ``helpdesk.mfa_reset_requested`` (with the identity check),
``helpdesk.mfa_reset_approved`` / ``_rejected``, and ``helpdesk.mfa_reset_done``. Functions
run inside the caller's unit of work.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from flask import current_app
from sqlalchemy import delete, select

from idp.config import Settings
from idp.extensions import db
from idp.models import (
    Membership,
    MembershipRole,
    MfaResetRequest,
    RecoveryCode,
    StaffRole,
    TokenPurpose,
    TotpCredential,
    User,
    UserStatus,
    WebAuthnCredential,
)
from idp.models.base import utcnow
from idp.models.requests import RequestStatus
from idp.services import account_status, account_tokens, audit, outbox
from idp.services.helpdesk_actions import (
    REASON_MAX,
    ActionRefused,
    NotApplicable,
    NotPermitted,
    check_actor,
    clean_reason,
)
from idp.services.links import public_url

#: The longest identity check kept.
CHECK_MAX: Final = REASON_MAX


def clean_identity_check(text: str | None) -> str:
    """How the caller was verified: required (D07), at most :data:`CHECK_MAX` characters."""
    check = (text or "").strip()
    if not check:
        raise ActionRefused("Enter how you checked who the caller is")
    if len(check) > CHECK_MAX:
        raise ActionRefused(f"The identity check must be {CHECK_MAX} characters or fewer")
    return check


def needs_approval(target: User) -> bool:
    """Helpdesk staff and approvers of any organisation need a second helpdesk admin."""
    if target.staff_role is not None:
        return True
    approver = db.session.scalar(
        select(Membership.id)
        .where(Membership.user_id == target.id, Membership.role == MembershipRole.APPROVER)
        .limit(1)
    )
    return approver is not None


def pending_for(target: User) -> MfaResetRequest | None:
    return db.session.scalar(
        select(MfaResetRequest).where(
            MfaResetRequest.user_id == target.id,
            MfaResetRequest.status == RequestStatus.PENDING,
        )
    )


def pending_requests() -> list[MfaResetRequest]:
    """Requests waiting for a second helpdesk admin, oldest first."""
    query = (
        select(MfaResetRequest)
        .where(MfaResetRequest.status == RequestStatus.PENDING)
        .order_by(MfaResetRequest.created_at, MfaResetRequest.id)
    )
    return list(db.session.scalars(query))


def find_request(public_id: str) -> MfaResetRequest | None:
    if not public_id or len(public_id) > 36:
        return None
    return db.session.scalar(select(MfaResetRequest).where(MfaResetRequest.public_id == public_id))


def user_of(request: MfaResetRequest) -> User:
    user = db.session.get(User, request.user_id)
    assert user is not None  # the foreign key cascades: a request never outlives its person
    return user


def requester_of(request: MfaResetRequest) -> User | None:
    return db.session.get(User, request.requested_by_id) if request.requested_by_id else None


def request_reset(
    target: User, *, actor: User, identity_check: str, reason: str
) -> MfaResetRequest:
    """Record the agent's identity check and reason; reset now, or wait for a second admin.

    Returns the request: ``status`` is ``approved`` when it took effect at once, ``pending``
    when it needs approval (:func:`needs_approval`).
    """
    check_actor(actor)
    reason = clean_reason(reason)
    check = clean_identity_check(identity_check)
    if target.id == actor.id:
        raise NotPermitted("You cannot reset your own security methods. Ask another admin")
    if target.status is UserStatus.DEACTIVATED:
        raise NotApplicable("This account is deactivated. Reactivate it first")
    if pending_for(target) is not None:
        raise NotApplicable("A reset for this person is already waiting for approval")
    approval = needs_approval(target)
    request = MfaResetRequest(
        user_id=target.id,
        requested_by_id=actor.id,
        identity_check=check,
        reason=reason,
        needs_approval=approval,
    )
    db.session.add(request)
    db.session.flush()
    audit.record(
        "helpdesk.mfa_reset_requested",
        actor=actor.sub,
        target=target.sub,
        target_type="user",
        reason=reason,
        identity_check=check,
        needs_approval=approval,
        request=request.public_id,
    )
    if not approval:
        request.status = RequestStatus.APPROVED
        request.decided_by_id = actor.id
        request.decided_at = utcnow()
        _apply(request, target, actor=actor)
    return request


def _check_decider(request: MfaResetRequest, decider: User) -> None:
    check_actor(decider)
    if decider.staff_role is not StaffRole.HELPDESK_ADMIN:
        raise NotPermitted("Only a helpdesk admin can approve or reject an MFA reset")
    if request.requested_by_id == decider.id:
        raise NotPermitted("You asked for this reset, so another helpdesk admin must decide it")
    if request.user_id == decider.id:
        raise NotPermitted("You cannot decide a reset of your own security methods")
    if request.status is not RequestStatus.PENDING:
        raise NotApplicable("This reset has already been decided")


def approve(request: MfaResetRequest, *, decider: User, note: str | None = None) -> None:
    """The second pair of eyes agrees: the reset takes effect now."""
    _check_decider(request, decider)
    target = user_of(request)
    if target.status is UserStatus.DEACTIVATED:
        raise NotApplicable("This account has been deactivated since the reset was asked for")
    _decide(request, decider, RequestStatus.APPROVED, note)
    audit.record(
        "helpdesk.mfa_reset_approved",
        actor=decider.sub,
        target=target.sub,
        target_type="user",
        reason=request.decision_note,
        request=request.public_id,
    )
    _apply(request, target, actor=decider)


def reject(request: MfaResetRequest, *, decider: User, note: str) -> None:
    """The second pair of eyes refuses: nothing changes on the account."""
    _check_decider(request, decider)
    note = clean_reason(note)
    target = user_of(request)
    _decide(request, decider, RequestStatus.REJECTED, note)
    audit.record(
        "helpdesk.mfa_reset_rejected",
        actor=decider.sub,
        target=target.sub,
        target_type="user",
        reason=note,
        request=request.public_id,
    )


def _decide(
    request: MfaResetRequest, decider: User, status: RequestStatus, note: str | None
) -> None:
    request.status = status
    request.decided_by_id = decider.id
    request.decided_at = utcnow()
    request.decision_note = (note or "").strip()[:REASON_MAX] or None
    db.session.flush()


def _remove_every_factor(user: User) -> dict[str, int]:
    """Delete every authenticator app (set-ups in progress too), key and recovery code."""
    counts = {}
    for name, model in (
        ("totp", TotpCredential),
        ("webauthn", WebAuthnCredential),
        ("recovery_codes", RecoveryCode),
    ):
        result = db.session.execute(
            delete(model)
            .where(model.user_id == user.id)
            .execution_options(synchronize_session="fetch")
        )
        counts[name] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return counts


def _apply(request: MfaResetRequest, target: User, *, actor: User) -> None:
    removed = _remove_every_factor(target)
    ended = account_status.end_all_sessions(
        target, actor=actor.sub, reason=None, cause="helpdesk_ended_all"
    )
    settings: Settings = current_app.extensions["settings"]
    lifetime = timedelta(hours=settings.mfa_enrolment_link_hours)
    now = utcnow()
    raw = account_tokens.issue(target, TokenPurpose.MFA_ENROLMENT, lifetime, now=now)
    outbox.enqueue_email(
        target.email,
        "mfa_reset",
        link=public_url("auth.mfa_reenrol", token=raw),
        expires_at=now + lifetime,
    )
    audit.record(
        "helpdesk.mfa_reset_done",
        actor=actor.sub,
        target=target.sub,
        target_type="user",
        reason=request.reason,
        identity_check=request.identity_check,
        request=request.public_id,
        requested_by=requester_sub(request),
        sessions_ended=len(ended),
        removed=removed,
    )


def requester_sub(request: MfaResetRequest) -> str | None:
    requester = requester_of(request)
    return requester.sub if requester else None
