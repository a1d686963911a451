"""The simulator kit: what every local vendor simulator is built from (server, router, webhooks, faults)."""

from local.simulators.kit.faults import Fault, FaultQueue, LeakyBucket, TokenBucket
from local.simulators.kit.http import (
    Knobs,
    Reply,
    Request,
    Router,
    SimulatorServer,
    WebhookKnobs,
    WebhookSimulatorServer,
)
from local.simulators.kit.queues import Outbox, Timeline
from local.simulators.kit.signatures import base64_hmac_sha256
from local.simulators.kit.webhooks import (
    Delivery,
    Outgoing,
    Post,
    PostWithRequests,
    WebhookSender,
    event_sender,
    post_with_urllib,
)

__all__ = [
    "Delivery",
    "Fault",
    "FaultQueue",
    "Knobs",
    "LeakyBucket",
    "Outbox",
    "Outgoing",
    "Post",
    "PostWithRequests",
    "Reply",
    "Request",
    "Router",
    "SimulatorServer",
    "Timeline",
    "TokenBucket",
    "WebhookKnobs",
    "WebhookSender",
    "WebhookSimulatorServer",
    "base64_hmac_sha256",
    "event_sender",
    "post_with_urllib",
]
