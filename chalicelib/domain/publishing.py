"""Publishing back to the channels: the port every channel's publisher implements, its errors, and the use
cases that tell the channels what waits in the orders' outboxes (`outbox`).

A milestone is handed to the channel's `ChannelPublisher` until the channel has it; the publishers live in
`chalicelib/integrations/<channel>/publisher.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from chalicelib.domain.errors import NotFound
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, Publication
from chalicelib.domain.outbox import MILESTONES, Milestone, due, has_pending, milestone_of, sync_outbox
from chalicelib.domain.ports import OrderRepository
from chalicelib.domain.upstream import UpstreamError, UpstreamRejected, UpstreamThrottled, UpstreamUnavailable


class PublishError(UpstreamError):
    """The channel did not take the milestone."""


class PublishRejected(PublishError, UpstreamRejected):
    """The channel refused it (4xx, userErrors): retrying the same request cannot help; an operator looks."""


class PublishThrottled(PublishError, UpstreamThrottled):
    """The channel asked us to slow down (429, THROTTLED): try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after: float = retry_after


class PublishUnavailable(PublishError, UpstreamUnavailable):
    """The channel failed or could not be reached (5xx, transport): try again later."""


class ChannelPublisher(Protocol):
    """Tells one channel about one milestone of one of its orders. Must be idempotent: the same
    `publication_id` published twice leaves the channel as after once (check before writing where the
    channel has no idempotency key). Returns what the channel answered worth keeping (ids)."""

    def publish(self, order: Order, milestone: Milestone) -> dict[str, Any]: ...


# A milestone that keeps failing transiently is retried this often before it is marked failed.
MAX_ATTEMPTS = 8


# --- publishing ------------------------------------------------------------------------------------------


PublisherFor = Callable[[Order], ChannelPublisher | None]


# Long on purpose: the claim → publish → mark sequence and its error paths read as one protocol.
def publish_pending(
    order_id: str,
    *,
    orders: OrderRepository,
    publisher_for: PublisherFor,
    now: Callable[[], datetime],
    claim_seconds: float,
) -> dict[str, int]:
    """Tell the channel every pending milestone of the order, oldest first.

    Each milestone is claimed in the order (a conditional write) before the channel hears of it, so two
    publishers running at once (an overlapping schedule, an operator's run) never tell it twice: the one that
    finds it claimed counts it `busy` and leaves the order to the claim's holder.

    Sent → `sent` with the channel's answer; refused (4xx, userErrors) → `failed` with the reason, for an
    operator, and the next one goes on; throttled or unavailable → the attempt is recorded and the error
    raised (the queue retries later), keeping the milestones in order. Never touches the lifecycle.
    A claim lapses after `claim_seconds`: well beyond the function's timeout (the caller knows it), so only
    the claim of a publisher that died (timed out, crashed) ever lapses."""

    stored = orders.get(order_id)
    counts = {"sent": 0, "failed": 0, "skipped": 0, "busy": 0}
    if stored is None:
        return counts
    order = stored.order
    pending = [p for p in order.publications if p.status == "pending"]
    if not pending:
        return counts
    publisher: ChannelPublisher | None = publisher_for(order)
    outbox = _OrderOutbox(orders, order_id, now)
    for waiting in pending:
        if publisher is None:
            outbox.mark(waiting.publication_id, status="skipped", error="no publisher")
            counts["skipped"] += 1
            continue
        claimed = outbox.claim(waiting.publication_id, claim_seconds)
        if claimed is None:
            # Another publisher holds it (or it was settled meanwhile): the later ones wait for it, in order.
            counts["busy"] += 1
            break
        order, publication = claimed
        try:
            answer = publisher.publish(order, milestone_of(publication))
        # Publishers raise Publish* errors; any other upstream refusal or outage counts alike.
        except UpstreamRejected as exc:
            outbox.mark(publication.publication_id, status="failed", error=str(exc))
            counts["failed"] += 1
            continue
        except UpstreamUnavailable as exc:
            attempts = publication.attempts + 1
            final = attempts >= MAX_ATTEMPTS
            status = "failed" if final else "pending"
            outbox.mark(publication.publication_id, status=status, error=f"{type(exc).__name__}: {exc}")
            if final:
                counts["failed"] += 1
                continue
            raise
        outbox.mark(publication.publication_id, status="sent", reference=answer)
        counts["sent"] += 1
    return counts


