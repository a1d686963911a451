"""Property tests (hypothesis, bounded) of the webhook edge (issue #17), through chalice.test.Client.

Random bytes under random headers are refused with a 4xx (401 unsigned or forged, 400 malformed, 404 unknown
store, 413 too large, 415 not a content type it takes), never a 5xx, and nothing reaches the ingest queue or
the raw archive unless it was signed."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.entrypoints.intake import MAX_BODY_BYTES
from tests.unit.test_bad_input_json import WEBHOOKS, connect_all, signed

BOUNDED = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Each sender's own header names (any of them may come, forged or garbled), and some that belong to none.
HEADER_NAMES = [
    "X-Shopify-Topic", "X-Shopify-Hmac-Sha256", "X-Shopify-Shop-Domain", "X-Shopify-Event-Id",
    "X-WC-Webhook-Source", "X-WC-Webhook-Topic", "X-WC-Webhook-Signature", "X-WC-Webhook-Delivery-ID",
    "Stripe-Signature", "X-ThreePL-Signature", "X-Hmac-Signature", "Content-Type", "X-Forwarded-For",
]  # fmt: skip
_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
_HEADERS = st.dictionaries(st.sampled_from(HEADER_NAMES), _VALUE, max_size=6)
_BODY = st.one_of(
    st.binary(max_size=2048),
    st.recursive(
        st.none() | st.integers() | st.text(max_size=10),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=8), c),
        max_leaves=10,
    ).map(lambda v: json.dumps(v).encode()),
    st.just(b"{" + b" " * MAX_BODY_BYTES + b"}"),
)
# 415: a content type the route does not take (Chalice refuses it before the view).
REFUSED = {400, 401, 404, 413, 415}


def _paths(sender: str) -> str:
    return signed(sender, b"", 0)[0]


@pytest.mark.parametrize("sender", WEBHOOKS)
@BOUNDED
@given(body=_BODY, headers=_HEADERS)
def test_unsigned_or_forged_bytes_are_refused_with_a_4xx_and_nothing_is_queued(
    client, svc, sender, body, headers
):
    if not svc.connections.items:
        connect_all(client)
    answer = client.http.post(_paths(sender), headers=headers, body=body)

    assert answer.status_code in REFUSED, (answer.status_code, answer.body[:300])
    assert svc.ingest_queue.sent == [] and svc.raw_archive.items == {}


@pytest.mark.parametrize("sender", WEBHOOKS)
@BOUNDED
@given(body=_BODY)
def test_signed_random_bytes_are_accepted_or_refused_never_a_5xx(client, svc, sender, body):
    if not svc.connections.items:
        connect_all(client)
    queued = len(svc.ingest_queue.sent)
    path, headers = signed(sender, body, int(svc.now().timestamp()))

    answer = client.http.post(path, headers=headers, body=body)

    assert answer.status_code < 500, (answer.status_code, answer.body[:300])
    if answer.status_code >= 300:
        assert len(svc.ingest_queue.sent) == queued  # a refused delivery is never queued
