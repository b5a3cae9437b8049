"""Headless Chromium on a thread of its own, for tests that also run other event loops.

Playwright allows one sync instance per thread; tests that drive a relying party's own loop
(the client library's end-to-end tests, the openid-client interop test) run the browser on
a dedicated thread and hand it work: ``browser_page(lambda page: page.goto(url))``.
Import the fixtures into a conftest: ``from tests.browser_thread import browser_page, chromium``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS


@dataclass
class _Job:
    action: Callable[[Any], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class BrowserThread:
    """Headless Chromium on its own thread: ``browser(lambda page: page.goto(url))``.

    Each call runs on the browser's thread with a fresh-per-test ``page`` and returns what the
    function returned (or raises what it raised). Calls are bounded in time.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-chromium", daemon=True)
        self._thread.start()
        if not self._started.wait(60) or self._failure is not None:
            raise RuntimeError(f"headless Chromium did not start: {self._failure}")

    def _run(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                self._started.set()
                context = page = None
                while (job := self._jobs.get()) is not None:
                    try:
                        if job.action is _new_page:
                            if context is not None:
                                context.close()
                            context = browser.new_context()
                            page = context.new_page()
                            page.set_default_timeout(15_000)
                        else:
                            job.result = job.action(page)
                    except BaseException as error:  # handed to the calling thread
                        job.error = error
                    job.done.set()
                browser.close()
        except BaseException as error:
            self._failure = error
            self._started.set()

    def __call__(self, action: Callable[[Any], Any], timeout: float = 90) -> Any:
        job = _Job(action)
        self._jobs.put(job)
        if not job.done.wait(timeout):
            raise TimeoutError(f"the browser did not finish within {timeout} s")
        if job.error is not None:
            raise job.error
        return job.result

    def new_page(self) -> None:
        self(_new_page)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)


def _new_page(_page: Any) -> None:
    """Marker action: start a new browser context and page."""


@pytest.fixture(scope="session")
def chromium() -> Iterator[BrowserThread]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `make browser` (make test does it for you)")
    browser = BrowserThread()
    yield browser
    browser.close()


@pytest.fixture
def browser_page(chromium: BrowserThread) -> BrowserThread:
    """The session's Chromium with a fresh context and page for this test."""
    chromium.new_page()
    return chromium
