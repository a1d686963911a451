"""Webhooks: each route runs its sender's WebhookSpec through the intake pipeline and answers."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.composition import services
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


# Each view imports its sender's spec when called: the other Lambda functions never load the parsers.


@bp.route("/webhooks/shopify", methods=["POST"], content_types=JSON)
def shopify_webhook() -> Response:
    from chalicelib.integrations.shopify.webhook import SHOPIFY_WEBHOOK as SPEC

    return _receive(SPEC)


@bp.route("/webhooks/woocommerce", methods=["POST"], content_types=JSON_AND_FORM)
def woocommerce_webhook() -> Response:
    from chalicelib.integrations.woocommerce.webhook import WOOCOMMERCE_WEBHOOK as SPEC

    return _receive(SPEC)


@bp.route("/webhooks/stripe", methods=["POST"], content_types=JSON)
def stripe_webhook() -> Response:
    from chalicelib.integrations.stripe.webhook import STRIPE_WEBHOOK as SPEC

    return _receive(SPEC)


@bp.route("/webhooks/3pl/{provider}", methods=["POST"], content_types=JSON)
def threepl_webhook(provider: str) -> Response:
    from chalicelib.integrations.threepl.webhook import THREEPL_WEBHOOK as SPEC

    return _receive(SPEC)


@bp.route("/webhooks/carriers/{carrier}", methods=["POST"], content_types=JSON)
def carrier_webhook(carrier: str) -> Response:
    from chalicelib.integrations.easypost.webhook import EASYPOST_WEBHOOK as SPEC

    if carrier != SPEC.channel:
        return Response(
            body={"message": f"no carrier integration {carrier!r} (easypost is)"}, status_code=404
        )
    return _receive(SPEC)
