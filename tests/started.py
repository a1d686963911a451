"""What a test starts (webhook receivers, simulators), stopped newest first when the test ends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar


class Stoppable(Protocol):
    def stop(self) -> Any: ...


T = TypeVar("T", bound=Stoppable)


class Started:
    """`started(thing)` keeps a running `thing` to stop; `started.maker(...)` builds a simulator factory."""

    def __init__(self) -> None:
        self._running: list[Stoppable] = []

    def __call__(self, thing: T) -> T:
        self._running.append(thing)
        return thing

    def maker(self, build: Callable[..., Any], *args: Any, **defaults: Any) -> Callable[..., Any]:
        """`make(**knobs)`: `build(*args, **defaults)` with `knobs` over the defaults, started and kept."""

        def make(**knobs: Any) -> Any:
            return self(build(*args, **{**defaults, **knobs}).start())

        return make

    def stop_all(self) -> None:
        while self._running:
            self._running.pop().stop()
