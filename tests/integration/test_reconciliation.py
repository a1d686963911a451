"""Reconciliation on the local stack: webhooks the channel never sent are caught by pulling the channel."""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib.domain.order import derive_order_id
from tests.integration.conftest import PUBLISH_WOO, WAIT_SECONDS, eventually, status_is
from tests.orders import manual_body


def reconcile(stack) -> list[dict[str, Any]]:
    answer = stack.api("POST", "/api/reconciliation/run")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["runs"])


def woo_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    [run] = [r for r in runs if r["channel"] == "woocommerce" and r["store"] == PUBLISH_WOO]
    return run


def completed_stripe_order(stack, intent_id: str) -> str:
    """A manual order of 15.00 EUR paid by the PaymentIntent, once the hub has completed it: its id."""
    external_id = f"REC-{uuid.uuid4().hex[:8]}"
    body = manual_body(
        "it-reconcile",
        external_id,
        lines=[{"title": "Scarf", "quantity": 1, "unit_price": "15.00"}],
        payment={"source": "stripe", "reference": intent_id},
    )
    assert stack.api("POST", "/api/orders", json=body).status_code == 202
    order_id = derive_order_id("manual", "it-reconcile", external_id)
    stack.order_when(order_id, status_is("COMPLETED"))
    return order_id


def test_woocommerce__dropped_webhooks_are_restored_exactly_once_and_channel_cancellations_applied(
    stack, woo_store, threepl
):
    reconcile(stack)  # the store's first run: everything it already knows is in sync
    woo_store.drop_rate = 1.0  # the store sends nothing
    try:
        placed = [woo_store.create_order(payment_method="cod") for _ in range(3)]
        assert woo_store.flush(timeout=WAIT_SECONDS)
        ids = {str(p["id"]): derive_order_id("woocommerce", PUBLISH_WOO, str(p["id"])) for p in placed}
        assert all(stack.api("GET", f"/api/orders/{oid}").status_code == 404 for oid in ids.values())
        for order_id in ids.values():  # at the warehouse until the store's cancellation is applied
            threepl.hold_order(order_id)
        run = woo_run(reconcile(stack))
        assert sorted(run["missing_restored"]) == sorted(ids)
        assert [e for e in run["errors"] if e.split(":")[0] in ids] == []
        for order_id in ids.values():
            order = stack.api("GET", f"/api/orders/{order_id}").json()
            assert [h["event"] for h in order["history"]].count("received") == 1

        # Cancelled in the store only (its webhook dropped too): the next run applies it.
        cancelled = placed[0]["id"]
        woo_store.update_status(cancelled, "cancelled")
        assert woo_store.flush(timeout=WAIT_SECONDS)
        again = woo_run(reconcile(stack))
        assert again["missing_restored"] == [] and str(cancelled) in again["drift_applied"]
        order_id = ids[str(cancelled)]
        stack.order_when(order_id, status_is("CANCELLED"))
    finally:
        woo_store.drop_rate = 0.0
    runs = stack.api("GET", "/api/reconciliation/runs").json()["runs"]
    assert runs[0]["started_at"] >= runs[-1]["started_at"]
    assert any(sorted(r["missing_restored"]) == sorted(ids) for r in runs)


def test_shopify__dropped_webhooks_are_restored_by_the_graphql_pull(stack, shopify_store):
    from tests.integration.conftest import PUBLISH_SHOP

    reconcile(stack)
    shopify_store.drop_rate = 1.0
    try:
        placed = [
            shopify_store.create_order(
                currency="USD",
                financial_status="paid",
                items=[{"title": "Cap", "price": "15.00", "quantity": 1, "sku": "CAP"}],
            )
            for _ in range(2)
        ]
        ids = {str(p["id"]): derive_order_id("shopify", PUBLISH_SHOP, str(p["id"])) for p in placed}
        assert all(stack.api("GET", f"/api/orders/{oid}").status_code == 404 for oid in ids.values())
        runs = reconcile(stack)
    finally:
        shopify_store.drop_rate = 0.0
    [run] = [r for r in runs if r["channel"] == "shopify" and r["store"] == PUBLISH_SHOP]
    assert sorted(run["missing_restored"]) == sorted(ids) and run["errors"] == []
    for external_id, order_id in ids.items():
        order = stack.api("GET", f"/api/orders/{order_id}").json()
        assert order["external_id"] == external_id and [ln["sku"] for ln in order["lines"]] == ["CAP"]
        assert [h["event"] for h in order["history"]].count("received") == 1
    again = reconcile(stack)
    [second] = [r for r in again if r["channel"] == "shopify" and r["store"] == PUBLISH_SHOP]
    assert second["missing_restored"] == []


def test_stripe__a_refund_made_outside_the_hub_is_reported(stack, stripe):
    intent = stripe.create_payment_intent(1500, "eur", "pm_card_visa")
    order_id = completed_stripe_order(stack, intent["id"])
    refund = stripe.refund_outside(intent["id"], 500)  # from the Stripe dashboard
    runs = reconcile(stack)
    [payments] = [r for r in runs if r["channel"] == "stripe"]
    [outside] = [r for r in payments["external_refunds"] if r["refund"] == refund["id"]]
    assert outside == {
        "refund": refund["id"],
        "payment_intent": intent["id"],
        "order_id": order_id,
        "amount": "5.00",
        "currency": "EUR",
        "reason": None,
    }


