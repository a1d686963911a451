"""The one HTTP transport of every outbound REST integration: timeouts, bounded retries, Retry-After, JSON.

A client builds one `HttpTransport` (a pooled requests Session, a timeout, a `RetryPolicy`, the secrets to
keep out of messages) and hands each call a `classify` function that turns a response into its result, or
raises `Retryable` for an answer worth trying again (429, 5xx, THROTTLED), or the vendor's own error for
one that is not. Transport failures (refused, reset, timed out) are `Retryable` here. When the policy's
attempts or patience run out, the client's `give_up` turns the last `Retryable` into its vendor's
UpstreamUnavailable / UpstreamThrottled subclass. `RetryPolicy.call` also retries whole steps (read, then
write) for clients whose unit of retry is more than one request.

Retries are tenacity's (a well-kept retry engine that takes an injected sleep and lets the wait depend on
the failure, so Retry-After and the vendors' own throttle hints fit in; urllib3's Retry sleeps inside the
adapter, where neither pacing, token refresh nor a throttle hidden in a 200 GraphQL answer can be seen).
"""

from __future__ import annotations

import ipaddress
import random
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypedDict, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
from aws_lambda_powertools import Logger
from requests.adapters import BaseAdapter

from chalicelib.domain.hosts import HostRefused, check_host, ip_literal, refused_address
from chalicelib.domain.upstream import UpstreamError, UpstreamThrottled, UpstreamUnavailable

logger = Logger(service="order-hub", child=True)

T = TypeVar("T")
# Statuses every REST upstream here means as "try again later" (429 is throttling, the rest failures).
TRANSIENT = frozenset({500, 502, 503, 504})
# Failures of the exchange itself: the request may or may not have reached the upstream.
_UNREACHABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

Jitter = Callable[[float, float], float]  # (backoff, a random number in [0, 1)) -> the wait


def full_jitter(backoff: float, r: float) -> float:
    """Anywhere between nothing and the backoff: spreads a crowd of clients out the most."""
    return backoff * r


def equal_jitter(backoff: float, r: float) -> float:
    """At least half the backoff, so a crowd of clients spreads out but every one still waits."""
    return backoff * (0.5 + 0.5 * r)


