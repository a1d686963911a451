"""Calls the Chalice app's Lambda handlers in-process, the way the Lambda service would."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Protocol

from chalice import Chalice
from chalice.local import LambdaContext

log = logging.getLogger("local.lambda")

DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_MS = 60_000


class FunctionNotFound(KeyError):
    """No handler of that name in the app (Lambda answers ResourceNotFoundException)."""


class FunctionUnavailable(RuntimeError):
    """The function could not be started in time (Lambda answers 500 ServiceException; Step Functions
    names it Lambda.ServiceException, which every task retries)."""


@dataclass(frozen=True)
class InvocationResult:
    payload: Any
    function_error: str | None  # "Unhandled" when the handler raised, as Lambda reports it


class Functions(Protocol):
    """What the AWS gateway needs of the functions it answers Invoke for."""

    def resolve(self, name_or_arn: str) -> str: ...

    def invoke(self, name_or_arn: str, event: Any) -> InvocationResult: ...


class LambdaRuntime:
    """Every function the Chalice app defines, addressable by its Chalice name or deployed name."""

    def __init__(self, app: Chalice, *, app_name: str, stage: str) -> None:
        self._app = app
        self._prefix = f"{app_name}-{stage}-"
        self._lock = threading.Lock()
        self.invocations: dict[str, int] = {}
        self.seconds: dict[str, float] = {}  # wall-clock time in each handler, summed (for bench/)

    @property
    def function_names(self) -> list[str]:
        return sorted(self._app.handler_map)

    def deployed_name(self, name: str) -> str:
        return self._prefix + name

    def resolve(self, name_or_arn: str) -> str:
        """A function name, a deployed name, or an ARN (with optional qualifier) → the Chalice name."""
        name = name_or_arn
        if name.startswith("arn:"):
            parts = name.split(":")
            # arn:aws:lambda:region:account:function:name[:qualifier]
            name = parts[6] if len(parts) > 6 else parts[-1]
        elif ":" in name:
            name = name.split(":", 1)[0]
        name = name.removeprefix(self._prefix)
        if name not in self._app.handler_map:
            raise FunctionNotFound(name_or_arn)
        return name

    def invoke(self, name_or_arn: str, event: Any) -> InvocationResult:
        name = self.resolve(name_or_arn)
        handler = self._app.handler_map[name]
        context = LambdaContext(
            self.deployed_name(name), DEFAULT_MEMORY_MB, max_runtime_ms=DEFAULT_TIMEOUT_MS
        )
        with self._lock:
            self.invocations[name] = self.invocations.get(name, 0) + 1
        started = time.perf_counter()
        try:
            return InvocationResult(handler(event, context), None)
        except Exception as exc:
            log.warning("function %s raised %s: %s", name, type(exc).__name__, exc)
            return InvocationResult(
                {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                },
                "Unhandled",
            )
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + elapsed

    def invoke_json(self, name_or_arn: str, body: bytes) -> InvocationResult:
        event = json.loads(body) if body else {}
        return self.invoke(name_or_arn, event)
