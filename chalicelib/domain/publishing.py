"""Publishing back to the channels: the milestone shape every channel adapter receives, and its errors.

A milestone is what the channel must learn about an order (paid, shipped with tracking, delivered,
cancelled, refunded). The hub keeps each one in the order's outbox and hands it to the channel's
`ChannelPublisher` until the channel has it; adapters live in `chalicelib/adapters/publish_*.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.order import Order
from chalicelib.domain.upstream import UpstreamError, UpstreamRejected, UpstreamThrottled, UpstreamUnavailable
from chalicelib.resources import DEFAULT_FUNCTION_TIMEOUT_SECONDS

MILESTONES = ("paid", "shipped", "delivered", "cancelled", "refunded")


@dataclass(frozen=True)
class Milestone:
    """One thing to tell the channel. Line ids are the canonical order's `line_id`s, which are the
    channel's own line item ids (Shopify line item id, WooCommerce line item id, Amazon OrderItemId)."""

    publication_id: str  # stable: the same milestone always has the same id (idempotency at the channel)
    kind: str  # one of MILESTONES
    at: datetime
    shipment_id: str | None = None
    # shipped: the lines this shipment carries [{"line_id", "quantity"}]; complete says whether the
    # order is now fully shipped (WooCommerce: completed) or only partly.
    lines: list[dict[str, Any]] = field(default_factory=list)
    parcels: list[dict[str, Any]] = field(default_factory=list)  # [{"carrier", "tracking_number"}]
    complete: bool = False
    amount: str | None = None  # refunded (decimal string in the order's currency)
    reason: str | None = None  # cancelled / refunded


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


# --- the outbox ------------------------------------------------------------------------------------------

# Channels the hub publishes back to; `manual` orders have no channel to tell.
PUBLISHED_CHANNELS = frozenset({"shopify", "woocommerce", "amazon"})
# A milestone that keeps failing transiently is retried this often before it is marked failed.
MAX_ATTEMPTS = 8
# How long a publisher holds a milestone it is telling the channel: well beyond the function's timeout, so
# only the claim of a publisher that died (timed out, crashed) ever lapses.
CLAIM_SECONDS = 6 * DEFAULT_FUNCTION_TIMEOUT_SECONDS


def due(order: Order) -> list[Milestone]:
    """Every milestone the order's state implies for its channel, each with a stable id.

    Derived from the order itself (its history and shipments), so a milestone is in the outbox in the
    same write as the change that caused it, and deriving again never adds it twice."""
    if order.channel not in PUBLISHED_CHANNELS:
        return []
    found: list[Milestone] = []
    shipped_count: dict[str, int] = {}
    at_channel = {h.event for h in order.history if h.event.endswith("_at_channel")}
    for entry in order.history:
        detail = entry.detail
        if entry.event == "payment_captured" and detail.get("route") == "stripe":
            # The hub captured the money itself: the channel still shows it unpaid.
            found.append(Milestone("paid", "paid", entry.at, amount=detail.get("amount")))
        elif entry.event == "shipped":
            sid = str(detail.get("shipment_id"))
            n = shipped_count[sid] = shipped_count.get(sid, 0) + 1
            found.append(
                Milestone(
                    f"shipped:{sid}:{n}",
                    "shipped",
                    entry.at,
                    shipment_id=sid,
                    lines=[
                        {"line_id": ln["line_id"], "quantity": ln["quantity"]}
                        for ln in detail.get("lines", [])
                    ],
                    parcels=list(detail.get("parcels", [])),
                    complete=bool(detail.get("order_complete", detail.get("complete"))),
                )
            )
        elif entry.event == "cancelled" and "cancelled_at_channel" not in at_channel:
            found.append(
                Milestone("cancelled", "cancelled", entry.at, reason=str(detail.get("reason") or ""))
            )
        elif entry.event == "compensated":
            for action in detail.get("actions", []):
                if action.get("compensator") != "payment":
                    continue
                if action.get("action") == "refunded":
                    refund = str(action.get("refund") or "refund")
                    found.append(
                        Milestone(f"refunded:{refund}", "refunded", entry.at, amount=action.get("amount"))
                    )
                elif action.get("action") == "left_to_channel" and order.channel == "woocommerce":
                    # WooCommerce does not refund on cancellation: its gateway is asked to (Shopify's
                    # orderCancel refunds itself; Amazon refunds cancelled orders on its own).
                    found.append(
                        Milestone("refunded:channel", "refunded", entry.at, amount=action.get("amount"))
                    )
    for shipment in order.shipments:
        if shipment.status == "delivered" and shipment.delivered_at is not None:
            found.append(
                Milestone(
                    f"delivered:{shipment.shipment_id}",
                    "delivered",
                    shipment.delivered_at,
                    shipment_id=shipment.shipment_id,
                    parcels=[
                        {"carrier": p.carrier, "tracking_number": p.tracking_number} for p in shipment.parcels
                    ],
                )
            )
    return found


def sync_outbox(order: Order, now: datetime) -> list[str]:
    """Add what is due and not yet in the outbox, as pending; answers the new publication ids."""
    from chalicelib.domain.order import Publication

    known = {p.publication_id for p in order.publications}
    added = []
    for milestone in due(order):
        if milestone.publication_id in known:
            continue
        detail = {
            "shipment_id": milestone.shipment_id,
            "lines": milestone.lines,
            "parcels": milestone.parcels,
            "complete": milestone.complete,
            "amount": milestone.amount,
            "reason": milestone.reason,
            "at": milestone.at.isoformat(),
        }
        order.publications = [
            *order.publications,
            Publication(
                publication_id=milestone.publication_id,
                kind=milestone.kind,
                created_at=now,
                detail={k: v for k, v in detail.items() if v not in (None, [], False)},
            ),
        ]
        known.add(milestone.publication_id)
        added.append(milestone.publication_id)
    return added


