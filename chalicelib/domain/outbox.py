"""The outbox: the milestones an order's state implies for its channel, kept in the order until sent.

A milestone is what the channel must learn about an order (paid, shipped with tracking, delivered,
cancelled, refunded). It enters the order's outbox in the same write as the change that caused it (see
`mutation.mutate`); `publishing` hands it to the channel's publisher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain.order import Order

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
    # A return's refund: the hub's return id, the channel's own return id (Shopify Return gid, Amazon RMA)
    # when the return came from the channel, and who moves the money: "hub" (refunded through Stripe; the
    # channel only records it) or "channel" (the channel holds the money and must refund it).
    return_id: str | None = None
    external_return_id: str | None = None
    via: str | None = None
    # restock per returned line: [{"line_id", "quantity", "restock": bool}] (inspection outcomes)
    restock: list[dict[str, Any]] = field(default_factory=list)


# Channels the hub publishes back to; `manual` orders have no channel to tell.
PUBLISHED_CHANNELS = frozenset({"shopify", "woocommerce", "amazon"})


# Long on purpose: one branch per milestone kind, read top to bottom against the history it derives from.
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
            found.extend(_compensation_milestones(order, entry.at, detail))
        elif entry.event in ("return_resolved", "refund_issued"):
            found.append(_refund_milestone(entry.event, entry.at, detail))
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


def _compensation_milestones(order: Order, at: datetime, detail: dict[str, Any]) -> list[Milestone]:
    """A cancelled order's refund: the hub's (Stripe) or, for WooCommerce, the channel's to make."""
    found: list[Milestone] = []
    for action in detail.get("actions", []):
        if action.get("compensator") != "payment":
            continue
        if action.get("action") == "refunded":
            refund = str(action.get("refund") or "refund")
            found.append(Milestone(f"refunded:{refund}", "refunded", at, amount=action.get("amount")))
        elif action.get("action") == "left_to_channel" and order.channel == "woocommerce":
            # WooCommerce does not refund on cancellation: its gateway is asked to (Shopify's
            # orderCancel refunds itself; Amazon refunds cancelled orders on its own).
            found.append(Milestone("refunded:channel", "refunded", at, amount=action.get("amount")))
    return found


def _refund_milestone(event: str, at: datetime, detail: dict[str, Any]) -> Milestone:
    """A return's resolution or a refund without a return: the channel records (via hub) or makes (via
    channel) the refund, restocking what the inspection sent back to stock."""
    ref = detail.get("return_id") if event == "return_resolved" else detail.get("refund_ref")
    return Milestone(
        f"refunded:{ref}",
        "refunded",
        at,
        lines=[{"line_id": ln["line_id"], "quantity": ln["quantity"]} for ln in detail.get("lines", [])],
        amount=detail.get("amount"),
        reason=detail.get("reason"),
        return_id=detail.get("return_id"),
        external_return_id=detail.get("external_return_id"),
        via=detail.get("via"),
        restock=list(detail.get("restock", [])),
    )


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
            "return_id": milestone.return_id,
            "external_return_id": milestone.external_return_id,
            "via": milestone.via,
            "restock": milestone.restock,
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
        return_id=d.get("return_id"),
        external_return_id=d.get("external_return_id"),
        via=d.get("via"),
        restock=list(d.get("restock", [])),
    )


def has_pending(order: Order) -> bool:
    return any(p.status == "pending" for p in order.publications)
