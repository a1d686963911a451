"""An in-memory Shopify shop: realistic orders, webhooks signed and retried as Shopify does, its Admin API.

One package, split along the shop's seams: `store`/`payments`/`shop` (state and lifecycle), `orders`
(the order generator), `rest` and `graphql`/`mutations`/`nodes` (the Admin API), `simulator` (the
server and webhook emission, on the simulator kit).
"""

from local.simulators.shopify.records import (
    API_VERSION,
    CANCEL_REASONS,
    CONNECT_TIMEOUT_S,
    FINAL_CAPTURE_SINCE,
    FULFILLMENT_CREATE_SINCE,
    FULFILLMENT_EVENT_STATUSES,
    IDEMPOTENT_REQUIRED_SINCE,
    LOCATION_ID,
    READ_TIMEOUT_S,
    REFUND_METHOD_SINCE,
    REST_THROTTLED,
    RETRY_DELAYS_S,
    RISK_LEVELS,
    RISK_RECOMMENDATIONS,
    UNAUTHORIZED_ERROR,
    ApiReply,
    Cancellation,
    Capture,
    CaptureRejected,
    DeliveryAttempt,
    DroppedWebhook,
    FulfillmentEventRecord,
    FulfillmentRecord,
    MutationRejected,
    RefundRecord,
)
from local.simulators.shopify.simulator import ShopifySimulator

__all__ = [
    "API_VERSION",
    "CANCEL_REASONS",
    "CONNECT_TIMEOUT_S",
    "FINAL_CAPTURE_SINCE",
    "FULFILLMENT_CREATE_SINCE",
    "FULFILLMENT_EVENT_STATUSES",
    "IDEMPOTENT_REQUIRED_SINCE",
    "LOCATION_ID",
    "READ_TIMEOUT_S",
    "REFUND_METHOD_SINCE",
    "REST_THROTTLED",
    "RETRY_DELAYS_S",
    "RISK_LEVELS",
    "RISK_RECOMMENDATIONS",
    "UNAUTHORIZED_ERROR",
    "ApiReply",
    "Cancellation",
    "Capture",
    "CaptureRejected",
    "DeliveryAttempt",
    "DroppedWebhook",
    "FulfillmentEventRecord",
    "FulfillmentRecord",
    "MutationRejected",
    "RefundRecord",
    "ShopifySimulator",
]
