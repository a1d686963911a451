"""Shopify Admin GraphQL client: order risk, authorizations, orderCapture, and the publishing transport."""

# Over 450 lines: one shop's Admin API client with its cost-bucket pacing and capture; splitting the
# bucket and the transaction views into their own modules is a follow-up of #14.

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import requests
from aws_lambda_powertools import Logger

from chalicelib.domain import upstream
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.fraud import ShopifyRisk
from chalicelib.integrations.http import (
    TRANSIENT,
    Backoff,
    HttpTransport,
    Retryable,
    RetryPolicy,
    equal_jitter,
    give_up_as,
    json_object,
    retry_after,
)

logger = Logger(service="order-hub", child=True)

# The version the webhook subscriptions and the local simulator speak. 2026-10 is the newest stable
# version (supported until at least 2027-10) and has everything the hub calls: orderCapture with
# finalCapture (2024-07+), fulfillmentCreate (the non-V2 name), orderCancel's refundMethod (2025-07+,
# `refund` deprecated) and refundCreate's @idempotent key (mandatory from 2026-04). 2024-04 is out of support.
API_VERSION = "2026-10"
# OrderCaptureInput.finalCapture exists from 2024-07 on; older versions reject the field outright.
FINAL_CAPTURE_SINCE = "2024-07"
_CAPTURED = frozenset({"SUCCESS", "PENDING"})
_T = TypeVar("_T")
_GID = re.compile(r"^gid://shopify/(?P<type>[A-Za-z]+)/(?P<id>\d+)$")

_RISK_QUERY = """
query OrderRisk($id: ID!) {
  order(id: $id) { id risk { recommendation assessments { riskLevel } } }
}
"""
_TRANSACTIONS_QUERY = """
query OrderTransactions($id: ID!) {
  order(id: $id) {
    id
    transactions {
      id kind status manuallyCapturable
      amountSet { presentmentMoney { amount currencyCode } }
      parentTransaction { id }
    }
  }
}
"""
_CAPTURE_MUTATION = """
mutation OrderCapture($input: OrderCaptureInput!) {
  orderCapture(input: $input) {
    transaction {
      id kind status errorCode
      amountSet { presentmentMoney { amount currencyCode } }
      parentTransaction { id }
    }
    userErrors { field message }
  }
}
"""


class ShopifyError(upstream.UpstreamError):
    """Shopify answered with an error the caller cannot fix by retrying the same request now."""


class ShopifyRejected(ShopifyError, upstream.UpstreamRejected):
    """Shopify refused the mutation (its `userErrors`, or a failed capture): nothing was captured."""

    def __init__(
        self, message: str, *, operation: str | None = None, user_errors: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message, operation=operation, code="USER_ERROR")
        self.user_errors = user_errors  # (field path joined by ".", message)


class ShopifyUnavailable(ShopifyError, upstream.UpstreamUnavailable):
    """Unreachable, 5xx, 429 or THROTTLED after the bounded retries: transient, try again later.

    `maybe_executed` is True when the request may have reached Shopify (timeout, 5xx): a mutation may
    have happened.
    """


class ShopifyThrottled(ShopifyUnavailable, upstream.UpstreamThrottled):
    """429 or THROTTLED after the bounded retries, or a wait for the cost bucket longer than allowed."""


class ShopifyAuthError(ShopifyError, upstream.UpstreamAuthError):
    """The access token was refused (401/403, ACCESS_DENIED): the connection needs new credentials."""


class ShopifyNotFound(ShopifyError, upstream.UpstreamNotFound):
    """No such order in the shop (or not visible to this app)."""


_GIVE_UP = give_up_as(ShopifyUnavailable, ShopifyThrottled)


@dataclass(frozen=True)
class CaptureResult:
    """A CAPTURE transaction; `replayed` when it was found already done instead of captured now."""

    transaction_id: str  # gid://shopify/OrderTransaction/...
    status: str  # SUCCESS | PENDING | ...
    amount: Decimal
    currency: str  # presentment currency
    parent_transaction_id: str
    replayed: bool = False


