"""Bad-input catalogue, per sender (issue #17): signatures, stores, bodies, content types and methods.

GIVEN each of the five webhook senders connected WHEN a delivery comes with its signature missing,
forged, in the other encoding (the right HMAC as hex where base64 is expected, or the reverse), or stale
(an old timestamp; for senders that sign none, the secret before a rotation), or from a store that is not
connected, THEN the answer is 401 and nothing is queued or archived. Correctly signed bodies that are
empty, not JSON, a JSON array or an object with a key twice are 400; a wrong content type is 415 and a
wrong method 405, before the sender's code runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from tests.unit.api import AUTH
from tests.unit.test_bad_input_json import STRIPE, STRIPE_SECRET, connect_all, signed
from tests.unit.test_webhook_pipeline import CONNECTIONS, SECRET, SHOPIFY_ORDER

SENDERS = ["shopify", "woocommerce", "stripe", "3pl", "easypost"]
SIGNATURE_HEADER = {
    "shopify": "X-Shopify-Hmac-Sha256",
    "woocommerce": "X-WC-Webhook-Signature",
    "stripe": "Stripe-Signature",
    "3pl": "X-ThreePL-Signature",
    "easypost": "X-Hmac-Signature",
}
BODY = json.dumps(SHOPIFY_ORDER).encode()  # a JSON object: only the signature is at fault below


def secret_of(sender: str) -> str:
    return STRIPE_SECRET if sender == "stripe" else SECRET


def nothing_queued(svc) -> None:
    assert svc.ingest_queue.sent == [] and svc.raw_archive.items == {}
    assert svc.workflow.started == []


def send(client, path: str, headers: dict[str, str], body: bytes = BODY):
    answer = client.http.post(path, headers=headers, body=body)
    return answer.status_code, json.loads(answer.body or b"{}")


def other_encoding(sender: str, at: int) -> str:
    """The right HMAC of BODY in the encoding the sender does not use."""
    if sender in ("shopify", "woocommerce"):  # base64 expected: hex given
        return hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    payload = BODY if sender == "easypost" else f"{at}.".encode() + BODY
    digest = base64.b64encode(hmac.new(secret_of(sender).encode(), payload, hashlib.sha256).digest()).decode()
    if sender == "easypost":
        return f"hmac-sha256-hex={digest}"
    return f"t={at},v1={digest}"


@pytest.mark.parametrize("sender", SENDERS)
def test_a_missing_signature_is_401_and_nothing_is_queued(client, svc, sender):
    connect_all(client)
    path, headers = signed(sender, BODY, int(svc.now().timestamp()))
    del headers[SIGNATURE_HEADER[sender]]
    assert send(client, path, headers)[0] == 401
    headers[SIGNATURE_HEADER[sender]] = ""
    assert send(client, path, headers)[0] == 401
    nothing_queued(svc)


@pytest.mark.parametrize("sender", SENDERS)
def test_a_forged_signature_is_401_and_nothing_is_queued(client, svc, sender):
    connect_all(client)
    at = int(svc.now().timestamp())
    path, headers = signed(sender, BODY, at)
    # Signed with another secret; and the right signature of other bytes.
    forged = {
        "shopify": base64.b64encode(hmac.new(b"guess", BODY, hashlib.sha256).digest()).decode(),
        "woocommerce": base64.b64encode(hmac.new(b"guess", BODY, hashlib.sha256).digest()).decode(),
        "stripe": f"t={at},v1={hmac.new(b'guess', f'{at}.'.encode() + BODY, hashlib.sha256).hexdigest()}",
        "3pl": f"t={at},v1={hmac.new(b'guess', f'{at}.'.encode() + BODY, hashlib.sha256).hexdigest()}",
        "easypost": f"hmac-sha256-hex={hmac.new(b'guess', BODY, hashlib.sha256).hexdigest()}",
    }[sender]
    assert send(client, path, {**headers, SIGNATURE_HEADER[sender]: forged})[0] == 401
    assert send(client, path, headers, BODY + b" ")[0] == 401  # one byte more than was signed
    nothing_queued(svc)


@pytest.mark.parametrize("sender", SENDERS)
def test_the_right_hmac_in_the_other_encoding_is_401(client, svc, sender):
    connect_all(client)
    at = int(svc.now().timestamp())
    path, headers = signed(sender, BODY, at)
    assert send(client, path, {**headers, SIGNATURE_HEADER[sender]: other_encoding(sender, at)})[0] == 401
    nothing_queued(svc)


@pytest.mark.parametrize("sender", ["stripe", "3pl"])
def test_a_stale_timestamp_is_401(client, svc, sender):
    """Stripe and the 3PL sign a time: one more than 5 minutes old is a replay."""
    connect_all(client)
    path, headers = signed(sender, BODY, int(svc.now().timestamp()) - 301)
    assert send(client, path, headers)[0] == 401
    nothing_queued(svc)


@pytest.mark.parametrize("sender", SENDERS)
def test_a_signature_with_the_secret_before_a_rotation_is_401(client, svc, sender):
    """Shopify, WooCommerce and EasyPost sign no time: a stale signature is one under a rotated secret."""
    connect_all(client)
    body = STRIPE if sender == "stripe" else CONNECTIONS[sender]
    rotated = json.dumps({**body, "webhook_secret": "whsec_rotated" if sender == "stripe" else "rotated"})
    assert client.http.post("/api/connections", headers=AUTH, body=rotated).status_code == 200
    path, headers = signed(sender, BODY, int(svc.now().timestamp()))  # under the old secret
    assert send(client, path, headers)[0] == 401
    nothing_queued(svc)


UNKNOWN_STORE = {
    "shopify": ("X-Shopify-Shop-Domain", "nobody.myshopify.com", "unknown shop"),
    "woocommerce": ("X-WC-Webhook-Source", "https://nobody.example/", "unknown store"),
}


@pytest.mark.parametrize("sender", SENDERS)
def test_an_unknown_store_is_401_before_any_hmac_work(client, svc, sender):
    at = int(svc.now().timestamp())
    path, headers = signed(sender, BODY, at)
    assert send(client, path, headers)[0] == 401  # nothing connected at all
    connect_all(client)
    if sender in UNKNOWN_STORE:
        header, store, message = UNKNOWN_STORE[sender]
        assert send(client, path, {**headers, header: store}) == (401, {"message": message})
    elif sender == "3pl":
        assert send(client, "/webhooks/3pl/nobody", headers) == (401, {"message": "unknown 3PL provider"})
    nothing_queued(svc)


BODIES = [
    ("empty", b"", 400),
    ("not JSON", b"{not json", 400),
    ("a JSON array", b"[1, 2]", 400),
    ("a JSON string", b'"order"', 400),
    ("a key twice", b'{"id": 1, "id": 2}', 400),
]


@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize("case", BODIES, ids=[b[0] for b in BODIES])
def test_a_signed_body_that_is_not_one_json_object_is_400(client, svc, sender, case):
    _, body, status = case
    connect_all(client)
    path, headers = signed(sender, body, int(svc.now().timestamp()))
    if not body and sender in ("shopify", "woocommerce"):
        status = 401  # their check holds no signature valid over no bytes: unsigned, whatever the header
    assert send(client, path, headers, body)[0] == status
    nothing_queued(svc)


def test_a_key_twice_is_refused_by_every_api_route_that_reads_json(client, svc):
    twice = b'{"external_id": "A-1", "external_id": "A-2"}'
    answer = client.http.post("/api/orders", headers=AUTH, body=twice)
    assert answer.status_code == 400 and "duplicate key 'external_id'" in answer.body.decode()
    nothing_queued(svc)


WRONG_TYPES = ["text/plain", "application/xml", "multipart/form-data; boundary=x"]


@pytest.mark.parametrize("content_type", WRONG_TYPES)
@pytest.mark.parametrize("sender", SENDERS)
def test_a_wrong_content_type_is_415_and_nothing_is_queued(client, svc, sender, content_type):
    connect_all(client)
    path, headers = signed(sender, BODY, int(svc.now().timestamp()))
    assert send(client, path, {**headers, "Content-Type": content_type})[0] == 415
    nothing_queued(svc)


def test_a_wrong_content_type_on_the_api_is_415(client, svc):
    headers = {**AUTH, "Content-Type": "text/plain"}
    assert client.http.post("/api/orders", headers=headers, body=BODY).status_code == 415
    nothing_queued(svc)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("sender", SENDERS)
def test_a_wrong_method_on_a_webhook_is_405(client, svc, sender, method):
    connect_all(client)
    path, headers = signed(sender, BODY, int(svc.now().timestamp()))
    answer = client.http.request(method, path, headers=headers, body=BODY)
    assert answer.status_code == 405
    nothing_queued(svc)


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/api/orders"), ("PUT", "/status/orders")])
def test_a_wrong_method_on_the_api_and_the_status_page_is_405(client, svc, method, path):
    assert client.http.request(method, path, headers=AUTH, body=b"").status_code == 405
