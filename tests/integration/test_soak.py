"""GIVEN forty orders across Shopify, WooCommerce, Amazon and the operator API, with duplicate and
reordered deliveries, channel and Stripe faults, cancels and returns in flight, WHEN the process that runs
the handlers is killed with SIGKILL during the traffic and started again while moto (the AWS state) and
the Lambda service front survive, THEN, checked from the data (bench/soak.py's checks): no order lost or
doubled, every order at rest, no PaymentIntent captured or refunded twice, no refund above its capture,
every shipment told to its channel exactly once, every return ended, every DLQ message explained.

The full run (10,000 orders, three kills) is `bench/soak.py`; this one is bounded by its order count and
its own time cap, and stops by itself."""

from __future__ import annotations

import pytest

from bench.soak import (  # the run's secrets: tests/integration/test_log_scan.py looks for them
    EASYPOST_SECRET,
    SHOP_SECRET,
    STRIPE_KEY,
    STRIPE_WEBHOOK_SECRET,
    THREEPL_KEY,
    THREEPL_SECRET,
    TOKEN,
    WOO_SECRET,
    run,
)
from tests.integration.conftest import ARTIFACTS

ORDERS = 40  # a few dozen: a few hundred cost minutes of `make test` (bench/soak.py runs 10,000)
CAP_SECONDS = 420  # the soak stops itself by then and reports what had not settled
SOAK_LOG = ARTIFACTS / "soak-stack.log"
SECRETS = (
    EASYPOST_SECRET, SHOP_SECRET, STRIPE_KEY, STRIPE_WEBHOOK_SECRET, THREEPL_KEY, THREEPL_SECRET, TOKEN,
    WOO_SECRET,
)  # fmt: skip


@pytest.mark.timeout(CAP_SECONDS + 120)  # the soak's own cap governs, then its checks and shutdown
def test_a_few_dozen_orders_with_faults_and_a_killed_handler_process_end_exactly_once():
    SOAK_LOG.parent.mkdir(exist_ok=True)
    SOAK_LOG.unlink(missing_ok=True)
    report = run(
        orders=ORDERS, kills=1, max_seconds=CAP_SECONDS, rate=20, seed=5, log_path=SOAK_LOG, quiet_s=8
    )

    assert report["problems"] == []
    assert report["orders_placed"] == ORDERS
    assert report["lost"] == 0 and report["doubled"] == 0 and report["not_at_rest"] == 0
    assert report["orders_in_hub"] == ORDERS
    assert report["faults"]["kills"] == 1
    assert set(report["by_channel"]) == {"shopify", "woocommerce", "amazon", "manual"}
    stripe = report["stripe"]
    assert stripe["captured_twice"] == 0 and stripe["refunded_more_than_once"] == 0
    assert stripe["refund_above_capture"] == 0
    assert stripe["captures_executed"] >= 1
    assert sum(report["milestones"]["shipped_at_channel"].values()) >= 1
    assert not any("unexplained" in name for name in report["dlq"])
    assert report["ok"] is True