@dataclass(frozen=True)
class Authorization:
    """A successful AUTHORIZATION transaction and what was captured against it so far."""

    transaction_id: str  # gid://shopify/OrderTransaction/...
    amount: Decimal  # presentment money
    currency: str
    captured: Decimal  # by its successful (and pending) captures
    capturable: bool = True  # Shopify's manuallyCapturable: False once spent, closed, voided or expired
    captures: tuple[CaptureResult, ...] = ()

    @property
    def remaining(self) -> Decimal:
        """What a capture may still take from this authorization."""
        return max(Decimal(0), self.amount - self.captured) if self.capturable else Decimal(0)


def order_gid(order_id: str | int) -> str:
    """`gid://shopify/Order/N` from a legacy numeric id or a gid."""
    return _gid(order_id, "Order")


def transaction_gid(transaction_id: str | int) -> str:
    """`gid://shopify/OrderTransaction/N` from a legacy numeric id or a gid."""
    return _gid(transaction_id, "OrderTransaction")


def _gid(value: str | int, type_name: str) -> str:
    text = str(value).strip()
    if text.isdigit():
        return f"gid://shopify/{type_name}/{text}"
    match = _GID.match(text)
    if match is None or match["type"] != type_name:
        raise InvalidInput(f"not a Shopify {type_name} id: {text[:80]!r}")
    return text


