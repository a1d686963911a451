"""WooCommerce publisher: order milestones told back to the store through its REST API v3.

What each milestone becomes in WooCommerce (core has no "shipped" status; `completed` means fulfilled):
- paid: status `processing`, only from `pending`, `on-hold` or `failed` (a failed payment can still be paid);
- shipped: a customer-visible order note naming carrier, tracking numbers and the lines shipped (saying so
  when only part of the order left); once the order is fully shipped (`complete`), status `completed`;
- delivered: a private order note; the status stays as it is;
- cancelled: status `cancelled` (a private note carries the reason), unless already cancelled or refunded;
- refunded: a refund (`POST …/refunds`) of the milestone's amount, without `line_items`: WooCommerce
  restocks refunded items by default, and whether stock goes back on sale is not the hub's call.

Idempotency: WooCommerce takes no idempotency key, so every note and refund carries the marker
`[order-hub <publication_id>]` and is only written when the order's notes (refunds) do not show it yet;
status changes are only made from the statuses named above. A retried step reads again before writing, so
a write whose answer was lost is not repeated.

Refunds and the money: `api_refund` is false when the hub holds the payment in its own Stripe
PaymentIntent (`stripe_intent(order)`: payment source "stripe", reference "pi_…"), because the hub's
payment stage returns that money itself and the store must only record it; letting WooCommerce Stripe
Gateway refund the same PaymentIntent again would refund twice. Otherwise the store's gateway holds the
money and `api_refund` is true: WooCommerce refunds through it (and refuses when the gateway cannot,
which surfaces as PublishRejected for an operator rather than a refund recorded but never paid).

Errors: 4xx (but 429) → PublishRejected with WooCommerce's code and message; 429 → waited out for its
Retry-After within the call, then PublishThrottled; 5xx and transport errors → retried with backoff, then
PublishUnavailable. A 500 `woocommerce_rest_cannot_create_order_refund` is WooCommerce refusing the refund
(over the refundable amount, gateway cannot refund): PublishRejected. Redirects are not followed (a POST
turned into a GET would look like success): PublishRejected, the store URL needs fixing.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.order import Order
from chalicelib.domain.payment import stripe_intent
from chalicelib.domain.publishing import (
    Milestone,
    PublishRejected,
    PublishThrottled,
    PublishUnavailable,
)
from chalicelib.integrations.http import (
    HttpOptions,
    Retryable,
    json_body,
    no_jitter,
    retry_after,
    retryable_status,
)
from chalicelib.integrations.woocommerce.rest import WooCommerceRest
from chalicelib.integrations.woocommerce.return_refunds import refund_parts

logger = Logger(service="order-hub", child=True)
T = TypeVar("T")

USER_AGENT = "order-hub/1.0 (+woocommerce publisher)"
_PAYABLE = frozenset({"pending", "on-hold", "failed"})
_NOT_CANCELLABLE = frozenset({"cancelled", "refunded", "trash"})
# Shipping must not undo what came later or elsewhere: these are left as they are.
_NOT_COMPLETABLE = frozenset({"completed", "cancelled", "refunded", "trash", "failed"})
_REFUND_REFUSED = "woocommerce_rest_cannot_create_order_refund"
_REFUND_TRY_AGAIN = "Cannot create order refund, please try again."
_REFUNDS_PER_PAGE = 100


class WooCommercePublisher(WooCommerceRest):
    """One WooCommerce store's REST API v3, as a ChannelPublisher.

    Authenticates with the consumer key and secret as HTTP basic auth, which WooCommerce accepts over
    HTTPS only (plain HTTP needs OAuth 1.0a signatures, not implemented: such a site is refused here).
    `api_base` replaces the site's origin (HUB_WOOCOMMERCE_API_BASE: the local simulator).

    Each step (read, then write if needed) is tried at most `max_attempts` times: after a 429 it waits
    its Retry-After (when longer than `max_wait`, it gives up at once with PublishThrottled), after a
    5xx or a transport error `backoff` seconds doubling each time.
    """

    ERROR = PublishRejected
    # The unit of retry is a step (read, then write if needed), not one request: see _attempts.
    SPREAD = no_jitter

    def _refuse(
        self, site_url: str, auth: tuple[str, str], api_base: str | None, options: HttpOptions
    ) -> None:
        if not site_url or not all(auth):
            raise InvalidInput("a WooCommerce publisher needs the site URL, consumer key and consumer secret")
        if options.get("max_attempts", 1) < 1:
            raise InvalidInput("max_attempts must be at least 1")
        if api_base is None and urlsplit(site_url).scheme != "https":
            raise InvalidInput("WooCommerce accepts consumer keys as basic auth over HTTPS only")

    # ----- ChannelPublisher ------------------------------------------------------------------------------

    def publish(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        """Tell the store about one milestone of one of its orders; what it answered worth keeping."""
        if not order.external_id.isdigit():
            raise PublishRejected(f"not a WooCommerce order id: {order.external_id[:40]!r}")
        publishers: dict[str, Callable[[Order, Milestone], dict[str, Any]]] = {
            "paid": self._paid,
            "shipped": self._shipped,
            "delivered": self._delivered,
            "cancelled": self._cancelled,
            "refunded": self._refunded,
        }
        publisher = publishers.get(milestone.kind)
        if publisher is None:
            raise PublishRejected(f"WooCommerce has nothing to publish for a {milestone.kind!r} milestone")
        result = publisher(order, milestone)
        # The caller's handler appends the order's keys; here only what this call decided.
        logger.info(
            "published to WooCommerce",
            extra={
                "order_id": order.order_id,
                "milestone": milestone.kind,
                "publication_id": milestone.publication_id,
                **result,
            },
        )
        return {"order": order.external_id, "milestone": milestone.kind, **result}

    # ----- milestones -----------------------------------------------------------------------------------

    def _paid(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        return self._move(order.external_id, "processing", only_from=_PAYABLE)

    def _shipped(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        result = self._note(order.external_id, shipped_note(order, milestone), milestone, customer=True)
        if milestone.complete:
            moved = self._move(order.external_id, "completed", unless=_NOT_COMPLETABLE)
            result = {**result, **moved}
        return result

    def _delivered(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        return self._note(order.external_id, delivered_note(milestone), milestone, customer=False)

    def _cancelled(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        current = self._status(order.external_id)
        if current in _NOT_CANCELLABLE:
            return {"status": current, "changed": False}
        result: dict[str, Any] = {}
        if milestone.reason:
            text = f"Cancelled by order-hub: {milestone.reason}"
            result = self._note(order.external_id, text, milestone, customer=False)
        return {**result, **self._move(order.external_id, "cancelled", unless=_NOT_CANCELLABLE)}

    def _refunded(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        if milestone.return_id:
            return self._return_refunded(order, milestone)
        if not milestone.amount:
            raise PublishRejected(f"refund milestone {milestone.publication_id} carries no amount")
        body: dict[str, Any] = {"amount": milestone.amount, "api_refund": stripe_intent(order) is None}
        return self._refund_once(order, milestone.publication_id, body, milestone.reason)

    def _return_refunded(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        """A return's refund: its lines, restock and who moves the money (return_refunds.py)."""
        store_order = self._attempts(lambda: self._get(f"/orders/{order.external_id}"))
        parts = [
            self._refund_once(order, publication_id, body, milestone.reason or "Return")
            for publication_id, body in refund_parts(store_order, milestone)
        ]
        if len(parts) == 1:
            return parts[0]
        return {"refunds": parts, "replayed": all(p["replayed"] for p in parts)}

    def _refund_once(
        self, order: Order, publication_id: str, fields: dict[str, Any], reason: str | None
    ) -> dict[str, Any]:
        """POST the refund unless one carrying the publication's marker is there already."""
        marker = publication_marker(publication_id)
        body = {**fields, "reason": f"{reason or 'Refund'} {marker}"}
        path = f"/orders/{order.external_id}/refunds"

        def step() -> dict[str, Any]:
            for refund in self._get(path, params={"per_page": _REFUNDS_PER_PAGE}) or []:
                if _has_marker(refund.get("reason"), marker):
                    return {"refund_id": refund.get("id"), "replayed": True}
            created = self._request("POST", path, json=body)
            answer = {"refund_id": created.get("id"), "amount": created.get("amount", body["amount"])}
            return {**answer, "api_refund": body["api_refund"], "replayed": False}

        return self._attempts(step)

    # ----- steps -----------------------------------------------------------------------------------------

    def _note(self, external_id: str, text: str, milestone: Milestone, *, customer: bool) -> dict[str, Any]:
        """Add a note carrying the publication's marker unless the order already has one."""
        marker = publication_marker(milestone.publication_id)
        path = f"/orders/{external_id}/notes"

        def step() -> dict[str, Any]:
            for note in self._get(path) or []:
                if _has_marker(note.get("note"), marker):
                    return {"note_id": note.get("id"), "replayed": True}
            created = self._request(
                "POST", path, json={"note": f"{text}\n{marker}", "customer_note": customer}
            )
            return {"note_id": created.get("id"), "replayed": False}

        return self._attempts(step)

    def _move(
        self,
        external_id: str,
        status: str,
        *,
        only_from: frozenset[str] | None = None,
        unless: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Set the order's status when it is in `only_from` (any, if None) and not in `unless`."""

        def step() -> dict[str, Any]:
            current = self._status(external_id)
            if current == status or current in unless or (only_from is not None and current not in only_from):
                return {"status": current, "changed": False}
            updated = self._request("PUT", f"/orders/{external_id}", json={"status": status})
            return {"status": updated.get("status", status), "changed": True}

        return self._attempts(step)

    def _status(self, external_id: str) -> str:
        order = self._attempts(lambda: self._get(f"/orders/{external_id}"))
        return str(order.get("status", "")).removeprefix("wc-")

    def _attempts(self, step: Callable[[], T]) -> T:
        return self._http.policy.call(step, give_up=_give_up)

    # ----- HTTP -------------------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._request("GET", path, params=params)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> Any:
        what = f"WooCommerce {method} {path}"
        try:
            response = self._http.exchange(
                what,
                method,
                self._base + path,
                params=params,
                json=json,
                auth=self._auth,
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                allow_redirects=False,
            )
        except Retryable as exc:
            exc.why = f"{what}: {exc.why}"
            raise
        status = response.status_code
        body = json_body(response)
        if 200 <= status < 300:
            if body is None:
                raise Retryable(f"{what}: {status} without a JSON body", status=status)
            return body
        code, message = _error_of(body)
        detail = self._http.redact(f"{what}: {status} {code or 'error'}: {message or response.reason}")
        if status == 500 and code == _REFUND_REFUSED and message != _REFUND_TRY_AGAIN:
            raise PublishRejected(detail)
        retry = retryable_status(response, detail)
        if retry is None and status >= 500:
            retry = Retryable(detail, status=status, delay=retry_after(response))
        if retry is not None:
            raise retry
        if 300 <= status < 400:
            raise PublishRejected(f"{what}: redirected ({status}); check the store's URL")
        raise PublishRejected(detail)


def _give_up(operation: str | None, failure: Retryable, attempts: int, wait: float) -> Exception:
    if failure.throttled:
        return PublishThrottled(failure.why, retry_after=wait)
    return PublishUnavailable(failure.why)


# ----- note texts -------------------------------------------------------------------------------------------


def publication_marker(publication_id: str) -> str:
    """What a note or refund written for a publication carries, so that it is written once."""
    return f"[order-hub {publication_id}]"


def shipped_note(order: Order, milestone: Milestone) -> str:
    """The customer-visible note: carriers and tracking numbers, the lines shipped, partial or not."""
    by_carrier: dict[str, list[str]] = {}
    for parcel in milestone.parcels:
        carrier = str(parcel.get("carrier") or "the carrier")
        number = parcel.get("tracking_number")
        numbers = by_carrier.setdefault(carrier, [])
        if number and str(number) not in numbers:
            numbers.append(str(number))
    if by_carrier:
        parts = [f"{c}, tracking {', '.join(n)}" if n else c for c, n in by_carrier.items()]
        text = "Shipped with " + "; and with ".join(parts) + "."
    else:
        text = "Shipped."
    titles = {line.line_id: line.title for line in order.lines}
    items = [
        f"{int(row.get('quantity') or 0)} × {titles.get(str(row.get('line_id')), 'item')}"
        for row in milestone.lines
    ]
    if items:
        text += " Items: " + ", ".join(items) + "."
    if not milestone.complete:
        text += " This is a partial shipment: the rest of your order will follow separately."
    return text


def delivered_note(milestone: Milestone) -> str:
    parcels = ", ".join(
        f"{p.get('carrier') or 'carrier'} {p.get('tracking_number')}"
        for p in milestone.parcels
        if p.get("tracking_number")
    )
    when = milestone.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"Delivered on {when}" + (f" ({parcels})." if parcels else ".")


# ----- helpers ----------------------------------------------------------------------------------------------


def _has_marker(text: object, marker: str) -> bool:
    # WordPress may hand back note content HTML-escaped; compare what it says, not how it is encoded.
    return isinstance(text, str) and marker in html.unescape(text)


def _error_of(body: Any) -> tuple[str | None, str | None]:
    if isinstance(body, Mapping):
        code, message = body.get("code"), body.get("message")
        return (str(code) if code else None, str(message)[:300] if message else None)
    return None, None
