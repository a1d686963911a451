"""Time that moves only when a test or a fake sleep moves it: one clock for a client and its simulator."""

from __future__ import annotations


class Clock:
    """A monotonic clock that moves only when told (`clock.now += seconds`)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Sleeps(list[float]):
    """A sleep that moves its clock on instead of waiting, and remembers how long it was asked to."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self.clock = clock if clock is not None else Clock()

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.now += seconds


class FakeTime(Clock):
    """A clock with its own sleep (`.sleep`) that moves it on and logs each wait in `.sleeps`."""

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__(start)
        self.sleeps = Sleeps(self)

    def sleep(self, seconds: float) -> None:
        self.sleeps(seconds)