class ShopifyAdmin:
    """One shop's Admin GraphQL API, for the payment stage.

    Build one per connection and reuse it: it remembers the shop's cost bucket
    (`extensions.cost.throttleStatus`) and waits before a query the bucket cannot pay for yet. A
    THROTTLED answer is waited out for the time its requested cost needs to be restored, a 429 for
    its Retry-After, a 5xx or a transport error with jittered backoff: at most `max_attempts` tries,
    no single wait longer than `max_wait` seconds; then ShopifyUnavailable.
    """

    def __init__(
        self,
        shop: str,
        access_token: str,
        *,
        api_base: str | None = None,
        api_version: str = API_VERSION,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        max_wait: float = 10.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not shop or not access_token:
            raise InvalidInput("a Shopify connection needs its shop domain and access token")
        self._shop = shop
        self._version = api_version
        self._url = f"{(api_base or f'https://{shop}').rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._headers = {
            "X-Shopify-Access-Token": access_token,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        backoff_policy = Backoff(backoff, jitter=equal_jitter, random=jitter)
        policy = RetryPolicy(max(1, max_attempts), max_wait, backoff_policy, sleep, "shopify retry")
        self._http = HttpTransport(
            policy, ShopifyError, session=session, timeout=timeout, secrets=(access_token,)
        )
        # A write whose answer never came is read back, then sent again: the same limits, its own log line.
        self._rewrite = replace(policy, log="shopify write outcome unknown, reading before retrying")
        self._lock = threading.Lock()
        # Last throttleStatus seen: (currentlyAvailable, restoreRate, maximumAvailable, when), and the
        # requested cost each operation last had, to pace the next call of it.
        self._bucket: tuple[float, float, float, float] | None = None
        self._costs: dict[str, float] = {}

    def __repr__(self) -> str:
        # Never let the access token reach a log line through an accidental %r.
        return f"ShopifyAdmin(shop={self._shop!r}, api_version={self._version!r})"

    # --- reads --------------------------------------------------------------------------------

    def order_risk(self, order_id: str) -> ShopifyRisk | None:
        """The order's `risk` summary (recommendation and assessment levels); None when it has none."""
        order = self._order("orderRisk", _RISK_QUERY, order_id)
        risk = order.get("risk")
        return ShopifyRisk.from_graphql(risk if isinstance(risk, Mapping) else None)

    def capturable_authorizations(self, order_id: str) -> list[Authorization]:
        """Every successful AUTHORIZATION of the order with its successful captures, oldest first.

        Fully captured, closed or voided ones are listed too (`capturable` False, `remaining` 0), so
        a caller can tell "already captured" from "never authorized".
        """
        order = self._order("orderTransactions", _TRANSACTIONS_QUERY, order_id)
        transactions = order.get("transactions")
        return _authorizations(transactions if isinstance(transactions, list) else [])

    # --- capture ------------------------------------------------------------------------------

    def capture(
        self,
        order_id: str,
        parent_transaction_id: str,
        amount: Decimal,
        currency: str,
        *,
        final_capture: bool = True,
        captured_before: Decimal = Decimal(0),
    ) -> CaptureResult:
        """Capture `amount` (presentment currency) from an authorization; safe to call again.

        Shopify's orderCapture takes no idempotency key, so a read comes before every write: when
        the authorization already has successful captures totalling `captured_before + amount` or
        more, the earlier capture is returned (`replayed=True`) and nothing is captured again. The
        same read follows a rejection (another caller may have won) and an answer that never came
        (timeout, 5xx: the capture may have happened), before any retry. A deliberate further partial
        capture of a multi-capturable authorization passes what was captured before it.

        `final_capture` is sent from API version 2024-07 on (the field does not exist before; there
        Shopify's default applies: a single-capture authorization is spent by its one capture, a
        multi-capturable one stays open). Raises ShopifyRejected for userErrors or a failed capture,
        ShopifyUnavailable when Shopify stays unreachable, throttled or failing.
        """
        order, parent = order_gid(order_id), transaction_gid(parent_transaction_id)
        if not amount.is_finite() or amount <= 0:
            raise InvalidInput(f"capture amount must be positive, not {amount}")
        target = captured_before + amount
        result, _ = self.write_once(
            lambda: self._existing_capture(order, parent, amount, target),
            lambda: self._order_capture(order, parent, amount, currency, final_capture),
        )
        return result

    def _existing_capture(
        self, order: str, parent: str, amount: Decimal, target: Decimal
    ) -> CaptureResult | None:
        auth = next((a for a in self.capturable_authorizations(order) if a.transaction_id == parent), None)
        if auth is None or not auth.captures or auth.captured < target:
            return None
        same = [c for c in auth.captures if c.amount == amount]
        logger.info(
            "shopify capture already done",
            extra={"operation": "orderCapture", "order_id": order, "captured": f"{auth.captured:f}"},
        )
        return replace((same or list(auth.captures))[-1], replayed=True)

    def _order_capture(
        self, order: str, parent: str, amount: Decimal, currency: str, final_capture: bool
    ) -> CaptureResult:
        fields: dict[str, Any] = {
            "id": order,
            "parentTransactionId": parent,
            "amount": f"{amount:f}",
            "currency": currency.upper(),
        }
        if self._version == "unstable" or self._version >= FINAL_CAPTURE_SINCE:
            fields["finalCapture"] = final_capture
        data = self._execute("orderCapture", _CAPTURE_MUTATION, {"input": fields}, replay_unsure=False)
        payload = data.get("orderCapture")
        if not isinstance(payload, Mapping):
            raise ShopifyError("orderCapture answered without a payload", operation="orderCapture")
        user_errors = tuple(
            (".".join(str(part) for part in e.get("field") or ()), str(e.get("message") or ""))
            for e in payload.get("userErrors") or ()
            if isinstance(e, Mapping)
        )
        if user_errors:
            text = "; ".join(f"{field}: {message}" if field else message for field, message in user_errors)
            raise ShopifyRejected(
                f"orderCapture refused: {text}", operation="orderCapture", user_errors=user_errors
            )
        transaction = payload.get("transaction")
        if not isinstance(transaction, Mapping):
            raise ShopifyError("orderCapture answered without a transaction", operation="orderCapture")
        result = _capture_result(transaction, parent)
        if result.status in ("FAILURE", "ERROR"):
            code = transaction.get("errorCode") or result.status
            raise ShopifyRejected(f"orderCapture failed at the gateway: {code}", operation="orderCapture")
        logger.info(
            "shopify capture",
            extra={"operation": "orderCapture", "order_id": order, "status": result.status},
        )
        return result

    # --- generic operations (publishing) -------------------------------------------------------

    def query(self, operation: str, document: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """Run a read and return its `data`; THROTTLED, 429, 5xx and transport failures are retried."""
        return self._execute(operation, document, variables)

    def mutate(
        self,
        operation: str,
        document: str,
        variables: Mapping[str, Any],
        *,
        replay_unsure: bool = False,
    ) -> Mapping[str, Any]:
        """Run one mutation and return its payload (`data[operation]`).

        Raises ShopifyRejected for its `userErrors` (or `orderCancelUserErrors`). A request Shopify
        may have run (timeout, 5xx) is only sent again when `replay_unsure` (an @idempotent key makes
        that safe); otherwise ShopifyUnavailable(maybe_executed=True) lets the caller read first.
        """
        data = self._execute(operation, document, variables, replay_unsure=replay_unsure)
        payload = data.get(operation)
        if not isinstance(payload, Mapping):
            raise ShopifyError(f"{operation} answered without a payload", operation=operation)
        errors = [*(payload.get("userErrors") or ()), *(payload.get("orderCancelUserErrors") or ())]
        user_errors = tuple(
            (".".join(str(part) for part in e.get("field") or ()), str(e.get("message") or ""))
            for e in errors
            if isinstance(e, Mapping)
        )
        if user_errors:
            text = "; ".join(f"{field}: {message}" if field else message for field, message in user_errors)
            raise ShopifyRejected(
                f"{operation} refused: {text}", operation=operation, user_errors=user_errors
            )
        return payload

    def write_once(self, done: Callable[[], _T | None], write: Callable[[], _T]) -> tuple[_T, bool]:
        """`write` unless `done` finds it already written; answers (result, replayed).

        For mutations without an idempotency key: `done` reads Shopify before the first write, after
        a rejection (another caller may have won) and after an answer that never came (timeout, 5xx),
        before writing again, at most `max_attempts` writes in all.
        """

        def attempt() -> tuple[_T, bool]:
            existing = done()
            if existing is not None:
                return existing, True
            try:
                return write(), False
            except ShopifyRejected:
                existing = done()
                if existing is not None:
                    return existing, True
                raise
            except ShopifyUnavailable as exc:
                if not exc.maybe_executed:
                    raise
                raise Retryable(str(exc), status=exc.status, code=exc.code) from exc

        def spent(operation: str | None, failure: Retryable, attempts: int, wait: float) -> Exception:
            return failure.__cause__ if isinstance(failure.__cause__, Exception) else failure

        return self._rewrite.call(attempt, give_up=spent)

    # --- transport ----------------------------------------------------------------------------

    def _order(self, operation: str, query: str, order_id: str) -> Mapping[str, Any]:
        gid = order_gid(order_id)
        order = self._execute(operation, query, {"id": gid}).get("order")
        if not isinstance(order, Mapping):
            raise ShopifyNotFound(f"no order {gid} in {self._shop}", operation=operation)
        return order

    def _execute(
        self, operation: str, query: str, variables: Mapping[str, Any], *, replay_unsure: bool = True
    ) -> dict[str, Any]:
        """POST one GraphQL document and return its `data`.

        Requests Shopify did not run (THROTTLED, 429, refused connections) are retried after the
        wait they need; ones it may have run (timeouts, 5xx) only when `replay_unsure`.
        """
        return self._http.request(
            operation,
            "POST",
            self._url,
            classify=lambda response: self._read(operation, response),
            give_up=_GIVE_UP,
            replay_unsure=replay_unsure,
            before=lambda: self._pace(operation),
            json={"query": query, "variables": dict(variables)},
            headers=self._headers,
        )

    def _read(self, operation: str, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 429:
            raise Retryable(
                "HTTP 429", status=429, delay=retry_after(response), maybe_executed=False, throttled=True
            )
        if status in TRANSIENT:
            # Only a 429's Retry-After is honoured here; a 5xx backs off.
            raise Retryable(f"HTTP {status}", status=status, maybe_executed=True)
        if status in (401, 403):
            raise ShopifyAuthError(
                f"{operation}: Shopify refused the access token", operation=operation, status=status
            )
        body = json_object(response)
        if status != 200:
            raise ShopifyError(f"{operation} answered HTTP {status}", operation=operation, status=status)
        extensions = body.get("extensions")
        cost = extensions.get("cost") if isinstance(extensions, Mapping) else None
        if isinstance(cost, Mapping):
            self._learn(operation, cost)
        errors = [e for e in body.get("errors") or () if isinstance(e, Mapping)]
        codes = [str((e.get("extensions") or {}).get("code") or "") for e in errors]
        if "THROTTLED" in codes:
            wait = self._restore_wait(cost)
            raise Retryable(
                "THROTTLED", status=200, delay=wait, maybe_executed=False, throttled=True, code="THROTTLED"
            )
        if errors:
            message = "; ".join(str(e.get("message") or "") for e in errors)[:500]
            kind = ShopifyAuthError if "ACCESS_DENIED" in codes else ShopifyError
            raise kind(
                f"{operation} answered errors: {message}", operation=operation, status=200, code=codes[0]
            )
        data = body.get("data")
        if not isinstance(data, dict):
            raise ShopifyError(f"{operation} answered without data", operation=operation, status=200)
        return data

    def _learn(self, operation: str, cost: Mapping[str, Any]) -> None:
        throttle = cost.get("throttleStatus")
        if not isinstance(throttle, Mapping):
            return
        try:
            available = float(throttle["currentlyAvailable"])
            rate = float(throttle["restoreRate"])
            maximum = float(throttle["maximumAvailable"])
            requested = float(cost["requestedQueryCost"])
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            self._bucket = (available, rate, maximum, self._clock())
            self._costs[operation] = requested

    def _projected(self) -> tuple[float, float] | None:
        """(points available now, restore rate) as the last throttleStatus lets us project them."""
        with self._lock:
            if self._bucket is None:
                return None
            available, rate, maximum, at = self._bucket
        return min(maximum, available + (self._clock() - at) * rate), rate

    def _restore_wait(self, cost: Mapping[str, Any] | None) -> float | None:
        """How long until the bucket holds the requested cost of a THROTTLED query (None: unknown)."""
        projected = self._projected()
        try:
            requested = float((cost or {})["requestedQueryCost"])
        except (KeyError, TypeError, ValueError):
            return None
        if projected is None or projected[1] <= 0:
            return None
        available, rate = projected
        return max(0.0, requested - available) / rate

    def _pace(self, operation: str) -> None:
        # Wait for the points this operation last cost rather than spend a request on THROTTLED.
        projected = self._projected()
        cost = self._costs.get(operation)
        if projected is None or cost is None or projected[1] <= 0 or projected[0] >= cost:
            return
        wait = (cost - projected[0]) / projected[1]
        if wait <= self._max_wait:
            logger.debug("shopify paced", extra={"operation": operation, "wait_seconds": round(wait, 3)})
            self._sleep(wait)


def _authorizations(transactions: list[Any]) -> list[Authorization]:
    nodes = [t for t in transactions if isinstance(t, Mapping)]
    auths = [t for t in nodes if t.get("kind") == "AUTHORIZATION" and t.get("status") == "SUCCESS"]
    captures: dict[str, list[CaptureResult]] = {str(a.get("id")): [] for a in auths}
    for node in nodes:
        parent = (node.get("parentTransaction") or {}).get("id")
        # A pending capture is money on its way: counting it keeps a second call from capturing again.
        if node.get("kind") == "CAPTURE" and node.get("status") in _CAPTURED and parent in captures:
            captures[parent].append(_capture_result(node, parent))
    result = []
    for auth in auths:
        amount, currency = _money(auth)
        taken = tuple(captures[str(auth.get("id"))])
        result.append(
            Authorization(
                transaction_id=str(auth.get("id")),
                amount=amount,
                currency=currency,
                captured=sum((c.amount for c in taken), Decimal(0)),
                capturable=bool(auth.get("manuallyCapturable", True)),
                captures=taken,
            )
        )
    return result


def _capture_result(transaction: Mapping[str, Any], parent: str) -> CaptureResult:
    amount, currency = _money(transaction)
    parent_id = (transaction.get("parentTransaction") or {}).get("id") or parent
    return CaptureResult(
        transaction_id=str(transaction.get("id")),
        status=str(transaction.get("status") or ""),
        amount=amount,
        currency=currency,
        parent_transaction_id=str(parent_id),
    )


def _money(transaction: Mapping[str, Any]) -> tuple[Decimal, str]:
    money = ((transaction.get("amountSet") or {}).get("presentmentMoney")) or {}
    try:
        return Decimal(str(money["amount"])), str(money["currencyCode"])
    except (KeyError, InvalidOperation) as exc:
        raise ShopifyError(f"transaction {transaction.get('id')} has no readable amount") from exc
