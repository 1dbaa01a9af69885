"""Poll a condition until it holds: the one wait helper of the tests, the testbed and the perf scripts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float = 120.0, interval: float = 0.2, what: str = "") -> T:
    """Poll `condition` until it returns something truthy and return that; fail with `what` after `timeout` s.

    The timeout is an upper bound for a condition that must come true, never a measured duration.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition!r} (last value: {last!r})")
        time.sleep(interval)
