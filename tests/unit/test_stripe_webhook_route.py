"""POST /webhooks/stripe: Stripe-Signature verified with its tolerance, bad input refused, events queued."""

from __future__ import annotations

import hashlib
import hmac
import json

from tests.unit.api import AUTH

SECRET = "whsec_unit_secret"
STRIPE = {"channel": "stripe", "secret_key": "sk_test_unit", "webhook_secret": SECRET}


def signed(body: bytes, at: int, secret: str = SECRET) -> dict[str, str]:
    signature = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={at},v1={signature}"}


def event(event_type: str = "payment_intent.succeeded", **resource) -> bytes:
    data = {"id": "pi_123", "object": "payment_intent", "amount_received": 1000, **resource}
    body = {"id": "evt_1", "object": "event", "type": event_type, "created": 1, "data": {"object": data}}
    return json.dumps(body).encode()


def connect(client):
    answer = client.http.post("/api/connections", headers=AUTH, body=json.dumps(STRIPE))
    assert answer.status_code == 201, answer.body


def test_a_signed_event_is_queued_grouped_by_its_payment_intent(client, svc):
    connect(client)
    at = int(svc.now().timestamp())
    body = event()
    answer = client.http.post("/webhooks/stripe", headers=signed(body, at), body=body)
    assert answer.status_code == 200 and json.loads(answer.body)["message"] == "accepted"
    [sent] = svc.ingest_queue.sent
    message = sent["body"]
    assert message["channel"] == "stripe" and message["topic"] == "payment_intent.succeeded"
    assert message["delivery_id"] == "stripe:evt_1" and sent["group_id"] == "stripe:default:pi_123"


def test_refusals__no_account_bad_or_stale_signature_malformed_body(client, svc):
    body = event()
    at = int(svc.now().timestamp())
    assert client.http.post("/webhooks/stripe", headers=signed(body, at), body=body).status_code == 401
    connect(client)
    wrong = signed(body, at, secret="whsec_other")
    assert client.http.post("/webhooks/stripe", headers=wrong, body=body).status_code == 401
    stale = signed(body, at - 301)  # outside Stripe's default five-minute tolerance
    assert client.http.post("/webhooks/stripe", headers=stale, body=body).status_code == 401
    malformed = b'{"object": "event"}'
    answer = client.http.post("/webhooks/stripe", headers=signed(malformed, at), body=malformed)
    assert answer.status_code == 400
    assert svc.ingest_queue.sent == []


def test_event_types_the_hub_does_not_use_are_acknowledged_not_queued(client, svc):
    connect(client)
    body = event("customer.created")
    answer = client.http.post("/webhooks/stripe", headers=signed(body, int(svc.now().timestamp())), body=body)
    assert answer.status_code == 200 and json.loads(answer.body)["type"] == "customer.created"
    assert svc.ingest_queue.sent == []
