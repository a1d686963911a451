"""The one place domain errors become HTTP answers, and where API routes read their JSON bodies."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from chalice import BadRequestError, ChaliceViewError, ConflictError, NotFoundError
from chalice.app import Request, Response

from chalicelib.domain.errors import ConcurrentUpdate, IdempotencyKeyReused, InvalidInput, NotFound, TooLarge
from chalicelib.domain.json_reader import read_json
from chalicelib.domain.returns.errors import ReturnRefused
from chalicelib.domain.runtime_settings import SettingRefused

F = TypeVar("F", bound=Callable[..., Any])


class PayloadTooLargeError(ChaliceViewError):
    STATUS_CODE = 413


def _unprocessable(exc: ReturnRefused) -> Response:
    """422: the request is well formed but a rule refuses it; `rule` names the rule (policy or order)."""
    return Response(
        body={"Code": "UnprocessableEntity", "Message": str(exc), "rule": exc.rule}, status_code=422
    )


def http_errors(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except ReturnRefused as exc:
            return _unprocessable(exc)
        except SettingRefused as exc:  # well formed, but the setting's schema refuses the value
            return Response(body={"Code": "UnprocessableEntity", "Message": str(exc)}, status_code=422)
        except TooLarge as exc:  # a body over a door's limit, or an order too large to store or queue
            raise PayloadTooLargeError(str(exc)) from exc
        except InvalidInput as exc:
            raise BadRequestError(str(exc)) from exc
        except NotFound as exc:
            raise NotFoundError(str(exc)) from exc
        except (ConcurrentUpdate, IdempotencyKeyReused) as exc:
            raise ConflictError(str(exc)) from exc

    return cast(F, wrapper)


def raw_body(request: Request) -> bytes:
    raw = request.raw_body
    return raw.encode() if isinstance(raw, str) else bytes(raw or b"")


def json_body(request: Request) -> Any:
    """The request's JSON through the hub's one reader (`domain/json_reader`: depth, size, number length,
    no NaN/Infinity, no byte order mark), never Chalice's `json_body` (plain `json.loads`, no limits).
    None for an empty body; JsonRefused (400) or BodyTooLarge (413) otherwise; use under `http_errors`."""
    raw = raw_body(request)
    return read_json(raw) if raw else None
