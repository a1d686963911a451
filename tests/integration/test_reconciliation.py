"""Reconciliation on the local stack: webhooks the channel never sent are caught by pulling the channel."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.order import derive_order_id
from tests.integration.conftest import PUBLISH_WOO, eventually


def reconcile(stack) -> list[dict[str, Any]]:
    answer = stack.api("POST", "/api/reconciliation/run")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["runs"])


def woo_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    [run] = [r for r in runs if r["channel"] == "woocommerce" and r["store"] == PUBLISH_WOO]
    return run


def test_woocommerce__dropped_webhooks_are_restored_exactly_once_and_channel_cancellations_applied(
    stack, woo_store
):
    reconcile(stack)  # the store's first run: everything it already knows is in sync
    woo_store.drop_rate = 1.0  # the store sends nothing
    try:
        placed = [woo_store.create_order(payment_method="cod") for _ in range(3)]
        assert woo_store.flush(timeout=10)
        ids = {str(p["id"]): derive_order_id("woocommerce", PUBLISH_WOO, str(p["id"])) for p in placed}
        assert all(stack.api("GET", f"/api/orders/{oid}").status_code == 404 for oid in ids.values())
        run = woo_run(reconcile(stack))
        assert sorted(run["missing_restored"]) == sorted(ids) and run["errors"] == []
        for order_id in ids.values():
            order = stack.api("GET", f"/api/orders/{order_id}").json()
            assert [h["event"] for h in order["history"]].count("received") == 1

        # Cancelled in the store only (its webhook dropped too): the next run applies it.
        cancelled = placed[0]["id"]
        woo_store.update_status(cancelled, "cancelled")
        assert woo_store.flush(timeout=10)
        again = woo_run(reconcile(stack))
        assert again["missing_restored"] == [] and str(cancelled) in again["drift_applied"]
        order_id = ids[str(cancelled)]
        assert eventually(lambda: stack.api("GET", f"/api/orders/{order_id}").json()["status"] == "CANCELLED")
    finally:
        woo_store.drop_rate = 0.0
    runs = stack.api("GET", "/api/reconciliation/runs").json()["runs"]
    assert runs[0]["started_at"] >= runs[-1]["started_at"]
    assert any(sorted(r["missing_restored"]) == sorted(ids) for r in runs)
