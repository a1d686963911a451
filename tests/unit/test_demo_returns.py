"""The demo's returns: which completed orders come back, and how many (local/demo_returns.py)."""

from __future__ import annotations

from typing import Any

from local.demo_returns import AMAZON, EXCHANGE, PATHS, RESTOCK, SCRAP, SHOPIFY, VOUCHER, ReturnPicker, fits


def completed(n: int, channel: str = "manual", lines: int = 2, source: str = "stripe") -> dict[str, Any]:
    return {
        "order_id": f"o{n}",
        "channel": channel,
        "lines": [{"line_id": str(i), "sku": f"SKU-{i}", "quantity": 1} for i in range(1, lines + 1)],
        "payment": {"source": source},
        "shipments": [{"shipment_id": f"s{n}", "status": "delivered"}],
    }


def test_GIVEN_a_two_line_card_order_WHEN_offered_THEN_it_fits_the_restock_refund_and_one_line_does_not():
    assert fits(RESTOCK, completed(1))
    assert not fits(RESTOCK, completed(2, lines=1))
    assert not fits(RESTOCK, completed(3, source="manual"))


def test_GIVEN_marketplace_orders_WHEN_offered_THEN_they_fit_only_their_channels_path():
    assert [p for p in PATHS if fits(p, completed(1, "shopify"))] == [SHOPIFY]
    assert [p for p in PATHS if fits(p, completed(2, "amazon"))] == [AMAZON]
    assert not any(fits(p, {"order_id": "x", "channel": "manual"}) for p in PATHS)  # no lines: never


def test_GIVEN_an_order_completed_without_a_delivered_parcel_WHEN_offered_THEN_it_fits_no_path():
    nothing_shipped = {**completed(1), "shipments": []}
    in_transit = {**completed(2), "shipments": [{"shipment_id": "s2", "status": "in_transit"}]}
    assert not any(fits(p, order) for p in PATHS for order in (nothing_shipped, in_transit))


def test_GIVEN_every_second_WHEN_orders_are_offered_THEN_every_second_fitting_one_gets_the_next_open_path():
    picker = ReturnPicker(every=2)
    picked = [picker.offer(completed(n)) for n in range(1, 9)]
    assert picked == [None, RESTOCK, None, SCRAP, None, VOUCHER, None, EXCHANGE]


def test_GIVEN_an_order_offered_twice_WHEN_it_comes_again_THEN_it_is_neither_counted_nor_picked_again():
    picker = ReturnPicker(every=1)
    assert picker.offer(completed(1)) == RESTOCK
    assert picker.offer(completed(1)) is None
    assert picker.offer(completed(2)) == SCRAP


def test_GIVEN_orders_no_open_path_fits_WHEN_offered_THEN_they_do_not_count_towards_every_nth():
    picker = ReturnPicker((SHOPIFY,), every=2)
    assert picker.offer(completed(1, "manual")) is None
    assert picker.offer(completed(2, "shopify")) is None  # the first fitting one
    assert picker.offer(completed(3, "manual")) is None
    assert picker.offer(completed(4, "shopify")) == SHOPIFY


def test_GIVEN_each_path_played_once_WHEN_more_orders_complete_THEN_no_more_returns_are_made():
    picker = ReturnPicker(every=1)
    orders = [completed(1, "shopify"), completed(2, "amazon"), *(completed(n) for n in range(3, 20))]
    picked = [p for p in (picker.offer(o) for o in orders) if p is not None]
    assert sorted(picked) == sorted(PATHS) and picker.done
    assert picker.offer(completed(99)) is None
