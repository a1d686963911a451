"""Webhooks: each route runs its sender's WebhookSpec through the intake pipeline and answers."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.composition import services, webhook_spec
from chalicelib.domain.webhooks import WebhookRequest, WebhookSpec
from chalicelib.entrypoints.intake import receive

bp = Blueprint(__name__)

JSON = ["application/json"]
JSON_AND_FORM = ["application/json", "application/x-www-form-urlencoded"]


def _receive(spec: WebhookSpec) -> Response:
    request = bp.current_request
    raw = request.raw_body
    body = raw.encode() if isinstance(raw, str) else bytes(raw or b"")
    answer = receive(spec, WebhookRequest.of(body, request.headers, request.uri_params), services())
    return Response(body=answer.body, status_code=answer.status)


# Each view asks for its sender's spec when called: the other Lambda functions never load the parsers.


@bp.route("/webhooks/shopify", methods=["POST"], content_types=JSON)
def shopify_webhook() -> Response:
    return _receive(webhook_spec("shopify"))


@bp.route("/webhooks/woocommerce", methods=["POST"], content_types=JSON_AND_FORM)
def woocommerce_webhook() -> Response:
    return _receive(webhook_spec("woocommerce"))


@bp.route("/webhooks/stripe", methods=["POST"], content_types=JSON)
def stripe_webhook() -> Response:
    return _receive(webhook_spec("stripe"))


@bp.route("/webhooks/3pl/{provider}", methods=["POST"], content_types=JSON)
def threepl_webhook(provider: str) -> Response:
    return _receive(webhook_spec("3pl"))


@bp.route("/webhooks/carriers/{carrier}", methods=["POST"], content_types=JSON)
def carrier_webhook(carrier: str) -> Response:
    spec = webhook_spec("easypost")
    if carrier != spec.channel:
        return Response(
            body={"message": f"no carrier integration {carrier!r} (easypost is)"}, status_code=404
        )
    return _receive(spec)
