"""The settings schema: every setting the provider reads, documented, typed and validated.

Values come from ``IDP_*`` environment variables (and a ``.env`` file in development).
Development and test defaults say "insecure" in the value itself, so a leaked default is
obvious in any log or dump. With ``IDP_ENV=production`` :meth:`Settings.problems` lists every
unsafe or missing value and :func:`load_settings` refuses to start, naming each one.
"""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

INSECURE_MARKER = "insecure"


class ConfigurationError(RuntimeError):
    """Raised at start-up when production settings are missing or unsafe."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"Refusing to start: {len(problems)} setting(s) are unsafe for production:\n{lines}"
        )


class Settings(BaseSettings):
    """All settings. Each field's environment variable is ``IDP_`` plus its name in capitals."""

    model_config = SettingsConfigDict(
        env_prefix="IDP_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "test", "production"] = Field(
        "development", description="Which rules apply. Production refuses insecure values."
    )
    secret_key: SecretStr = Field(
        SecretStr("insecure-development-secret-key-do-not-use"),
        description="Signs Flask session cookies and CSRF tokens. At least 32 random characters.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. "
        "Unset: a SQLite file under instance/ (one machine only; refused in production).",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL for sessions, rate limits, codes and queues. "
        "Unset: an in-process store for one process only (refused in production).",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:5000",
        description="The origin people reach the provider on. Every emailed link is built from it, "
        "never from the request's Host header. Must be https in production.",
    )
    trusted_hosts: list[str] = Field(
        default_factory=list,
        description="Extra Host header values accepted besides public_base_url's host "
        "(JSON list). Requests for any other host get 400.",
    )
    trusted_proxy_hops: int = Field(
        0,
        ge=0,
        le=5,
        description="How many reverse proxies in front of us may set X-Forwarded-For/-Proto. "
        "0 means the headers are ignored and the socket address is the client.",
    )
    key_encryption_keys: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr("insecure-development-key-encryption-key")],
        description="Keys (JSON list, newest first) that encrypt signing keys and TOTP secrets "
        "at rest. The first encrypts; all decrypt, so keys can be rotated.",
    )
    client_secret_hmac_keys: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr("insecure-development-client-secret-hmac-key")],
        description="Keys (JSON list, newest first) for the HMAC-SHA-256 that stores client "
        "secrets and one-time tokens. All are tried when verifying.",
    )
    password_pepper: SecretStr | None = Field(
        None,
        description="Optional key outside the database, HMAC'd into every password before "
        "argon2id, so a database dump alone cannot be used to test guesses.",
    )
    argon2_time_cost: int = Field(2, ge=1, description="argon2id iterations (OWASP minimum 2).")
    argon2_memory_cost: int = Field(
        19456, ge=8, description="argon2id memory in KiB (OWASP minimum 19456)."
    )
    argon2_parallelism: int = Field(1, ge=1, description="argon2id lanes.")
    role_mailbox_local_parts: list[str] = Field(
        default_factory=lambda: [
            "admin",
            "administrator",
            "office",
            "schooloffice",
            "info",
            "information",
            "enquiries",
            "enquiry",
            "head",
            "headteacher",
            "headmaster",
            "headmistress",
            "bursar",
            "finance",
            "accounts",
            "reception",
            "contact",
            "admissions",
            "hello",
            "school",
            "secretary",
            "clerk",
            "support",
            "helpdesk",
            "postmaster",
            "webmaster",
            "noreply",
            "no-reply",
            "sbm",
            "business",
            "governors",
            "it",
            "ict",
            "staff",
            "team",
        ],
        description="Email local parts refused for accounts (JSON list): shared role mailboxes "
        "defeat the point of one person per account.",
    )
    invitation_lifetime_hours: int = Field(
        168, ge=1, description="How long an invitation link works (default 7 days)."
    )
    authentix_upload_ttl_minutes: int = Field(
        30,
        ge=1,
        le=240,
        description="How long the helpdesk console keeps a checked Authentix import file "
        "(names and emails) between the dry run and Import; after that it must be uploaded "
        "again.",
    )
    authentix_console_max_rows: int = Field(
        5000,
        ge=1,
        le=50_000,
        description="The most rows one Authentix import file may have in the helpdesk console, "
        "so that checking or importing it fits in one web request; larger files are split, or "
        "imported with `flask import-authentix`.",
    )
    password_reset_lifetime_minutes: int = Field(
        30, ge=5, le=1440, description="How long a password reset link works (C02: at most 30)."
    )
    email_change_lifetime_hours: int = Field(
        24, ge=1, description="How long the link confirming a new email address works."
    )
    mfa_enrolment_link_hours: int = Field(
        24,
        ge=1,
        le=24,
        description="How long the link sent after a helpdesk MFA reset works (it starts a "
        "sign-in that ends in setting up a new method; D07). At most 24 hours, as NIST SP "
        "800-63B-4 §4.2 allows for anything sent to an email address.",
    )
    access_request_escalation_days: int = Field(
        14,
        ge=1,
        le=365,
        description="An access request no approver has decided after this many days is passed "
        "to the helpdesk (issue 7), once.",
    )
    helpdesk_email: str = Field(
        "helpdesk@secure-access.example",
        description="The helpdesk mailbox: told about access requests left undecided, and "
        "about requests from organisations with no approver.",
    )
    recent_auth_seconds: int = Field(
        600,
        ge=60,
        description="Changing email, password or security methods needs a sign-in this recent "
        "(E05); older sessions are asked for the password again.",
    )
    password_min_length: int = Field(
        15, ge=8, description="Shortest password accepted, in Unicode code points (never under 8)."
    )
    login_max_failures: int = Field(
        10, ge=1, le=100, description="Failed attempts per account before a temporary lock."
    )
    login_failure_window_seconds: int = Field(
        900, ge=60, description="The window those failures are counted over, and the lock's length."
    )
    api_rate_limit_per_minute: int = Field(
        600,
        ge=1,
        description="Calls each service may make to the service-to-service API (/api/v1) in "
        "any 60 seconds; the next gets 429 with Retry-After.",
    )
    session_idle_seconds: int = Field(3600, ge=60, description="SSO session idle timeout.")
    session_absolute_seconds: int = Field(
        43200, ge=300, description="SSO session absolute lifetime, whatever the activity."
    )
    helpdesk_session_idle_seconds: int = Field(
        900,
        ge=60,
        le=900,
        description="SSO session idle timeout for helpdesk staff (K01: at most 15 minutes), "
        "shorter because their sessions can change other people's accounts. Never longer than "
        "the general one.",
    )
    helpdesk_session_absolute_seconds: int = Field(
        43200,
        ge=300,
        le=43200,
        description="SSO session absolute lifetime for helpdesk staff (K01: at most 12 hours). "
        "Never longer than the general one.",
    )
    mail_backend: Literal["outbox", "smtp", "notify"] = Field(
        "outbox",
        description="How email leaves: 'outbox' writes files under instance/outbox (development "
        "only), 'smtp' uses smtp_*, 'notify' uses GOV.UK Notify.",
    )
    smtp_host: str = Field("localhost", description="SMTP server host.")
    smtp_port: int = Field(25, description="SMTP server port.")
    smtp_username: str | None = Field(None, description="SMTP user name, if the server needs one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    mail_from: str = Field(
        "Secure Access <no-reply@secure-access.invalid>", description="From address for email."
    )
    notify_api_key: SecretStr | None = Field(None, description="GOV.UK Notify API key.")
    # -- Email and the outbox worker (idp/services/mail, idp/services/outbox.py) ------------
    notify_template_ids: dict[str, str] = Field(
        default_factory=dict,
        description="GOV.UK Notify template id for each message name (JSON object, e.g. "
        '{"password_reset": "<uuid>"}). Needed for every message when mail_backend is notify; '
        "the placeholders in each Notify template use the names in idp/templates/email/.",
    )
    notify_base_url: str = Field(
        "https://api.notifications.service.gov.uk",
        description="GOV.UK Notify API address. Only changed to point tests at a stand-in.",
    )
    outbox_max_attempts: int = Field(
        10,
        ge=1,
        le=50,
        description="How many times the worker tries to send one outbox message (email or "
        "back-channel logout) before giving up on it and recording the failure. With the "
        "default delays, 10 attempts span about 22 hours.",
    )
    outbox_retry_delays_seconds: list[int] = Field(
        default_factory=lambda: [30, 120, 600, 1800, 3600, 7200, 14400, 21600, 28800],
        min_length=1,
        description="Seconds to wait after the 1st, 2nd, ... failed attempt before the next "
        "(JSON list); the last value repeats. The growing gaps ride out a provider outage "
        "without hammering it.",
    )
    # -- end of email and outbox settings ----------------------------------------------------
    log_format: Literal["json", "text"] | None = Field(
        None, description="Log line format. Default: json in production, text elsewhere."
    )
    log_level: str = Field("INFO", description="Lowest level logged.")
    instance_path: str | None = Field(
        None, description="Folder for the SQLite file and the development outbox."
    )
    max_request_bytes: int = Field(
        1_048_576,
        description="Requests with a larger body are refused with 413 before anything parses them.",
    )
    audit_batch_seconds: float = Field(
        0.2,
        ge=0,
        le=5,
        description="Routine audit records (a token issued) are written in batches, one INSERT "
        "and one commit per process this often (idp/services/audit_writer.py). A process killed "
        "with SIGKILL loses at most this many seconds of them; a normal exit writes them. 0 "
        "writes each in its own request's transaction. Security events are never batched. "
        "Default 0 when env is test.",
    )

    # -- OpenID Connect provider: issuer and signing keys (idp/oidc) ------------------
    issuer: str | None = Field(
        None,
        description="The OIDC issuer identifier: an https URL with no query, fragment or "
        "trailing slash. It is the `iss` of every token and the base of every URL in the "
        "discovery document (never the request's Host). Unset: public_base_url.",
    )
    key_publish_before_use_seconds: int = Field(
        3600,
        ge=0,
        description="How long a new signing key must sit in the JWKS as `next` before "
        "`rotate-keys` lets it sign: at least the JWKS cache period relying services use, so "
        "none meets a kid it has not fetched (H04). `rotate-keys --force` skips the wait.",
    )
    cache_version_window_seconds: float = Field(
        0.1,
        ge=0,
        le=5,
        description="How long a process may reuse the change counters of its signing-key and "
        "service caches before asking the store again (one MGET). A change made in another "
        "process (a revoked secret, a disabled service, a rotated key) takes effect there "
        "within this time; in the process that made it, at once. 0 asks on every request. "
        "Default 0 when env is test.",
    )
    machine_lane: bool = Field(
        True,
        description="Answer ordinary client_credentials grants, the discovery document and "
        "the JWKS without the web framework (idp/oidc/machine_lane.py: same answers, a "
        "fraction of the CPU). false sends every request through the full path.",
    )
    # -- end of OpenID Connect provider settings ---------------------------------------

    # -- Logout: RP-initiated and back-channel (idp/oidc/logout.py, backchannel.py) ----
    backchannel_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=30,
        description="How long the worker waits for a relying service's back-channel logout "
        "URI to connect and to answer each read (I05). A service that takes longer counts "
        "as failed for that attempt and is retried with the outbox's delays; the person "
        "signing out never waits for it.",
    )
    # -- end of logout settings ----------------------------------------------------------

    # -- Multi-factor authentication (idp/services/mfa, idp/auth/mfa.py) ----------------
    webauthn_rp_id: str | None = Field(
        None,
        description="The WebAuthn Relying Party ID: the domain security keys and passkeys are "
        "bound to (D08). Changing it makes every registered key unusable. Unset: the host "
        "name of public_base_url (localhost when that is an IP address, which browsers refuse "
        "as an RP ID).",
    )
    webauthn_origins: list[str] = Field(
        default_factory=list,
        description="Origins (JSON list, exact scheme://host[:port]) a WebAuthn ceremony is "
        "accepted from (D08). Empty: public_base_url only. Outside production "
        "http://localhost:<any port> and http://127.0.0.1:<any port> are accepted as well, "
        "for `make run` and the browser tests.",
    )
    mfa_offer_interval_days: int = Field(
        30,
        ge=1,
        le=365,
        description="People who need no second factor are offered one ('Protect your "
        "account') at sign-in this many days after their first sign-in, and again this "
        "many days after each 'Not now'.",
    )
    # -- end of multi-factor authentication settings -------------------------------------

    @model_validator(mode="after")
    def _test_defaults(self) -> Self:
        """Tests read audit rows right after the request that wrote them, and change
        services or keys behind a cache's back: unless a test sets them itself, audit rows
        are written synchronously and cache versions are read on every request."""
        if self.env == "test" and "audit_batch_seconds" not in self.model_fields_set:
            self.audit_batch_seconds = 0.0
        if self.env == "test" and "cache_version_window_seconds" not in self.model_fields_set:
            self.cache_version_window_seconds = 0.0
        return self

    # -- derived values -------------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def public_host(self) -> str:
        return urlsplit(self.public_base_url).netloc

    @property
    def uses_https(self) -> bool:
        return urlsplit(self.public_base_url).scheme == "https"

    def problems(self) -> list[str]:
        """Everything that makes these settings unsafe for production, one sentence each."""
        found: list[str] = []

        def insecure(value: str) -> bool:
            return INSECURE_MARKER in value.lower()

        key = self.secret_key.get_secret_value()
        if insecure(key) or len(key) < 32:
            found.append(
                "IDP_SECRET_KEY is missing or insecure: set at least 32 random characters."
            )
        if not self.database_url:
            found.append("IDP_DATABASE_URL is not set: production needs PostgreSQL, not SQLite.")
        elif self.database_url.startswith("sqlite"):
            found.append("IDP_DATABASE_URL points at SQLite: production needs PostgreSQL.")
        if not self.redis_url:
            found.append(
                "IDP_REDIS_URL is not set: production needs Redis, not the in-process store."
            )
        if not self.key_encryption_keys or any(
            insecure(k.get_secret_value()) or len(k.get_secret_value()) < 32
            for k in self.key_encryption_keys
        ):
            found.append(
                "IDP_KEY_ENCRYPTION_KEYS is missing or insecure: signing keys and TOTP secrets "
                "cannot be protected. Set a JSON list of keys of at least 32 random characters."
            )
        if not self.client_secret_hmac_keys or any(
            insecure(k.get_secret_value()) or len(k.get_secret_value()) < 32
            for k in self.client_secret_hmac_keys
        ):
            found.append(
                "IDP_CLIENT_SECRET_HMAC_KEYS is missing or insecure: set a JSON list of keys of "
                "at least 32 random characters."
            )
        if not self.uses_https:
            found.append("IDP_PUBLIC_BASE_URL must use https in production.")
        if self.mail_backend == "outbox":
            found.append(
                "IDP_MAIL_BACKEND is 'outbox', which only writes files: use notify or smtp."
            )
        if self.mail_backend == "notify" and not self.notify_api_key:
            found.append("IDP_NOTIFY_API_KEY is not set but IDP_MAIL_BACKEND is 'notify'.")
        if self.mail_backend == "notify":
            # Imported here: the message list lives with the templates, a floor above settings.
            from idp.services.mail.templates import MESSAGE_NAMES

            missing = [name for name in MESSAGE_NAMES if not self.notify_template_ids.get(name)]
            if missing:
                found.append(
                    "IDP_NOTIFY_TEMPLATE_IDS has no GOV.UK Notify template id for: "
                    + ", ".join(missing)
                    + "."
                )
        if self.argon2_memory_cost < 19456 or self.argon2_time_cost < 2:
            found.append(
                "IDP_ARGON2_MEMORY_COST/IDP_ARGON2_TIME_COST are below OWASP's minimum "
                "(m=19456 KiB, t=2)."
            )
        return found


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (plus overrides) and refuse unsafe production values."""
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if settings.is_production:
        problems = settings.problems()
        if problems:
            raise ConfigurationError(problems)
    return settings
