"""What returns ask of the outside: the carrier's return labels, the 3PL's returns desk, the channel's
returns report, and the credit ledger."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from chalicelib.domain.order import Order
from chalicelib.domain.returns.events import ChannelReturn
from chalicelib.domain.returns.model import OrderReturn, ReturnLabel


class ReturnLabels(Protocol):
    """The carrier account that buys return labels (EasyPost `is_return` shipments)."""

    def return_label(self, order: Order, ret: OrderReturn, *, idempotency_key: str) -> ReturnLabel:
        """Buy (once per key) a label from the customer's address to the warehouse; the parcel is
        tracked like an outbound one (a tracker is created with it)."""
        ...


class ReturnsDesk(Protocol):
    """A 3PL's returns API: announce a return so the warehouse can receive it (an RMA)."""

    def expect_return(self, request: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """`request`: {"return_id", "order_id", "warehouse", "tracking_number"?, "lines":
        [{"sku", "quantity", "line_id"}]}. Idempotent on the key."""
        ...


class ReturnsReport(Protocol):
    """A channel's returns as a report (Amazon: GET_XML_RETURNS_DATA_BY_RETURN_DATE)."""

    def returns_since(self, since: Any) -> list[ChannelReturn]: ...


class ReturnsBoard(Protocol):
    """The status page's small index of returns closed per day (resolved, expired), so "resolved today"
    is read as a few items, never by scanning orders. Recording is idempotent: a retried step that closes
    a return again records it once."""

    def closed(self, ret: OrderReturn) -> None:
        """Record `ret` (resolved or expired) under the day it reached that status (its `updated_at`)."""
        ...

    def closed_on(self, day: date, limit: int) -> dict[str, tuple[int, list[str]]]:
        """Per final status ("resolved", "expired"): how many returns closed on `day`, and at most `limit`
        of their ids."""
        ...