@dataclass(frozen=True)
class _OrderOutbox:
    """One order's milestones as a publisher claims and settles them, each change a conditional write."""

    orders: OrderRepository
    order_id: str
    now: Callable[[], datetime]

    def claim(self, publication_id: str, claim_seconds: float) -> tuple[Order, Publication] | None:
        """Claim a pending milestone for this publisher: the order and the milestone as claimed, or None
        when another publisher holds an unexpired claim or it is no longer pending. Two claimers race on
        the order's version: the loser reloads and sees the winner's claim."""

        def change(order: Order) -> tuple[Order, Publication] | None:
            at = self.now()
            for index, publication in enumerate(order.publications):
                if publication.publication_id != publication_id:
                    continue
                if publication.status != "pending" or (
                    publication.claimed_until is not None and publication.claimed_until > at
                ):
                    return None
                until = at + timedelta(seconds=claim_seconds)
                claimed = publication.model_copy(update={"claimed_until": until})
                order.publications = [*order.publications[:index], claimed, *order.publications[index + 1 :]]
                return order, claimed
            return None

        result: tuple[Order, Publication] | None = mutate(
            self.orders, self.order_id, change, unchanged=lambda r: r is None
        )
        return result

    def mark(
        self,
        publication_id: str,
        *,
        status: str,
        error: str | None = None,
        reference: dict[str, Any] | None = None,
    ) -> None:
        now = self.now

        def change(order: Order) -> None:
            updated = []
            for publication in order.publications:
                if publication.publication_id == publication_id:
                    changes: dict[str, Any] = {
                        "status": status, "attempts": publication.attempts + 1, "claimed_until": None,
                    }  # fmt: skip
                    if error is not None:
                        changes["last_error"] = error[:500]
                    if status == "sent":
                        changes.update(sent_at=now(), reference=_plain(reference or {}), last_error=None)
                    updated.append(publication.model_copy(update=changes))
                else:
                    updated.append(publication)
            order.publications = updated
            if status in ("sent", "failed"):
                detail = (error or "")[:200] or None
                order.record(f"published_{status}", now(), publication_id=publication_id, error=detail)

        mutate(self.orders, self.order_id, change)


def _plain(value: Any) -> Any:
    """A channel's answer as JSON-safe data (ids, flags), small."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in list(value.items())[:20]}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in list(value)[:20]]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def retry_publication(order_id: str, publication_id: str, *, orders: OrderRepository) -> dict[str, Any]:
    """An operator puts a failed milestone back in the outbox."""

    def change(order: Order) -> dict[str, Any]:
        for p in order.publications:
            if p.publication_id == publication_id:
                break
        else:
            raise NotFound(f"order {order_id} has no publication {publication_id}")
        order.publications = [
            p.model_copy(update={"status": "pending", "attempts": 0})
            if p.publication_id == publication_id and p.status == "failed"
            else p
            for p in order.publications
        ]
        return {"order_id": order_id, "publication_id": publication_id, "status": "pending"}

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result


# Leave the rest of the invocation's time to the last publication in flight.
PUBLISH_BUDGET_S = 20.0
# Orders per store per run (one run a minute): well inside Shopify's, WooCommerce hosts' and SP-API's limits.
PUBLISH_PER_STORE_PER_RUN = 30


@dataclass(frozen=True)
class Deferred:
    """An order whose milestones wait for the next run: its channel failed or throttled us."""

    order_id: str
    channel: str
    store: str
    error: UpstreamError


@dataclass
class OutboxRun:
    totals: dict[str, int] = field(
        default_factory=lambda: {"orders": 0, "sent": 0, "failed": 0, "skipped": 0, "busy": 0, "deferred": 0}
    )
    deferred: list[Deferred] = field(default_factory=list)


def publish_outbox(
    *,
    orders: OrderRepository,
    publisher_for: PublisherFor,
    now: Callable[[], datetime],
    claim_seconds: float,
    budget_seconds: float = PUBLISH_BUDGET_S,
    per_store: int = PUBLISH_PER_STORE_PER_RUN,
    clock: Callable[[], float] = time.monotonic,
) -> OutboxRun:
    """Orders with pending milestones, oldest first (a sparse index), one store at a time within a run;
    a throttled or unavailable channel keeps its milestones pending for the next run."""
    started = clock()
    run = OutboxRun()
    sent_to: dict[str, int] = {}
    throttled: set[str] = set()
    for order_id in orders.pending_publications(limit=100):
        if clock() - started > budget_seconds:
            break
        stored = orders.get(order_id)
        if stored is None:
            continue
        store = f"{stored.order.channel}:{stored.order.store}"
        # The per-store governor: a store that throttled us rests until the next run, and no store gets
        # more than its share of a run, so one busy store never starves the others or trips its limits.
        if store in throttled or sent_to.get(store, 0) >= per_store:
            run.totals["deferred"] += 1
            continue
        sent_to[store] = sent_to.get(store, 0) + 1
        run.totals["orders"] += 1
        try:
            done = publish_pending(
                order_id, orders=orders, publisher_for=publisher_for, now=now, claim_seconds=claim_seconds
            )
        except UpstreamUnavailable as exc:
            run.totals["deferred"] += 1
            if isinstance(exc, UpstreamThrottled):
                throttled.add(store)
            run.deferred.append(Deferred(order_id, stored.order.channel, stored.order.store, exc))
            continue
        for name in ("sent", "failed", "skipped", "busy"):
            run.totals[name] += done[name]
    return run


__all__ = [
    "MAX_ATTEMPTS",
    "MILESTONES",
    "ChannelPublisher",
    "Deferred",
    "Milestone",
    "OutboxRun",
    "PublishError",
    "PublishRejected",
    "PublishThrottled",
    "PublishUnavailable",
    "due",
    "has_pending",
    "milestone_of",
    "publish_outbox",
    "publish_pending",
    "retry_publication",
    "sync_outbox",
]
