"""The README, the settings schema and the compose file agree with each other.

A setting added to ``idp/config.py`` without a description, or without re-generating the
README's table, fails here; so does a secret written into ``docker-compose.yml``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from idp.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# Settings that must reach every provider container from a required variable, never a value.
REQUIRED_SECRETS = (
    "IDP_SECRET_KEY",
    "IDP_KEY_ENCRYPTION_KEYS",
    "IDP_CLIENT_SECRET_HMAC_KEYS",
)
REQUIRED_VARIABLE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")
IDP_SERVICES = {"migrate", "idp1", "idp2", "worker"}


def load_reference_script() -> ModuleType:
    path = ROOT / "scripts" / "settings_reference.py"
    spec = importlib.util.spec_from_file_location("settings_reference", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- README -------------------------------------------------------------------------------


def test_readme_settings_table_matches_the_schema() -> None:
    script = load_reference_script()
    documented = script.readme_table(README.read_text(encoding="utf-8"))
    assert documented == script.settings_table(), (
        "README.md's configuration reference does not match idp/config.py. Regenerate it with:\n"
        "  .venv/bin/python scripts/settings_reference.py --write"
    )


def test_readme_table_names_every_setting_and_no_secret_default() -> None:
    table = load_reference_script().settings_table()
    for name in Settings.model_fields:
        assert f"`IDP_{name.upper()}`" in table
    assert "insecure-development" not in table, "a secret default leaked into the README"


def test_readme_starts_with_the_two_commands() -> None:
    lines = [line for line in README.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# "), "README.md starts with its title"
    fence, *rest = lines[1:]
    assert fence.startswith("```"), "the first thing after the title is a code block"
    block = rest[: rest.index("```")]
    assert block == ["make run", "make test"]


def test_every_setting_has_a_description() -> None:
    missing = [
        name
        for name, field in Settings.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert not missing, f"settings without a description in idp/config.py: {missing}"


# -- docker compose -----------------------------------------------------------------------


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip().strip("'\"")
    return values


def compose_text_without_comments() -> str:
    lines = COMPOSE.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def test_compose_reads_only_variables_listed_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", compose_text_without_comments()))
    listed = env_example()
    assert used - set(listed) == set(), ".env.example must list every variable compose reads"
    for name, value in listed.items():
        if any(word in name for word in ("SECRET", "KEY", "PASSWORD", "PEPPER")):
            assert "change-me" in value, f"{name} in .env.example must be a change-me placeholder"


def test_compose_secrets_are_required_variables_in_the_text() -> None:
    """Works without a YAML parser: every line that sets a secret interpolates a required one."""
    text = compose_text_without_comments()
    for name in (*REQUIRED_SECRETS, "IDP_PASSWORD_PEPPER"):
        values = re.findall(rf"^\s*-?\s*{name}\s*[:=]\s*(.*?)\s*$", text, flags=re.MULTILINE)
        assert values, f"docker-compose.yml does not set {name}"
        for value in values:
            assert REQUIRED_VARIABLE.match(value), f"{name} must be ${{VAR:?message}}: {value}"


def test_every_idp_service_takes_its_secrets_from_required_variables() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse docker-compose.yml")
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    idp_services = {
        name
        for name, service in services.items()
        if isinstance(service.get("environment"), dict) and "IDP_ENV" in service["environment"]
    }
    assert idp_services >= IDP_SERVICES
    for name in idp_services:
        environment = services[name]["environment"]
        assert environment["IDP_ENV"] == "production"
        assert str(environment["IDP_TRUSTED_PROXY_HOPS"]) == "1"
        assert environment["IDP_MAIL_BACKEND"] == "smtp"
        for secret in REQUIRED_SECRETS:
            assert REQUIRED_VARIABLE.match(str(environment.get(secret, ""))), (
                f"{name}: {secret} must come from a required variable (${{VAR:?message}})"
            )
        for key, value in environment.items():
            if re.search(r"SECRET|KEYS?$|PASSWORD|PEPPER", key) and value is not None:
                assert "${" in str(value), f"{name}: {key} looks like a literal secret"


def compose_command() -> list[str] | None:
    """``docker compose`` if the plugin answers, else the standalone ``docker-compose``."""
    candidates = [["docker", "compose"], ["docker-compose"]]
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        try:
            probe = subprocess.run(
                [*command, "version"], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return command
    return None


def compose_config(command: list[str], env_file: Path) -> subprocess.CompletedProcess[str]:
    # Only the env file may supply the variables, whatever this shell has exported.
    listed = set(env_example())
    env = {k: v for k, v in os.environ.items() if k not in listed and not k.startswith("COMPOSE_")}
    return subprocess.run(
        [*command, "--env-file", str(env_file), "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    ok = compose_config(command, ENV_EXAMPLE)
    assert ok.returncode == 0, ok.stderr
    # With no secrets at all, compose refuses and names what is missing.
    empty = tmp_path / "empty.env"
    empty.write_text("", encoding="utf-8")
    refused = compose_config(command, empty)
    assert refused.returncode != 0
    assert "in .env (see .env.example)" in refused.stderr


def test_image_build_context_never_includes_env_files() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", ".dockerignore is an allow-list"
    assert not any(rule.startswith("!.env") for rule in rules)