def no_jitter(backoff: float, r: float) -> float:
    return backoff


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `base * factor ** (attempt - 1)`, capped at `cap`, then jittered."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = float("inf")
    jitter: Jitter = full_jitter
    random: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1 for the first)."""
        return self.jitter(min(self.cap, self.base * self.factor ** (attempt - 1)), self.random())


class Retryable(Exception):
    """One attempt failed in a way a later one may not: throttled, failing or unreachable.

    `delay`: what the upstream asked us to wait (Retry-After, a throttle's restore time); None: back off.
    `maybe_executed`: the request may have run there (a timeout, a 5xx), so replaying it may repeat it.
    """

    def __init__(
        self,
        why: str,
        *,
        status: int | None = None,
        delay: float | None = None,
        maybe_executed: bool = True,
        throttled: bool = False,
        code: str | None = None,
    ) -> None:
        super().__init__(why)
        self.why = why
        self.status = status
        self.delay = delay
        self.maybe_executed = maybe_executed
        self.throttled = throttled
        self.code = code


# (operation, the last failure, how many attempts were made, the wait that would have come next) -> the error
GiveUp = Callable[[str | None, Retryable, int, float], Exception]


def give_up_as(unavailable: type[UpstreamUnavailable], throttled: type[UpstreamThrottled]) -> GiveUp:
    """The usual GiveUp: the vendor's Throttled class for a throttled failure, else its Unavailable class."""

    def give_up(operation: str | None, failure: Retryable, attempts: int, wait: float) -> Exception:
        kind = throttled if failure.throttled else unavailable
        return kind(
            f"{operation} gave up after {attempts} attempt(s): {failure.why}",
            operation=operation,
            status=failure.status,
            code=failure.code,
            retry_after=wait,
            maybe_executed=failure.maybe_executed,
        )

    return give_up


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` tries; no single wait longer than `max_wait` seconds (a longer Retry-After
    is handed back to the caller in the error instead of slept); waits from `backoff` unless the upstream
    said how long; `sleep` is injectable so tests observe every wait."""

    max_attempts: int = 3
    max_wait: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)
    sleep: Callable[[float], None] = time.sleep
    log: str = "upstream retry"  # the log line of each retry ("shopify retry", ...)

    def call(
        self,
        attempt: Callable[[], T],
        *,
        give_up: GiveUp,
        operation: str | None = None,
        replay_unsure: bool = True,
    ) -> T:
        """`attempt()` until it returns; it raises Retryable for a failure worth another try.

        A failure whose request may have run (`maybe_executed`) is only tried again when `replay_unsure`
        (the operation is idempotent, or carries an idempotency key); otherwise it is handed back at once.
        """

        def failure(state: tenacity.RetryCallState) -> Retryable:
            error = state.outcome.exception() if state.outcome is not None else None
            assert isinstance(error, Retryable)  # tenacity retries nothing else
            return error

        def wait(state: tenacity.RetryCallState) -> float:
            delay = failure(state).delay
            return delay if delay is not None else self.backoff.delay(state.attempt_number)

        def stop(state: tenacity.RetryCallState) -> bool:
            unsure = failure(state).maybe_executed and not replay_unsure
            return unsure or state.attempt_number >= self.max_attempts or state.upcoming_sleep > self.max_wait

        def log(state: tenacity.RetryCallState) -> None:
            last = failure(state)
            logger.info(
                self.log,
                extra={
                    "operation": operation,
                    "status": last.status,
                    "code": last.code,
                    "attempt": state.attempt_number,
                    "delay_seconds": round(state.upcoming_sleep, 3),
                },
            )

        def spent(state: tenacity.RetryCallState) -> T:
            last = failure(state)
            error = give_up(operation, last, state.attempt_number, state.upcoming_sleep)
            if error is last.__cause__:  # the give-up re-raises what the attempt turned into a Retryable
                raise error
            raise error from last

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Retryable),
            wait=wait,
            stop=stop,
            sleep=self.sleep,
            before_sleep=log,
            retry_error_callback=spent,
        )
        return retrying(attempt)


# (host, port) -> every address the host resolves to
Resolve = Callable[[str, int], list[str]]


def system_resolve(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


class BlockedHost(requests.exceptions.InvalidURL):
    """The hub will not call this host: not a public https host (domain/hosts.py), as named or resolved."""


@dataclass(frozen=True)
class HostGuard:
    """Checks each request's host before it is sent, redirects included: an https URL whose host is a valid
    name resolving to public addresses only (or an address literal that is public). With `allow_private`
    (the local stack), loopback and private hosts and plain http pass too. `resolve` is injectable."""

    allow_private: bool = False
    resolve: Resolve = system_resolve

    def check(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "https" and not self.allow_private:
            raise BlockedHost(f"{host}: only https is called outside the local stack")
        try:
            check_host(host, allow_private=self.allow_private)
        except HostRefused as exc:
            raise BlockedHost(f"{host}: {exc}") from None
        if ip_literal(host) is not None:
            return
        try:
            addresses = self.resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
        except OSError as exc:
            raise requests.ConnectionError(f"{host} does not resolve ({type(exc).__name__})") from exc
        for address in addresses:
            why = refused_address(
                ipaddress.ip_address(address.split("%")[0]), allow_private=self.allow_private
            )
            if why is not None:
                raise BlockedHost(f"{host} resolves to {why}")


_guard: HostGuard | None = None


def guard_hosts(guard: HostGuard | None) -> None:
    """Install the host check every transport's requests pass (the composition root does, from settings).
    Until then nothing is checked: clients built by tests against local simulators call them freely."""
    global _guard
    _guard = guard


class GuardedAdapter(BaseAdapter):
    """A requests adapter that checks the installed HostGuard, then sends through the adapter it wraps.
    Session.send goes through an adapter for the first request and for every redirect, so neither escapes."""

    def __init__(self, inner: BaseAdapter) -> None:
        super().__init__()
        self.inner = inner

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if _guard is not None:
            _guard.check(request.url or "")
        return self.inner.send(request, *args, **kwargs)

    def close(self) -> None:
        self.inner.close()


def guard_session(session: Any) -> None:
    """Wrap each adapter of a requests Session (a test's own included) in a GuardedAdapter, once."""
    adapters = getattr(session, "adapters", None)
    if not isinstance(session, requests.Session) or adapters is None:
        return
    for prefix, adapter in list(adapters.items()):
        if not isinstance(adapter, GuardedAdapter):
            adapters[prefix] = GuardedAdapter(adapter)


class HttpTransport:
    """One upstream API's HTTP exchanges: a pooled Session, a timeout, a RetryPolicy, and the secrets
    (API keys, tokens) that must never reach an error message."""

    def __init__(
        self,
        policy: RetryPolicy,
        error: type[UpstreamError],
        *,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = 10.0,
        secrets: Iterable[str] = (),
    ) -> None:
        self.policy = policy
        self.session = session or requests.Session()
        guard_session(self.session)
        self.timeout = timeout
        self._secrets = tuple(s for s in secrets if s)
        # The vendor's base error: raised for a request that could not even be sent (a bad URL).
        self._error = error

    def request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        classify: Callable[[requests.Response], T],
        give_up: GiveUp,
        replay_unsure: bool = True,
        before: Callable[[], None] | None = None,
        **options: Any,
    ) -> T:
        """One call, retried by the policy: `before()` (pacing) ahead of each attempt, then the exchange,
        then `classify(response)`, which answers the result or raises (Retryable to try again)."""

        def attempt() -> T:
            if before is not None:
                before()
            return classify(self.exchange(operation, method, url, **options))

        return self.policy.call(attempt, give_up=give_up, operation=operation, replay_unsure=replay_unsure)

    def exchange(self, operation: str, method: str, url: str, **options: Any) -> requests.Response:
        """One attempt, no retry: the response whatever its status; Retryable when the exchange failed."""
        options.setdefault("timeout", self.timeout)
        # Through the verb's own method (session.post...), which a test's or a wrapper's Session may override.
        send: Callable[..., requests.Response] = getattr(self.session, method.lower())
        try:
            return send(url, **options)
        except _UNREACHABLE as exc:
            # Only a connect timeout proves the request never left; anything later may have run.
            sent = not isinstance(exc, requests.ConnectTimeout)
            raise Retryable(f"unreachable: {self.describe(exc)}", maybe_executed=sent) from exc
        except requests.RequestException as exc:
            raise self._error(f"{operation}: {self.describe(exc)}", operation=operation) from exc

    def describe(self, exc: BaseException) -> str:
        """The exception's type and its text with every credential taken out (its URL may carry some)."""
        detail = redact(str(exc), self._secrets)[:200]
        return f"{type(exc).__name__} ({detail})" if detail else type(exc).__name__

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)


class HttpOptions(TypedDict, total=False):
    """The knobs every REST client takes as keyword arguments (each client has its own defaults).

    `session`: the requests Session to send through (a test's own); `timeout`: per request, in seconds;
    `max_attempts`, `max_wait`, `backoff`, `sleep`: the RetryPolicy's; `jitter`: the random source
    (a number in [0, 1)) the backoff is jittered with.
    """

    session: requests.Session | None
    timeout: float
    max_attempts: int
    max_wait: float
    backoff: float
    sleep: Callable[[float], None]
    jitter: Callable[[], float]


def transport(
    error: type[UpstreamError],
    options: HttpOptions,
    *,
    log: str,
    secrets: Iterable[str],
    spread: Jitter = equal_jitter,
    timeout: float = 10.0,
    max_wait: float = 30.0,
) -> HttpTransport:
    """The HttpTransport of one REST client: its own defaults (`timeout`, `max_wait`, how the backoff is
    `spread`) overridden by the caller's `options`; at least one attempt, whatever `max_attempts` says."""
    backoff = Backoff(options.get("backoff", 0.5), jitter=spread, random=options.get("jitter", random.random))
    policy = RetryPolicy(
        max(1, options.get("max_attempts", 3)),
        options.get("max_wait", max_wait),
        backoff,
        options.get("sleep", time.sleep),
        log,
    )
    return HttpTransport(
        policy,
        error,
        session=options.get("session"),
        timeout=options.get("timeout", timeout),
        secrets=secrets,
    )


def json_body(response: requests.Response) -> Any:
    """The response's JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def json_object(response: requests.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when it is not JSON or not an object."""
    body = json_body(response)
    return body if isinstance(body, dict) else {}


def retry_after(response: requests.Response, now: datetime | None = None) -> float | None:
    """Seconds Retry-After asks for (delta-seconds or an HTTP-date); None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - (now or datetime.now(UTC))).total_seconds())
    except (TypeError, ValueError):
        return None


def retryable_status(response: requests.Response, why: str, *, code: str | None = None) -> Retryable | None:
    """The Retryable of a 429 (throttled, not run) or a 5xx (may have run), with Retry-After; else None."""
    status = response.status_code
    if status == 429:
        delay = retry_after(response)
        return Retryable(why, status=429, delay=delay, maybe_executed=False, throttled=True, code=code)
    if status in TRANSIENT:
        return Retryable(why, status=status, delay=retry_after(response), code=code)
    return None


_SECRET_NAME = r"[^=&#\s'\"]*(?:secret|token|key|signature|sig|password|credential|auth)[^=&#\s'\"]*"  # noqa: S105
_SECRET_PARAM = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)[^&#\s'\"]*")
_SECRET_HEADER = re.compile(
    r"(?i)((?:authorization|x-shopify-access-token|x-amz-access-token|x-api-key|api-key)['\"]?\s*[:=]\s*['\"]?)"
    r"[^'\",}\s]+(?:\s+[^'\",}\s]+)?"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=|-]+")
_USERINFO = re.compile(r"(://)[^/@\s]+@")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without credentials: the given secret values, secret-looking query parameters (consumer_secret,
    X-Amz-Signature, access_token...), Authorization-like headers, bearer/basic tokens and URL user-info."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SECRET_PARAM.sub(r"\1***", text)
    text = _SECRET_HEADER.sub(r"\1***", text)
    text = _BEARER.sub(r"\1 ***", text)
    return _USERINFO.sub(r"\1***@", text)
