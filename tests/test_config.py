"""Settings: production refuses every unsafe default and names each setting that is wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest

from idp.config import ConfigurationError, Settings, load_settings

SAFE = {
    "env": "production",
    "secret_key": "k" * 48,
    "database_url": "postgresql+psycopg://idp@db/idp",
    "redis_url": "redis://cache:6379/0",
    "key_encryption_keys": ["e" * 40],
    "client_secret_hmac_keys": ["h" * 40],
    "public_base_url": "https://secure-access.education.gov.uk",
    "mail_backend": "smtp",
}


def production_problems(**changes: object) -> list[str]:
    return Settings(_env_file=None, **{**SAFE, **changes}).problems()  # type: ignore[arg-type]


def test_safe_production_settings_have_no_problems():
    assert production_problems() == []


def test_production_defaults_refuse_to_start_naming_each_bad_setting():
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None, env="production")
    message = str(caught.value)
    for name in (
        "IDP_SECRET_KEY",
        "IDP_DATABASE_URL",
        "IDP_REDIS_URL",
        "IDP_KEY_ENCRYPTION_KEYS",
        "IDP_CLIENT_SECRET_HMAC_KEYS",
        "IDP_PUBLIC_BASE_URL",
        "IDP_MAIL_BACKEND",
    ):
        assert name in message


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"secret_key": "insecure-but-long-enough-to-pass-the-length-check"}, "IDP_SECRET_KEY"),
        ({"secret_key": "short"}, "IDP_SECRET_KEY"),
        ({"database_url": "sqlite:///idp.sqlite3"}, "IDP_DATABASE_URL"),
        ({"redis_url": None}, "IDP_REDIS_URL"),
        ({"key_encryption_keys": []}, "IDP_KEY_ENCRYPTION_KEYS"),
        ({"public_base_url": "http://secure-access.example"}, "IDP_PUBLIC_BASE_URL"),
        ({"argon2_memory_cost": 1024}, "IDP_ARGON2"),
    ],
)
def test_each_unsafe_value_is_named(change, named):
    problems = production_problems(**change)
    assert len(problems) == 1
    assert named in problems[0]


def test_development_defaults_announce_they_are_insecure():
    settings = Settings(_env_file=None)
    assert "insecure" in settings.secret_key.get_secret_value()
    assert all("insecure" in k.get_secret_value() for k in settings.key_encryption_keys)


def test_production_start_fails_from_the_command_line_with_the_reasons():
    result = subprocess.run(
        [sys.executable, "-c", "from idp import create_app; create_app()"],
        env={"IDP_ENV": "production", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert result.returncode != 0
    assert "Refusing to start" in result.stderr
    assert "IDP_SECRET_KEY" in result.stderr