def test_stripe__a_capture_made_outside_the_hub_is_reported_the_hubs_own_is_not(stack, stripe):
    from tests.integration.test_fraud_review import high_value_order

    # The hub captures this one itself.
    own = stripe.create_payment_intent(1500, "eur", "pm_card_visa")
    completed_stripe_order(stack, own["id"])
    # This one waits for its fraud review when someone captures part of it in the Stripe dashboard.
    review_body = high_value_order(f"REC-{uuid.uuid4().hex[:8]}", stripe)
    held = review_body["payment"]["reference"]
    assert stack.api("POST", "/api/orders", json=review_body).status_code == 202
    review_id = derive_order_id("manual", "it-fraud", review_body["external_id"])
    stack.order_when(review_id, status_is("FRAUD_REVIEW"))
    stripe.capture_outside(held, 100000)
    # And a PaymentIntent of no order of the hub's, captured at once.
    stranger = stripe.create_payment_intent(700, "usd", "pm_card_visa", capture_method="automatic")

    runs = reconcile(stack)
    [payments] = [r for r in runs if r["channel"] == "stripe"]
    found = {c["payment_intent"]: c for c in payments["external_captures"]}
    assert {k: v for k, v in found[held].items() if k != "captured_at"} == {
        "payment_intent": held,
        "charge": stripe.payment_intent(held)["latest_charge"],
        "order_id": review_id,
        "amount": "1000.00",
        "hub_amount": None,
        "currency": "EUR",
        "reason": "not_captured_by_hub",
        "order_status": "FRAUD_REVIEW",
    }
    assert (found[stranger["id"]]["order_id"], found[stranger["id"]]["reason"]) == (
        None,
        "unknown_payment_intent",
    )
    assert (found[stranger["id"]]["amount"], found[stranger["id"]]["currency"]) == ("7.00", "USD")
    assert own["id"] not in found  # the hub's own capture: in sync
    assert own["id"] not in {c["payment_intent"] for c in payments["captures_not_in_stripe"]}
    assert payments["in_sync"] >= 1 and payments["errors"] == []
    stored = stack.api("GET", "/api/reconciliation/runs").json()["runs"]
    assert any(held in {c["payment_intent"] for c in r.get("external_captures", [])} for r in stored)


def test_a_failed_publication_is_published_again_by_reconciliation(stack, woo_store):
    from tests.integration.test_publishing import all_sent, publish, woo_order

    publish(stack)  # other orders' milestones out of the way: the refusals below are this order's
    placed, order_id = woo_order(woo_store)
    stack.order_when(order_id, status_is("COMPLETED"))
    woo_store.fail_writes(2, 400)  # the store refuses the first writes: the milestone is marked failed

    publish(stack)  # the only outbox run on the suite's stack (conftest): it meets the refusals
    order = stack.api("GET", f"/api/orders/{order_id}").json()
    failed = [p["publication_id"] for p in order["publications"] if p["status"] == "failed"]
    assert failed, order["publications"]
    run = woo_run(reconcile(stack))
    # (other orders of the store with refused milestones are put back too)
    assert {f"{order_id}:{pid}" for pid in failed} <= set(run["republished"])
    publish(stack)
    assert eventually(lambda: all_sent(stack.api("GET", f"/api/orders/{order_id}").json()))
    assert woo_store.status(placed["id"]) == "completed"


# Last: its orders go on through their lifecycle, and their milestones would take the store refusals
# test_a_failed_publication_is_published_again_by_reconciliation arranges for its own order.
def test_woocommerce__a_change_at_the_stamp_the_hub_applied_is_flagged_not_applied(stack, woo_store):
    from datetime import UTC, datetime

    edited, untouched = (woo_store.create_order(payment_method="cod", currency="EUR") for _ in range(2))
    assert woo_store.flush(timeout=WAIT_SECONDS)
    ids = {p["id"]: derive_order_id("woocommerce", PUBLISH_WOO, str(p["id"])) for p in (edited, untouched)}

    def applied(placed) -> dict[str, Any] | None:
        response = stack.api("GET", f"/api/orders/{ids[placed['id']]}")
        stamp = datetime.fromisoformat(woo_store.get_order(placed["id"])["date_modified_gmt"]).replace(
            tzinfo=UTC
        )
        if response.status_code != 200 or datetime.fromisoformat(response.json()["updated_at"]) != stamp:
            return None
        return dict(response.json())

    before = eventually(lambda: applied(edited))
    assert eventually(lambda: applied(untouched))
    # Written straight to the store's database: another total and status, the same date_modified.
    woo_store.edit_quietly(edited["id"], total="999.00", status="on-hold")

    run = woo_run(reconcile(stack))
    [flagged] = [f for f in run["drift_flagged"] if f["external_id"] == str(edited["id"])]
    assert flagged["order_id"] == ids[edited["id"]] and flagged["fields"] == ["status", "totals"]
    assert flagged["channel_value"]["status"] == "open" and flagged["hub_value"]["status"] == "paid"
    assert flagged["channel_value"]["totals"]["total"] == "999.00"
    assert flagged["hub_value"]["totals"]["total"] == edited["total"] == before["totals"]["total"]
    assert str(untouched["id"]) not in {f["external_id"] for f in run["drift_flagged"]}
    assert str(edited["id"]) not in run["drift_applied"] and str(untouched["id"]) not in run["drift_applied"]
    after = stack.api("GET", f"/api/orders/{ids[edited['id']]}").json()
    assert after["totals"] == before["totals"] and after["updated_at"] == before["updated_at"]
    assert "updated" not in [h["event"] for h in after["history"][len(before["history"]) :]]
    stored = stack.api("GET", "/api/reconciliation/runs").json()["runs"]
    assert any(flagged in r.get("drift_flagged", []) for r in stored)
