"""The second factors a person has, and the changes to them: one place for the queries.

Every change to a factor (added, removed, renamed, recovery codes regenerated) is audited and
emailed to the person (``mfa_changed``), in the caller's unit of work, so the email exists if
and only if the change committed (D07 "Also", ASVS 6.3.6, NIST SP 800-63B-4 §4.6). Removal is
refused when it would leave someone who must use MFA without an acceptable factor, unless the
helpdesk does it after proofing the person (D07; they then enrol again at their next sign-in).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.orm import QueryableAttribute

from idp.extensions import db
from idp.models import RecoveryCode, TotpCredential, User, WebAuthnCredential
from idp.services import audit, outbox
from idp.services.links import public_url
from idp.services.mfa.common import LastFactorRequired, Method, NoSuchFactor
from idp.services.mfa.policy import must_keep_a_factor, satisfies_policy


@dataclass(frozen=True)
class Factors:
    """One person's confirmed factors (unconfirmed TOTP enrolments never count, D02)."""

    totp: list[TotpCredential] = field(default_factory=list)
    webauthn: list[WebAuthnCredential] = field(default_factory=list)
    recovery_codes_left: int = 0

    @property
    def any(self) -> bool:
        """Whether there is a factor to sign in with. Recovery codes alone are not one."""
        return bool(self.totp or self.webauthn)

    @property
    def count(self) -> int:
        return len(self.totp) + len(self.webauthn)

    @property
    def methods(self) -> list[Method]:
        found = []
        if self.webauthn:
            found.append(Method.WEBAUTHN)
        if self.totp:
            found.append(Method.TOTP)
        if self.recovery_codes_left and self.any:
            found.append(Method.RECOVERY_CODE)
        return found


# -- queries ---------------------------------------------------------------------------


def any_factor(user_id: QueryableAttribute[int] | ColumnElement[int] | int) -> ColumnElement[bool]:
    """SQL for ``factors_of(user).any``, to ask inside another query (``User.id`` correlates)."""
    totp = select(TotpCredential.id).where(
        TotpCredential.user_id == user_id, TotpCredential.confirmed_at.is_not(None)
    )
    keys = select(WebAuthnCredential.id).where(WebAuthnCredential.user_id == user_id)
    return exists(totp) | exists(keys)


def has_any_factor(user: User) -> bool:
    """``factors_of(user).any`` in one round trip: sign-in asks this of everyone."""
    return bool(db.session.scalar(select(any_factor(user.id))))


def totp_credentials(user: User, *, confirmed: bool = True) -> list[TotpCredential]:
    query = select(TotpCredential).where(TotpCredential.user_id == user.id)
    if confirmed:
        query = query.where(TotpCredential.confirmed_at.is_not(None))
    else:
        query = query.where(TotpCredential.confirmed_at.is_(None))
    return list(db.session.scalars(query.order_by(TotpCredential.id)))


def webauthn_credentials(user: User) -> list[WebAuthnCredential]:
    query = (
        select(WebAuthnCredential)
        .where(WebAuthnCredential.user_id == user.id)
        .order_by(WebAuthnCredential.id)
    )
    return list(db.session.scalars(query))


def find_webauthn_credential(user: User, key_id: int) -> WebAuthnCredential:
    """The person's own credential with this row id; anyone else's is :class:`NoSuchFactor`."""
    credential = db.session.scalar(
        select(WebAuthnCredential).where(
            WebAuthnCredential.id == key_id, WebAuthnCredential.user_id == user.id
        )
    )
    if credential is None:
        raise NoSuchFactor("no such security key")
    return credential


