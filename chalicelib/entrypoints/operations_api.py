"""Operator actions on the plumbing: redrive a dead-letter queue, replay an archived delivery."""

from __future__ import annotations

import json
from typing import Any

from chalice import BadRequestError, Blueprint, NotFoundError, Response

from chalicelib import resources
from chalicelib.composition import services
from chalicelib.domain.delivery import Delivery
from chalicelib.entrypoints.errors import http_errors, json_body
from chalicelib.entrypoints.intake import enqueue
from chalicelib.observability import logger
from chalicelib.settings import Settings

bp = Blueprint(__name__)


def find_queue(name: str, settings: Settings) -> resources.QueueSpec:
    """By key, stage-free name, or the name the queue or its DLQ has in this deployment (its URL's end)."""
    for spec in resources.QUEUES:
        urls = (settings.queue_urls.get(spec.key), settings.dlq_urls.get(spec.key))
        deployed = {url.rsplit("/", 1)[-1] for url in urls if url}
        if name in {spec.key, spec.name, spec.dlq_name, spec.name.removesuffix(".fifo"), *deployed}:
            return spec
    raise NotFoundError(f"no queue {name!r}; known: {[q.key for q in resources.QUEUES]}")


@bp.route("/api/dlq/{queue}/redrive", methods=["POST"])
def redrive_dlq(queue: str) -> dict[str, Any]:
    return redrive_queue(queue)


def redrive_queue(queue: str) -> dict[str, Any]:
    """Move a queue's dead letters back to it (by queue key or name); NotFoundError for no such queue."""
    svc = services()
    spec = find_queue(queue, svc.settings)
    dlq_url = svc.settings.dlq_urls.get(spec.key)
    if dlq_url is None:
        raise NotFoundError(f"{spec.dlq_env_var} is not set")
    result = svc.plumbing().redrive(spec, dlq_url)
    logger.info("dlq redriven", extra={"queue": spec.name, "moved": result.moved})
    return {"queue": spec.name, "moved": result.moved, "remaining": result.remaining}


@bp.route("/api/deliveries/replay", methods=["POST"], content_types=["application/json"])
@http_errors
def replay_delivery() -> Response:
    """Run an archived delivery through ingestion again (fencing still applies: old news stays old).

    The id travels in the body (`{"delivery_id": ...}`): delivery ids hold `/` and `:`.
    """
    body = json_body(bp.current_request)
    delivery_id = body.get("delivery_id") if isinstance(body, dict) else None
    if not isinstance(delivery_id, str) or not delivery_id:
        raise BadRequestError('body must be {"delivery_id": "..."}')
    svc = services()
    archived = svc.raw_archive.get(delivery_id)
    if archived is None:
        raise NotFoundError(f"no archived delivery {delivery_id} (kept 30 days)")
    payload = json.loads(archived.raw)
    replay_id = f"{delivery_id}#replay-{svc.now().strftime('%Y%m%dT%H%M%S%f')}"
    external = payload.get("order_id") if archived.topic.startswith("refunds/") else payload.get("id")
    delivery = Delivery(
        delivery_id=replay_id,
        channel=archived.channel,
        store=archived.store,
        topic=archived.topic,
        received_at=svc.now(),
        payload=payload,
        external_id=str(external or payload.get("external_id") or "replay"),
    )
    enqueue(svc, delivery, archived.raw)
    return Response(body={"delivery_id": replay_id, "status": "accepted"}, status_code=202)
