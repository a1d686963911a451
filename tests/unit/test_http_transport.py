"""The shared HTTP transport: backoff formulas, Retry-After, the retry policy's limits, JSON and redaction."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from chalicelib.domain.upstream import UpstreamError, UpstreamThrottled, UpstreamUnavailable
from chalicelib.integrations.http import (
    Backoff,
    HttpTransport,
    Retryable,
    RetryPolicy,
    equal_jitter,
    full_jitter,
    give_up_as,
    json_body,
    json_object,
    no_jitter,
    redact,
    retry_after,
    retryable_status,
)


class Unavailable(UpstreamUnavailable):
    pass


class Throttled(Unavailable, UpstreamThrottled):
    pass


class Broken(UpstreamError):
    pass


GIVE_UP = give_up_as(Unavailable, Throttled)


def response(status: int = 200, body: bytes = b"{}", **headers: str) -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer._content = status, body
    answer.headers.update(headers)
    return answer


def test_backoff__full_equal_and_no_jitter__with_a_cap():
    full = Backoff(1.0, jitter=full_jitter, random=lambda: 0.5)
    assert [full.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert [Backoff(1.0, jitter=equal_jitter, random=lambda: 0.0).delay(n) for n in (1, 2)] == [0.5, 1.0]
    assert Backoff(1.0, cap=3.0, jitter=no_jitter).delay(5) == 3.0


def test_retry_after__seconds_or_http_date_or_nothing():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after(response(**{"Retry-After": "7"})) == 7.0
    assert retry_after(response(**{"Retry-After": later}), now=now) == 90.0
    assert retry_after(response(**{"Retry-After": "soon"})) is None
    assert retry_after(response()) is None


def test_retryable_status__429_is_throttled_and_not_run__5xx_may_have_run__4xx_is_not_retryable():
    throttled = retryable_status(response(429, **{"Retry-After": "2"}), "HTTP 429")
    failing = retryable_status(response(503), "HTTP 503")
    assert throttled is not None and (throttled.throttled, throttled.maybe_executed, throttled.delay) == (
        True,
        False,
        2.0,
    )
    assert failing is not None and (failing.throttled, failing.maybe_executed) == (False, True)
    assert retryable_status(response(404), "HTTP 404") is None


def test_policy__waits_the_backoff_or_the_upstreams_ask__then_succeeds():
    sleeps: list[float] = []
    failures = iter([Retryable("HTTP 503", status=503), Retryable("HTTP 429", delay=4.0, throttled=True)])

    def attempt() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "done"

    policy = RetryPolicy(backoff=Backoff(0.5, jitter=no_jitter), sleep=sleeps.append)
    assert policy.call(attempt, give_up=GIVE_UP, operation="op") == "done"
    assert sleeps == [0.5, 4.0]


def test_policy__gives_up_with_the_vendors_class_and_the_next_wait():
    sleeps: list[float] = []

    def throttled() -> None:
        raise Retryable("HTTP 429", status=429, throttled=True, maybe_executed=False)

    policy = RetryPolicy(max_attempts=2, backoff=Backoff(1.0, jitter=no_jitter), sleep=sleeps.append)
    with pytest.raises(Throttled) as caught:
        policy.call(throttled, give_up=GIVE_UP, operation="op")
    assert (caught.value.retry_after, caught.value.status, caught.value.operation) == (2.0, 429, "op")
    assert "op gave up after 2 attempt(s): HTTP 429" in str(caught.value) and sleeps == [1.0]


def test_policy__a_wait_longer_than_max_wait_is_handed_back_not_slept():
    sleeps: list[float] = []

    def attempt() -> None:
        raise Retryable("HTTP 429", delay=120.0, throttled=True)

    with pytest.raises(Throttled) as caught:
        RetryPolicy(max_wait=30, sleep=sleeps.append).call(attempt, give_up=GIVE_UP)
    assert caught.value.retry_after == 120.0 and sleeps == []


def test_policy__an_unsure_failure_is_not_replayed_unless_safe():
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise Retryable("HTTP 502", status=502, maybe_executed=True)

    policy = RetryPolicy(sleep=lambda s: None)
    with pytest.raises(Unavailable) as caught:
        policy.call(attempt, give_up=GIVE_UP, replay_unsure=False)
    assert caught.value.maybe_executed and len(calls) == 1
    with pytest.raises(Unavailable):
        policy.call(attempt, give_up=GIVE_UP)
    assert len(calls) == 4


def test_policy__other_errors_are_not_retried():
    def attempt() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        RetryPolicy(sleep=lambda s: pytest.fail("slept")).call(attempt, give_up=GIVE_UP)


def test_transport__unreachable_is_retried_and_its_message_keeps_no_secret():
    class Refuses(requests.Session):
        def request(self, method, url, **kwargs):
            raise requests.ConnectionError(f"cannot reach {url} with key sk_live_123")

    transport = HttpTransport(
        RetryPolicy(max_attempts=2, sleep=lambda s: None),
        Broken,
        session=Refuses(),
        secrets=("sk_live_123",),
    )
    with pytest.raises(Unavailable, match="unreachable: ConnectionError") as caught:
        transport.request(
            "read", "GET", "https://x.example/a?consumer_secret=cs_1", classify=lambda r: r, give_up=GIVE_UP
        )
    assert "sk_live_123" not in str(caught.value) and "cs_1" not in str(caught.value)
    assert caught.value.status is None


def test_transport__a_request_that_cannot_be_sent_is_the_vendors_error_at_once():
    transport = HttpTransport(RetryPolicy(), Broken)
    with pytest.raises(Broken, match="read: MissingSchema"):
        transport.request("read", "GET", "no-scheme", classify=lambda r: r, give_up=GIVE_UP)


def test_json__defensive():
    assert json_body(response(body=b"not json")) is None and json_object(response(body=b"[1]")) == {}
    assert json_object(response(body=b'{"a": 1}')) == {"a": 1}


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("GET /wc/v3/orders?consumer_key=ck_1&consumer_secret=cs_2&page=1", ("ck_1", "cs_2")),
        ("PUT https://s3.example/doc?X-Amz-Signature=abc123&X-Amz-Credential=AKIA9", ("abc123", "AKIA9")),
        ("{'Authorization': 'Bearer tok_9', 'Accept': 'x'}", ("tok_9",)),
        ("X-Shopify-Access-Token: shpat_1", ("shpat_1",)),
        ("https://user:pw_7@host.example/path", ("pw_7",)),
    ],
)
def test_redact__credentials_leave_every_message(text, hidden):
    cleaned = redact(text)
    for value in hidden:
        assert value not in cleaned
    assert redact("an api key k_42 leaked", ("k_42",)) == "an api key *** leaked"
    assert redact("GET /orders?page=2") == "GET /orders?page=2"