def milestone_of(publication: Any) -> Milestone:
    d = publication.detail
    return Milestone(
        publication_id=publication.publication_id,
        kind=publication.kind,
        at=datetime.fromisoformat(d["at"]) if d.get("at") else publication.created_at,
        shipment_id=d.get("shipment_id"),
        lines=list(d.get("lines", [])),
        parcels=list(d.get("parcels", [])),
        complete=bool(d.get("complete", False)),
        amount=d.get("amount"),
        reason=d.get("reason"),
    )


def has_pending(order: Order) -> bool:
    return any(p.status == "pending" for p in order.publications)


# --- publishing ------------------------------------------------------------------------------------------


# Over 60 lines: one claim-publish-settle loop; its outcomes (sent, failed, busy, retried) read best together.
def publish_pending(
    order_id: str,
    *,
    orders: Any,
    publisher_for: Any,
    now: Any,
) -> dict[str, int]:
    """Tell the channel every pending milestone of the order, oldest first.

    Each milestone is claimed in the order (a conditional write) before the channel hears of it, so two
    publishers running at once (an overlapping schedule, an operator's run) never tell it twice: the one that
    finds it claimed counts it `busy` and leaves the order to the claim's holder.

    Sent → `sent` with the channel's answer; refused (4xx, userErrors) → `failed` with the reason, for an
    operator, and the next one goes on; throttled or unavailable → the attempt is recorded and the error
    raised (the queue retries later), keeping the milestones in order. Never touches the lifecycle."""
    from chalicelib.domain.lifecycle import mutate

    stored = orders.get(order_id)
    counts = {"sent": 0, "failed": 0, "skipped": 0, "busy": 0}
    if stored is None:
        return counts
    order = stored.order
    pending = [p for p in order.publications if p.status == "pending"]
    if not pending:
        return counts
    publisher: ChannelPublisher | None = publisher_for(order)
    for waiting in pending:
        if publisher is None:
            _mark(
                orders,
                mutate,
                order_id,
                waiting.publication_id,
                now,
                status="skipped",
                error="no publisher",
            )
            counts["skipped"] += 1
            continue
        claimed = _claim(orders, mutate, order_id, waiting.publication_id, now)
        if claimed is None:
            # Another publisher holds it (or it was settled meanwhile): the later ones wait for it, in order.
            counts["busy"] += 1
            break
        order, publication = claimed
        try:
            answer = publisher.publish(order, milestone_of(publication))
        # Publishers raise Publish* errors; any other upstream refusal or outage counts alike.
        except UpstreamRejected as exc:
            _mark(orders, mutate, order_id, publication.publication_id, now, status="failed", error=str(exc))
            counts["failed"] += 1
            continue
        except UpstreamUnavailable as exc:
            attempts = publication.attempts + 1
            final = attempts >= MAX_ATTEMPTS
            _mark(
                orders,
                mutate,
                order_id,
                publication.publication_id,
                now,
                status="failed" if final else "pending",
                error=f"{type(exc).__name__}: {exc}",
            )
            if final:
                counts["failed"] += 1
                continue
            raise
        _mark(orders, mutate, order_id, publication.publication_id, now, status="sent", reference=answer)
        counts["sent"] += 1
    return counts


def _claim(
    orders: Any, mutate: Any, order_id: str, publication_id: str, now: Any
) -> tuple[Order, Any] | None:
    """Claim a pending milestone for this publisher: the order and the milestone as claimed, or None when
    another publisher holds an unexpired claim or it is no longer pending. Two claimers race on the order's
    version: the loser reloads and sees the winner's claim."""
    from datetime import timedelta

    def change(order: Order) -> tuple[Order, Any] | None:
        at = now()
        for index, publication in enumerate(order.publications):
            if publication.publication_id != publication_id:
                continue
            if publication.status != "pending" or (
                publication.claimed_until is not None and publication.claimed_until > at
            ):
                return None
            claimed = publication.model_copy(update={"claimed_until": at + timedelta(seconds=CLAIM_SECONDS)})
            order.publications = [*order.publications[:index], claimed, *order.publications[index + 1 :]]
            return order, claimed
        return None

    result: tuple[Order, Any] | None = mutate(orders, order_id, change, unchanged=lambda r: r is None)
    return result


def _mark(
    orders: Any,
    mutate: Any,
    order_id: str,
    publication_id: str,
    now: Any,
    *,
    status: str,
    error: str | None = None,
    reference: dict[str, Any] | None = None,
) -> None:
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
            order.record(
                f"published_{status}", now(), publication_id=publication_id, error=(error or "")[:200] or None
            )

    mutate(orders, order_id, change)


def _plain(value: Any) -> Any:
    """A channel's answer as JSON-safe data (ids, flags), small."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in list(value.items())[:20]}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in list(value)[:20]]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def retry_publication(order_id: str, publication_id: str, *, orders: Any) -> dict[str, Any]:
    """An operator puts a failed milestone back in the outbox."""
    from chalicelib.domain.errors import NotFound
    from chalicelib.domain.lifecycle import mutate

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
