"""The one place domain errors become HTTP answers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from chalice import BadRequestError, ChaliceViewError, ConflictError, NotFoundError

from chalicelib.domain.errors import ConcurrentUpdate, IdempotencyKeyReused, InvalidInput, NotFound, TooLarge

F = TypeVar("F", bound=Callable[..., Any])


class PayloadTooLargeError(ChaliceViewError):
    STATUS_CODE = 413


def http_errors(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except TooLarge as exc:
            raise PayloadTooLargeError(str(exc)) from exc
        except InvalidInput as exc:
            raise BadRequestError(str(exc)) from exc
        except NotFound as exc:
            raise NotFoundError(str(exc)) from exc
        except (ConcurrentUpdate, IdempotencyKeyReused) as exc:
            raise ConflictError(str(exc)) from exc

    return cast(F, wrapper)
