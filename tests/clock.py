"""A clock the tests move by hand, for services that take an injected ``clock`` (a callable
returning Unix seconds): the session store, the throttle. Nothing sleeps and no test depends on
the machine's time (see the developers' guide: no timings in tests).
"""

from __future__ import annotations

START = 1_750_000_000.0  # a fixed moment (June 2025), far from any boundary the tests cross


class Clock:
    """``clock()`` is ``clock.now``; a test moves time with ``clock.now += seconds``."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
