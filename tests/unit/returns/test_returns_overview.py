"""The status page's returns overview: open returns grouped from the orders in RETURN_REQUESTED (no scan),
the day's resolved and expired returns from the returns board (DynamoDB in moto, in-process)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from chalicelib.adapters.order_repository import DynamoOrderRepository
from chalicelib.adapters.returns_board import DynamoReturnsBoard
from chalicelib.adapters.status_board import DynamoStatusBoard
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.returns import resolution, steps
from chalicelib.domain.returns.model import ReturnStatus, find_return, put_return
from chalicelib.domain.returns.overview import returns_overview
from chalicelib.entrypoints.status_returns_html import liabilities_section, returns_section
from tests.unit.returns.conftest import World

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class InMemoryReturnsBoard:
    def __init__(self) -> None:
        self.days: dict[tuple[date, str], set[str]] = {}

    def closed(self, ret) -> None:
        self.days.setdefault((ret.updated_at.date(), ret.status.value), set()).add(ret.return_id)

    def closed_on(self, day: date, limit: int) -> dict[str, tuple[int, list[str]]]:
        return {s: (len(ids), sorted(ids)[:limit]) for (d, s), ids in self.days.items() if d == day}


def _open(world: World, order_id: str, line: str = "L1", quantity: int = 1):
    body = {"lines": [{"line_id": line, "quantity": quantity, "reason": "size"}], "resolution": "refund"}
    return world.open_return(order_id, body)[0]


def _set(world: World, order_id: str, rid: str, **update) -> None:
    stored = world.orders.get(order_id)
    order = stored.order.model_copy(deep=True)
    ret = find_return(order, rid)
    put_return(order, ret.model_copy(update=update))
    world.orders.save(order, expected_version=stored.version)


def test_given_returns_in_every_state_then_each_lands_in_one_group_with_why_it_needs_a_look(world):
    a, b, c, d, e = (world.delivered_order(f"R-{n}") for n in range(5))
    parcel = _open(world, a)
    late_parcel = _open(world, b)
    _set(
        world, b, late_parcel.return_id, status=ReturnStatus.LABEL_SENT, requested_at=NOW - timedelta(days=31)
    )
    inspect = _open(world, c)
    _set(world, c, inspect.return_id, status=ReturnStatus.RECEIVED, received_at=NOW - timedelta(days=1))
    late_inspection = _open(world, d, "L2")
    _set(
        world,
        d,
        late_inspection.return_id,
        status=ReturnStatus.RECEIVED,
        flags=["inspection_overdue", "3pl:e1"],
    )
    failed = _open(world, e)
    _set(world, e, failed.return_id, flags=["failed"])
    orders = [world.order(o) for o in (a, b, c, d, e, a)]  # an order read twice (newest and oldest pages)

    closed = {"resolved": (30, ["X-r1"]), "expired": (1, ["Y-r2"])}
    view = returns_overview(orders, closed, policies=world.policies, now=NOW, orders_open=7)

    assert [r.return_id for r in view.awaiting_parcel] == [parcel.return_id]
    assert [r.return_id for r in view.awaiting_inspection] == [inspect.return_id]
    assert [(r.return_id, r.why) for r in view.overdue] == [
        (late_parcel.return_id, "no parcel after 30 days"),
        (late_inspection.return_id, "inspection_overdue"),
        ("Y-r2", "parcel_overdue: expired today"),
    ]
    assert [r.return_id for r in view.failed] == [failed.return_id]
    assert view.overdue[1].flags == ("inspection_overdue",)  # event markers are bookkeeping, not shown
    assert view.resolved_today_count == 30 and [r.order_id for r in view.resolved_today] == ["X"]
    assert (view.orders_read, view.orders_open) == (5, 7)

    html = returns_section("", view, NOW)
    assert f'href="/status/orders/{a}/returns/{parcel.return_id}"' in html
    assert '<span class="count">30</span>' in html and "and 29 more" in html
    assert "Showing the returns of 5 of 7 orders" in html
    assert "ana@example.com" not in html and "Ana" not in html


def test_liabilities_show_per_currency_or_say_the_ledger_is_unavailable():
    from decimal import Decimal

    html = liabilities_section({"USD": Decimal("5.00"), "EUR": Decimal("12.50")})
    assert html.index("EUR") < html.index("USD") and "12.50" in html
    assert "not available" in liabilities_section(None)
    assert "No store credit" in liabilities_section({})


def test_given_a_resolved_return_when_the_task_is_retried_then_the_board_counts_it_once(world):
    board = InMemoryReturnsBoard()
    order_id = world.delivered_order()
    ret = _open(world, order_id)
    _set(world, order_id, ret.return_id, status=ReturnStatus.INSPECTED)
    kw = {"orders": world.orders, "policies": world.policies, "gateway": lambda: world.gateway}
    for _ in range(2):
        done = resolution.resolve(order_id, ret.return_id, now=world.clock, board=board, **kw)
        assert done["status"] == "resolved"
    day = find_return(world.order(order_id), ret.return_id).updated_at.date()
    assert board.closed_on(day, 10) == {"resolved": (1, [ret.return_id])}


def test_given_a_parcel_past_its_deadline_then_the_expired_return_is_on_the_board(world):
    board = InMemoryReturnsBoard()
    order_id = world.delivered_order()
    ret = _open(world, order_id)
    result = steps.overdue(
        order_id, ret.return_id, "parcel", orders=world.orders, now=world.clock, board=board
    )
    assert result["status"] == "expired"
    assert [s for (_, s) in board.days] == ["expired"]


def test_the_dynamo_board_keeps_a_days_closed_returns_once_each_and_lists_open_ones_by_index(table):
    repo = DynamoOrderRepository()
    world = World(orders=repo)
    board = DynamoReturnsBoard()
    open_ids = [world.delivered_order(f"D-{n}") for n in range(3)]
    rets = [_open(world, o) for o in open_ids]
    _set(world, open_ids[0], rets[0].return_id, status=ReturnStatus.RESOLVED, updated_at=NOW)
    done = find_return(world.order(open_ids[0]), rets[0].return_id)
    board.closed(done)
    board.closed(done)  # a retried step
    expired = rets[1].model_copy(update={"status": ReturnStatus.EXPIRED, "updated_at": NOW})
    board.closed(expired)
    board.closed(rets[2])  # not closed: not recorded

    assert board.closed_on(NOW.date(), 10) == {
        "resolved": (1, [rets[0].return_id]),
        "expired": (1, [rets[1].return_id]),
    }
    assert board.closed_on(NOW.date() - timedelta(days=1), 10) == {}

    status_board = DynamoStatusBoard()
    assert {o.order_id for o in status_board.with_open_returns(50)} == set(open_ids)
    both_ends = status_board.with_open_returns(2)  # a full page: the oldest page is read too
    assert {o.order_id for o in both_ends} == set(open_ids)
    assert all(o.status == OrderStatus.RETURN_REQUESTED for o in both_ends)
