"""Browser journeys: the app served on loopback in a thread, one headless Chromium per worker.

Chromium is Debian's package (``make browser`` installs it); Playwright never downloads one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture(scope="session")
def live_server(app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `make browser` (make test does it for you)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def virtual_key_page(browser: Any, live_server: LiveServer) -> Any:
    """A page on ``http://localhost:<port>`` with a virtual security key (USB, CTAP2, UV).

    Chromium's virtual authenticator, through the DevTools protocol. Browsers refuse WebAuthn
    on IP-address origins, hence ``localhost``; outside production the server accepts any
    loopback port as an origin. Close it with ``page.context.close()``.
    """
    context = browser.new_context(base_url=live_server.url.replace("127.0.0.1", "localhost"))
    page = context.new_page()
    page.set_default_timeout(10_000)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    return page


@pytest.fixture
def key_page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """:func:`virtual_key_page` as a fixture (for helpdesk staff, who must use a key: K01)."""
    page = virtual_key_page(browser, live_server)
    yield page
    page.context.close()


def sign_in_staff_with_new_key(page: Any, email: str, password: str) -> None:
    """Sign a staff member in on a :func:`key_page`: password, then the security key set-up
    staff must complete (K01), then past the recovery codes to wherever sign-in lands."""
    page.goto("/sign-in?prompt=login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/sign-in/set-up/security-key")
    page.fill("#name", "Helpdesk key")
    page.click("button:has-text('Set up security key or passkey')")
    page.wait_for_url("**/sign-in/set-up/recovery-codes")
    page.click("button:has-text('I have saved my recovery codes')")
    page.wait_for_url(lambda url: "/sign-in" not in url)


def assert_accessible(page: Any) -> None:
    """axe-core finds no serious or critical violation on the current page."""
    # Evaluated through DevTools, which the page's strict CSP does not govern (an injected
    # <script> tag would be blocked by it, as it should be).
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document)")
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, json.dumps(
        [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [n["target"] for n in v["nodes"]][:3],
            }
            for v in bad
        ],
        indent=2,
    )
