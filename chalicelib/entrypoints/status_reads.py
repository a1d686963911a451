"""What the status page's overview reads beyond the status board: the returns and the credit owed."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Protocol

from chalicelib.composition import Services
from chalicelib.domain.errors import HubError
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.returns.overview import ReturnsOverview, returns_overview
from chalicelib.observability import logger
from chalicelib.settings import ConfigurationError


class OpenReturns(Protocol):
    """The part of the status board this reads (adapters/status_board.py)."""

    def with_open_returns(self, limit: int) -> list[Order]: ...


RETURNS_READ = 50  # orders with an open return read at each end (newest, oldest)
RETURNS_SHOWN = 25  # returns resolved today listed by id


def returns_view(svc: Services, board: OpenReturns, counts: dict[str, int], now: datetime) -> ReturnsOverview:
    """Open returns from the orders in RETURN_REQUESTED (at most two queries of RETURNS_READ items), the
    day's closed ones from the returns board (one query of a few items)."""
    closed = svc.returns_board.closed_on(now.date(), RETURNS_SHOWN) if svc.returns_board else {}
    return returns_overview(
        board.with_open_returns(RETURNS_READ),
        closed,
        policies=svc.return_policies,
        now=now,
        orders_open=counts.get(OrderStatus.RETURN_REQUESTED.value, 0),
    )


def liabilities(svc: Services) -> dict[str, Decimal] | None:
    """Outstanding store credit and vouchers per currency; None when the ledger cannot be read (the rest
    of the page still shows)."""
    try:
        return svc.credit().liabilities()
    except (ConfigurationError, HubError) as exc:
        logger.warning("liabilities unreadable", extra={"error": type(exc).__name__})
        return None
