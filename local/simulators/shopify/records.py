"""The Shopify simulator's public values: API versions and limits, what it records, its errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# The newest stable Admin API version (chalicelib/integrations/shopify/admin.py says why). Requests name
# their version in the URL and get that version's behaviour where it matters to the hub (below).
API_VERSION = "2026-10"


# Since 2024-09-10 a failed delivery is retried 8 times over 4 hours with exponential backoff; Shopify
# does not publish the exact steps, so these double each time and add up to 4 hours.
RETRY_DELAYS_S: tuple[float, ...] = tuple(14_400 * 2**i / 255 for i in range(8))


CONNECT_TIMEOUT_S = 1.0


READ_TIMEOUT_S = 5.0


UNAUTHORIZED_ERROR = "[API] Invalid API key or access token (unrecognized login or wrong password)"


REST_THROTTLED = (
    "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
)


# OrderCaptureInput.finalCapture exists from this Admin API version on; older versions reject the field.
FINAL_CAPTURE_SINCE = "2024-07"


FULFILLMENT_CREATE_SINCE = "2024-10"  # fulfillmentCreate, the V2 mutation without its suffix


REFUND_METHOD_SINCE = "2025-07"  # orderCancel(refundMethod:); `refund` is deprecated from then on


IDEMPOTENT_REQUIRED_SINCE = "2026-04"  # refundCreate must carry @idempotent(key:)


LOCATION_ID = 71_000_000_001  # the shop's only location unless `locations` says otherwise


FULFILLMENT_EVENT_STATUSES = frozenset(
    {
        "ATTEMPTED_DELIVERY", "CARRIER_PICKED_UP", "CONFIRMED", "DELAYED", "DELIVERED", "FAILURE",
        "IN_TRANSIT", "LABEL_PRINTED", "LABEL_PURCHASED", "OUT_FOR_DELIVERY", "PICKED_UP", "READY_FOR_PICKUP",
    }
)  # fmt: skip


CANCEL_REASONS = frozenset({"CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"})


RISK_RECOMMENDATIONS = frozenset({"ACCEPT", "CANCEL", "INVESTIGATE", "NONE"})


RISK_LEVELS = frozenset({"HIGH", "MEDIUM", "LOW", "NONE", "PENDING"})


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of a webhook to the subscriber (the simulator's delivery log)."""

    topic: str
    webhook_id: str
    event_id: str
    attempt: int  # 1 = first try, 2..9 = retries
    status: int | None  # HTTP status, None when no answer (refused, timed out)
    error: str | None
    order_id: int | None


@dataclass(frozen=True)
class DroppedWebhook:
    """A webhook the simulator deliberately never sent (drop_rate): reconciliation has to find it."""

    topic: str
    event_id: str
    order_id: int | None


@dataclass(frozen=True)
class Capture:
    """One successful capture of an authorization (orderCapture, or mark_paid settling an order)."""

    transaction_id: str  # gid://shopify/OrderTransaction/...
    parent_transaction_id: str
    amount: Decimal
    currency: str
    final_capture: bool | None  # as sent in orderCapture's input; None when not sent or not orderCapture


@dataclass(frozen=True)
class FulfillmentRecord:
    """One fulfillment as the shop holds it: what it shipped, with which tracking, told to whom."""

    fulfillment_id: str  # gid://shopify/Fulfillment/...
    location_id: int
    lines: Mapping[int, int]  # line item id -> quantity shipped
    tracking_company: str | None
    tracking_numbers: tuple[str, ...]
    tracking_urls: tuple[str, ...]
    notify_customer: bool
    status: str  # SUCCESS | CANCELLED
    via: str  # "api" (fulfillmentCreate) or "admin" (fulfil_order)


@dataclass(frozen=True)
class FulfillmentEventRecord:
    """One fulfillmentEventCreate (a carrier status the app told Shopify)."""

    event_id: str  # gid://shopify/FulfillmentEvent/...
    fulfillment_id: str
    status: str  # FulfillmentEventStatus
    happened_at: str


@dataclass(frozen=True)
class Cancellation:
    """One cancellation of an order, by orderCancel ("api") or the admin ("admin")."""

    reason: str  # OrderCancelReason
    refund: bool
    restock: bool
    notify_customer: bool
    staff_note: str | None
    cancelled_at: str
    via: str


@dataclass(frozen=True)
class RefundRecord:
    """One refund of an order, by refundCreate ("api"), the admin or a refunding cancellation ("admin")."""

    refund_id: str  # gid://shopify/Refund/...
    amount: Decimal
    currency: str
    note: str | None
    parent_transaction_ids: tuple[str, ...]
    idempotency_key: str | None
    via: str


class MutationRejected(ValueError):
    """A mutation refused: the GraphQL API answers it as a userError (path `field`, optional `code`)."""

    def __init__(self, field: Sequence[str] | None, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.field = list(field) if field is not None else None
        self.message = message
        self.code = code

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"field": self.field, "message": self.message}
        return {**error, "code": self.code} if self.code else error


class CaptureRejected(ValueError):
    """orderCapture refused: the GraphQL API answers it as a userError on `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ApiReply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
