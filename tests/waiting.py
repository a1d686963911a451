"""Waiting on evidence in the unit tests: a generous deadline, left as soon as the evidence is there."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_S = 20.0  # generous: a busy 2-core machine may be slow, and a passing check returns at once


def eventually(check: Callable[[], T], *, timeout: float = DEADLINE_S, what: str = "the condition") -> T:
    """Poll `check` until it returns something truthy and return that; fail once `timeout` passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout} s; last: {value!r}")
        time.sleep(0.005)  # a poll interval, not a wait for the system under test
