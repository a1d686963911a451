"""The channel outbox: milestones derived in the same write as their cause, published once, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.composition import PUBLISH_CLAIM_SECONDS as CLAIM_SECONDS
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.publishing import (
    MAX_ATTEMPTS,
    Milestone,
    PublishRejected,
    PublishUnavailable,
    due,
    publish_pending,
    retry_publication,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def now() -> datetime:
    return NOW


class Recorder:
    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.sent: list[str] = []
        self.fail = fail or {}

    def publish(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        error = self.fail.get(milestone.kind)
        if error is not None:
            raise error
        self.sent.append(milestone.publication_id)
        return {"id": f"ch-{len(self.sent)}"}


def woo_order(repo) -> str:
    order = normalise_manual(
        {
            "external_id": "P-1",
            "currency": "USD",
            "placed_at": "2026-11-23T10:00:00Z",
            "lines": [{"line_id": "11", "sku": "MUG", "title": "Mug", "quantity": 2, "unit_price": "5.00"}],
        }
    ).model_copy(update={"channel": "woocommerce", "store": "https://shop.example/"})
    repo.save(order, expected_version=None)
    return order.order_id


def happen(repo, order_id, event, **detail):
    def change(order: Order) -> None:
        order.record(event, NOW, **detail)

    mutate(repo, order_id, change)


def test_milestones_enter_the_outbox_with_their_cause_once(repo):
    order_id = woo_order(repo)
    happen(repo, order_id, "payment_captured", route="stripe", amount="10.00")
    happen(repo, order_id, "payment_captured", route="stripe", amount="10.00")  # a replay: same milestone
    lines = [{"line_id": "11", "quantity": 1}]
    parcels = [{"carrier": "UPS", "tracking_number": "1Z"}]
    happen(repo, order_id, "shipped", shipment_id="S1", lines=lines, parcels=parcels, complete=False)
    happen(
        repo,
        order_id,
        "shipped",
        shipment_id="S1",
        lines=lines,
        parcels=parcels,
        complete=True,
        order_complete=True,
    )
    order = repo.get(order_id).order
    assert [p.publication_id for p in order.publications] == ["paid", "shipped:S1:1", "shipped:S1:2"]
    assert all(p.status == "pending" for p in order.publications)
    assert order.publications[2].detail["complete"] is True
    assert repo.pending_publications() == [order_id]


def test_a_manual_order_or_a_cancellation_at_the_channel_is_not_published_back(repo):
    manual = normalise_manual(
        {"external_id": "M", "currency": "USD", "placed_at": "2026-11-23T10:00:00Z",
         "lines": [{"title": "x", "quantity": 1, "unit_price": "1"}]}
    )  # fmt: skip
    manual.record("cancelled", NOW, source="operator", reason="x")
    assert due(manual) == []
    order_id = woo_order(repo)
    happen(repo, order_id, "cancelled_at_channel", previous_status="PAID")
    happen(repo, order_id, "cancelled", source="channel", reason="at the store")
    assert repo.get(order_id).order.publications == []


def test_publish__sent_once_in_order_a_refusal_is_failed_and_the_rest_goes_on(repo):
    order_id = woo_order(repo)
    happen(repo, order_id, "payment_captured", route="stripe", amount="10.00")
    happen(repo, order_id, "cancelled", source="operator", reason="changed mind")
    publisher = Recorder(fail={"paid": PublishRejected("400 woocommerce_rest_invalid")})
    counts = publish_pending(
        order_id, orders=repo, publisher_for=lambda o: publisher, now=now, claim_seconds=CLAIM_SECONDS
    )
    assert counts == {"sent": 1, "failed": 1, "skipped": 0, "busy": 0}
    order = repo.get(order_id).order
    by_id = {p.publication_id: p for p in order.publications}
    assert by_id["paid"].status == "failed" and "woocommerce_rest_invalid" in by_id["paid"].last_error
    assert by_id["cancelled"].status == "sent" and by_id["cancelled"].reference == {"id": "ch-1"}
    assert (
        publish_pending(
            order_id, orders=repo, publisher_for=lambda o: publisher, now=now, claim_seconds=CLAIM_SECONDS
        )["sent"]
        == 0
    )
    assert repo.pending_publications() == []
    # An operator retries the refused one once the store is fixed.
    retry_publication(order_id, "paid", orders=repo)
    publisher.fail = {}
    assert (
        publish_pending(
            order_id, orders=repo, publisher_for=lambda o: publisher, now=now, claim_seconds=CLAIM_SECONDS
        )["sent"]
        == 1
    )
    assert publisher.sent == ["cancelled", "paid"]


def test_publish__an_unavailable_channel_keeps_milestones_pending_then_fails_them_after_many_attempts(repo):
    order_id = woo_order(repo)
    happen(repo, order_id, "payment_captured", route="stripe", amount="10.00")
    publisher = Recorder(fail={"paid": PublishUnavailable("503")})
    for attempt in range(1, MAX_ATTEMPTS):
        with pytest.raises(PublishUnavailable):
            publish_pending(
                order_id, orders=repo, publisher_for=lambda o: publisher, now=now, claim_seconds=CLAIM_SECONDS
            )
        [pub] = repo.get(order_id).order.publications
        assert pub.status == "pending" and pub.attempts == attempt
    assert (
        publish_pending(
            order_id, orders=repo, publisher_for=lambda o: publisher, now=now, claim_seconds=CLAIM_SECONDS
        )["failed"]
        == 1
    )
    assert repo.get(order_id).order.publications[0].status == "failed"
    assert repo.get(order_id).order.status == OrderStatus.RECEIVED  # the lifecycle is untouched


class Overlapping:
    """A channel that, while it is being told, lets a second publisher run on the same order (an overlapping
    schedule): that one must find the milestone claimed and send nothing."""

    def __init__(self, repo) -> None:
        self.repo = repo
        self.sent: list[str] = []
        self.nested: dict[str, int] | None = None

    def publish(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        if self.nested is None:
            self.nested = publish_pending(
                order.order_id,
                orders=self.repo,
                publisher_for=lambda o: self,
                now=now,
                claim_seconds=CLAIM_SECONDS,
            )
        self.sent.append(milestone.publication_id)
        return {"id": "ch-1"}


def test_publish__a_second_publisher_finds_the_milestone_claimed_and_sends_nothing(repo):
    order_id = woo_order(repo)
    happen(repo, order_id, "payment_captured", route="stripe", amount="10.00")
    happen(repo, order_id, "cancelled", source="operator", reason="changed mind")
    channel = Overlapping(repo)
    counts = publish_pending(
        order_id, orders=repo, publisher_for=lambda o: channel, now=now, claim_seconds=CLAIM_SECONDS
    )
    # The nested run met the first milestone claimed and left the rest to the holder, in order.
    assert channel.nested == {"sent": 0, "failed": 0, "skipped": 0, "busy": 1}
    assert counts == {"sent": 2, "failed": 0, "skipped": 0, "busy": 0}
    assert channel.sent == ["paid", "cancelled"]
    publications = repo.get(order_id).order.publications
    assert all(p.status == "sent" and p.claimed_until is None for p in publications)


def test_publish__a_crashed_publishers_claim_lapses_and_the_milestone_is_sent_then(repo):
    order_id = woo_order(repo)
    happen(repo, order_id, "payment_captured", route="stripe", amount="10.00")

    class Crashing:
        def publish(self, order: Order, milestone: Milestone) -> dict[str, Any]:
            raise SystemExit("the function timed out")  # not a PublishError: the claim stays

    with pytest.raises(SystemExit):
        publish_pending(
            order_id, orders=repo, publisher_for=lambda o: Crashing(), now=now, claim_seconds=CLAIM_SECONDS
        )
    publisher = Recorder()
    assert (
        publish_pending(
            order_id, orders=repo, publisher_for=lambda o: publisher, now=now, claim_seconds=CLAIM_SECONDS
        )["busy"]
        == 1
    )
    later = NOW + timedelta(seconds=CLAIM_SECONDS + 1)
    counts = publish_pending(
        order_id,
        orders=repo,
        publisher_for=lambda o: publisher,
        now=lambda: later,
        claim_seconds=CLAIM_SECONDS,
    )
    assert counts["sent"] == 1 and publisher.sent == ["paid"]