def unused_recovery_codes(user: User) -> list[RecoveryCode]:
    query = (
        select(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        .order_by(RecoveryCode.id)
    )
    return list(db.session.scalars(query))


def has_recovery_codes(user: User) -> bool:
    """Whether any set was ever issued (used or not): decides whether to issue the first set."""
    found = db.session.scalar(select(RecoveryCode.id).where(RecoveryCode.user_id == user.id))
    return found is not None


def delete_recovery_codes(user: User) -> None:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def factors_of(user: User) -> Factors:
    return Factors(
        totp=totp_credentials(user),
        webauthn=webauthn_credentials(user),
        recovery_codes_left=len(unused_recovery_codes(user)),
    )


# -- telling the person ------------------------------------------------------------------


def notify(user: User, *, change: str, method: str) -> None:
    """Queue the ``mfa_changed`` email: ``change`` is added|removed; ``method`` reads as a noun
    phrase ("an authenticator app", "a security key called “Blue key”")."""
    outbox.enqueue_email(
        user.email,
        "mfa_changed",
        change=change,
        method=method,
        reset_link=public_url("reset.forgot_password"),
    )


def describe_key(credential: WebAuthnCredential) -> str:
    return f"a security key or passkey called “{credential.name}”"


# -- removing and renaming ---------------------------------------------------------------


def _check_may_remove(
    user: User, *, totp: TotpCredential | None, key: WebAuthnCredential | None
) -> None:
    if not must_keep_a_factor(user):
        return
    current = factors_of(user)
    after = Factors(
        totp=[c for c in current.totp if c is not totp],
        webauthn=[c for c in current.webauthn if c is not key],
    )
    if not satisfies_policy(user, after):
        raise LastFactorRequired(
            "You cannot remove this: you must keep at least one way to prove it's you"
            + (", and it must be a security key or passkey" if user.staff_role else "")
        )


def _after_removal(user: User) -> None:
    # Recovery codes exist to get a factor back. With none left they only add a way in.
    if not factors_of(user).any:
        delete_recovery_codes(user)


def remove_totp(
    user: User,
    credential: TotpCredential,
    *,
    actor: str,
    reason: str | None = None,
    enforce_policy: bool = True,
) -> None:
    """Remove an authenticator app. ``enforce_policy=False`` only for the helpdesk (D07)."""
    if credential.user_id != user.id:
        raise NoSuchFactor("no such authenticator app")
    if enforce_policy:
        _check_may_remove(user, totp=credential, key=None)
    db.session.delete(credential)
    db.session.flush()
    _after_removal(user)
    audit.record(
        "mfa.totp.removed",
        actor=actor,
        target=user.sub,
        target_type="user",
        reason=reason,
        method=Method.TOTP.value,
    )
    notify(user, change="removed", method="an authenticator app")


def remove_webauthn(
    user: User,
    credential: WebAuthnCredential,
    *,
    actor: str,
    reason: str | None = None,
    enforce_policy: bool = True,
) -> None:
    """Remove a security key or passkey. ``enforce_policy=False`` only for the helpdesk (D07)."""
    if credential.user_id != user.id:
        raise NoSuchFactor("no such security key")
    if enforce_policy:
        _check_may_remove(user, totp=None, key=credential)
    description = describe_key(credential)
    db.session.delete(credential)
    db.session.flush()
    _after_removal(user)
    audit.record(
        "mfa.webauthn.removed",
        actor=actor,
        target=user.sub,
        target_type="user",
        reason=reason,
        method=Method.WEBAUTHN.value,
        key_name=credential.name,
    )
    notify(user, change="removed", method=description)


def rename_webauthn(user: User, credential: WebAuthnCredential, name: str, *, actor: str) -> None:
    """Give a key a new name. Emailed too: a name is how the person recognises their keys."""
    if credential.user_id != user.id:
        raise NoSuchFactor("no such security key")
    old = credential.name
    credential.name = clean_name(name)
    audit.record(
        "mfa.webauthn.renamed",
        actor=actor,
        target=user.sub,
        target_type="user",
        method=Method.WEBAUTHN.value,
        old_name=old,
        new_name=credential.name,
    )
    # The message's wording is "<method> was added to your account": a new name was added.
    notify(user, change="added", method=f"the name “{credential.name}” for your key “{old}”")


MAX_NAME = 100


def clean_name(name: str) -> str:
    """A factor's name as the person typed it, trimmed, one line, at most 100 characters."""
    cleaned = " ".join(name.split())[:MAX_NAME]
    if not cleaned:
        raise ValueError("a name is required")
    return cleaned
