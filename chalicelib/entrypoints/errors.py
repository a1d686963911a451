"""The one place domain errors become HTTP answers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from chalice import BadRequestError, ConflictError, NotFoundError

from chalicelib.domain.errors import ConcurrentUpdate, InvalidInput, NotFound

F = TypeVar("F", bound=Callable[..., Any])


def http_errors(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except InvalidInput as exc:
            raise BadRequestError(str(exc)) from exc
        except NotFound as exc:
            raise NotFoundError(str(exc)) from exc
        except ConcurrentUpdate as exc:
            raise ConflictError(str(exc)) from exc

    return cast(F, wrapper)
