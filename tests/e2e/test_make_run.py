"""The README's first command: `make run` serves the start page a person can open.

Runs the real Makefile target (in this checkout, so the virtualenv and assets are already
there and it is quick) on a spare port with a fresh instance folder, waits until it answers,
opens the page in headless Chromium, and stops it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], attempts: int = 240) -> None:
    for _ in range(attempts):  # bounded: about 2 minutes
        if process.poll() is not None:
            raise AssertionError("make run exited early")
        try:
            with urllib.request.urlopen(url, timeout=0.5):  # noqa: S310 (loopback only)
                return
        except OSError:
            subprocess.run(["sleep", "0.5"], check=True)
    raise AssertionError("make run did not start serving")


def test_make_run_serves_the_start_page(tmp_path, browser):
    port = free_port()
    env = {**os.environ, "IDP_INSTANCE_PATH": str(tmp_path), "IDP_ENV": "development"}
    env.pop("IDP_DATABASE_URL", None)
    env.pop("IDP_REDIS_URL", None)
    process = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        assert page.locator("h1").inner_text() == "Sign in to your school's services"
        page.click("a.govuk-button--start")
        assert page.locator("h1").inner_text() == "Sign in"
        page.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert "paper lantern orchard ribbon" in output  # it told the person how to sign in
    assert (tmp_path / "idp.sqlite3").exists()
