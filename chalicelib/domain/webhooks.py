"""Webhook senders described as data: whose delivery it is, how it is verified, which events it carries.

Each integration declares one `WebhookSpec` beside its parser (`SHOPIFY_WEBHOOK`, `STRIPE_WEBHOOK`, ...);
one pipeline (`chalicelib/entrypoints/intake.py`) runs any of them, so every sender is refused, ignored
and accepted the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.json_reader import JsonRefused, JsonSyntaxError, read_json


class NotJson:
    """The parsed body of a delivery whose bytes are not JSON the hub accepts. `refused` names a broken
    limit (nesting, number, NaN, byte order mark, encoding, size): the pipeline answers 400 with it before
    any reader runs. Plain syntax errors are left to each reader to say its own way."""

    def __init__(self, refused: str | None = None) -> None:
        self.refused = refused

    def __repr__(self) -> str:
        return "NOT_JSON" if self.refused is None else f"NOT_JSON({self.refused})"


NOT_JSON: Any = NotJson()


def load_json(raw: bytes) -> Any:
    """The body as JSON (`json_reader.read_json`: the hub's one reader, with its limits), or a NotJson."""
    try:
        return read_json(raw)
    except JsonSyntaxError:
        return NOT_JSON
    except JsonRefused as exc:
        return NotJson(str(exc))


def json_object(body: Any, what: str) -> dict[str, Any]:
    """A parsed body that must be a JSON object; otherwise InvalidInput naming `what`."""
    if isinstance(body, NotJson):
        raise InvalidInput(f"{what}: {body.refused or 'the body is not JSON'}")
    if not isinstance(body, dict):
        raise InvalidInput(f"{what}: the body is not a JSON object")
    return body


@dataclass(frozen=True)
class WebhookRequest:
    """One delivery as received: its exact bytes, its headers (lower-case names), the route's parameters,
    and its body parsed once (`NOT_JSON` when it is not JSON)."""

    raw: bytes
    headers: Mapping[str, str]
    params: Mapping[str, str] = field(default_factory=dict)
    body: Any = NOT_JSON

    @classmethod
    def of(cls, raw: bytes, headers: Mapping[str, str], params: Mapping[str, str] | None) -> WebhookRequest:
        return cls(raw=raw, headers=headers, params=dict(params or {}), body=load_json(raw))

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""


@dataclass(frozen=True)
class WebhookEvent:
    """What a sender's reader makes of a verified delivery: the topic, the hub's delivery id (the sender's
    event id, so repeats collapse) and the id of what it is about (None: nothing the hub follows)."""

    topic: str
    delivery_id: str
    external_id: str | None


# The store key a delivery names (a header, a path parameter, or the one account of the deployment).
AccountOf = Callable[[WebhookRequest], str]
# (webhook secret, raw body, headers, now) → whether the sender signed exactly these bytes.
Verify = Callable[[str, bytes, Mapping[str, str], datetime], bool]
# (store, request) → the event; InvalidInput (its message is the 400's) when the body is not one.
Read = Callable[[str, WebhookRequest], WebhookEvent]


@dataclass(frozen=True)
class WebhookSpec:
    """One sender's webhook, declared: the pipeline runs these steps in this order.

    size → `is_ping` (answered 200 unsigned) → `account` (401 `unknown_store` when not connected) →
    `verify` (401) → `early_topic` filter (before reading the body) → `read` (400) → `handles` filter
    (unhandled: 200 `ignored_message`, counted) → for `order_topics`, the channel's normaliser and the
    canonical order's rules on the body (400, as ingestion would refuse it) → the delivery, grouped by
    channel, store and external id.
    """

    channel: str
    account: AccountOf
    unknown_store: str  # the 401's message when no connection matches
    verify: Verify
    read: Read
    handles: Callable[[str], bool]
    early_topic: Callable[[WebhookRequest], str | None] | None = None  # None: known after `read` only
    ignored_message: str = "event type not handled"
    ignored_key: str = "type"  # the answer's field that names the ignored topic
    is_ping: Callable[[WebhookRequest], bool] | None = None
    # Topics whose body is a whole order: normalised and validated before the answer (pure, no I/O).
    # Refunds, bare deletions and other notices are not orders and are left to ingestion.
    order_topics: frozenset[str] = frozenset()


def from_header(name: str) -> AccountOf:
    """The store is named by a header (lower-case name)."""
    return lambda request: request.header(name)


def from_path(name: str) -> AccountOf:
    """The store is named by the route's path parameter `name`."""
    return lambda request: request.params.get(name, "")


def fixed(account: str) -> AccountOf:
    """The sender has one account per deployment."""
    return lambda request: account


def signature_in(header: str, check: Callable[[str, bytes, str | None], bool]) -> Verify:
    """Verified by `check(secret, raw body, the header's value)` (lower-case header name)."""
    return lambda secret, raw, headers, now: check(secret, raw, headers.get(header))


def timestamped_signature_in(header: str, check: Callable[..., bool]) -> Verify:
    """Verified by `check(secret, raw body, the header's value, now=unix seconds)`: signed with a time."""
    return lambda secret, raw, headers, now: check(secret, raw, headers.get(header), now=now.timestamp())
