"""A requests session whose first answer to one GraphQL operation is lost on the way back."""

from __future__ import annotations

from typing import Any

import requests


class LosesFirstAnswer(requests.Session):
    """Sends every request, but the first `operation`'s answer never arrives (a read timeout)."""

    def __init__(self, operation: str) -> None:
        super().__init__()
        self.operation = operation
        self.lost = 0

    def post(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = super().post(url, **kwargs)
        if self.operation in kwargs["json"]["query"] and not self.lost:
            self.lost += 1
            raise requests.ReadTimeout("read timed out")
        return response
