"""The library is its own distribution: ``pip install ./clients`` works in a fresh virtual
environment with nothing from ``idp``, and no module ever imports ``idp`` (DESIGN §6, §7).

The install test builds a real virtual environment and installs the library with its declared
dependencies (from the pip cache when warm), once with this interpreter and once with Python
3.9 (the oldest supported) when one is on this machine. It then runs a smoke check there: the
package imports without Flask, and it validates an ID Token it did not sign itself.
"""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLIENTS = Path(__file__).resolve().parents[1]
PACKAGE = CLIENTS / "src" / "secure_access_client"

SMOKE = r"""
import importlib.util, json, sys
assert importlib.util.find_spec("idp") is None, "idp is importable"
import secure_access_client as sac
from secure_access_client.provider import StaticProvider
from secure_access_client.tokens import IdTokenExpectations, validate_id_token, left_half_hash
from secure_access_client.errors import InvalidToken
from joserfc import jwt
from joserfc.jwk import RSAKey

assert "flask" not in sys.modules, "Flask was imported without being asked for"
key = RSAKey.generate_key(2048, {"alg": "RS256"}, auto_kid=True)
provider = StaticProvider({}, {"keys": [key.as_dict(private=False)]})
now = 1_800_000_000
claims = {"iss": "https://op.example", "aud": "svc", "sub": "s", "iat": now, "exp": now + 60,
          "nonce": "n", "at_hash": left_half_hash("at", "RS256")}
token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])
expect = IdTokenExpectations(issuer="https://op.example", client_id="svc", nonce="n",
                             access_token="at")
assert validate_id_token(token, provider, ["RS256"], expect, now=now).claims["sub"] == "s"
try:
    validate_id_token(token, provider, ["RS256"],
                      IdTokenExpectations(issuer="https://op.example", client_id="svc",
                                          nonce="other", access_token="at"), now=now)
except InvalidToken as error:
    assert error.check == "nonce-invalid"
else:
    raise AssertionError("a wrong nonce was accepted")
print(json.dumps({"version": sac.__version__, "python": list(sys.version_info[:2])}))
"""


def interpreters() -> list[object]:
    found: list[object] = [pytest.param(sys.executable, id="this-python")]
    candidates = [os.environ.get("PYTHON39", ""), shutil.which("python3.9") or ""]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys, venv; print(sys.version_info[:2] == (3, 9))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return [*found, pytest.param(candidate, id="python3.9")]
    return [
        *found,
        pytest.param(
            None,
            id="python3.9",
            marks=pytest.mark.skip(reason="no Python 3.9 on this machine (set PYTHON39)"),
        ),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("python", interpreters())
def test_pip_install_in_a_fresh_virtualenv_without_idp(python, tmp_path):
    source = tmp_path / "clients"
    shutil.copytree(
        CLIENTS,
        source,
        ignore=shutil.ignore_patterns("tests", "demo", "*.egg-info", "__pycache__", "build"),
    )
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=480,
        env=env,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    smoke = subprocess.run(
        [str(bin_dir / "python"), "-I", "-c", SMOKE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert '"version": "0.2.0"' in smoke.stdout


def test_no_module_imports_the_provider():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name != "idp", f"{path} imports {name}"
                assert not name.startswith("idp."), f"{path} imports {name}"


def test_every_jwt_decode_passes_an_explicit_key_and_algorithm_allow_list():
    """L02: a grep-level check that nothing decodes with ``key=None`` or without algorithms."""
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            joserfc_call = (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in ("jwt", "jws", "jwe")
                and func.attr in ("decode", "deserialize_compact", "deserialize")
            )
            if joserfc_call:
                keywords = {k.arg for k in node.keywords}
                assert "algorithms" in keywords, f"{path}:{node.lineno} decodes without algorithms"
                assert len(node.args) >= 2, f"{path}:{node.lineno} decodes without a key"
                assert not (isinstance(node.args[1], ast.Constant) and node.args[1].value is None)


def test_the_version_is_the_same_in_the_package_and_the_distribution():
    import tomllib

    import secure_access_client

    project = tomllib.loads((CLIENTS / "pyproject.toml").read_text())["project"]
    assert project["version"] == secure_access_client.__version__
    changelog = (CLIENTS / "CHANGELOG.md").read_text()
    assert f"## {project['version']}" in changelog
