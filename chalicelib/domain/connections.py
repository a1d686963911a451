"""Store connections: which stores the hub listens to, and where each one's secrets live."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.hosts import HostRefused, check_hostname, check_url
from chalicelib.domain.order import Address

CHANNELS = ("shopify", "woocommerce", "amazon")
# Payment accounts are registered the same way; the hub uses one Stripe account per deployment.
PAYMENT_PROVIDERS = ("stripe",)
STRIPE_ACCOUNT = "default"
CARRIER_ACCOUNT = "default"


# Each secret value, at most (Secrets Manager holds 64 KB per secret; no credential here comes near this).
MAX_SECRET_CHARS = 4096


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable (no control, line-break or formatting characters)")
    return value


# A credential: 1 to 4,096 printable characters.
Secret = Annotated[str, Field(min_length=1, max_length=MAX_SECRET_CHARS), AfterValidator(_printable)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ShopifyConnection(_Body):
    channel: Literal["shopify"]
    store: str = Field(min_length=1, max_length=255)
    webhook_secret: Secret
    access_token: Secret

    @field_validator("store")
    @classmethod
    def _shop_domain(cls, value: str) -> str:
        return normalise_store("shopify", value)


class WooCommerceConnection(_Body):
    channel: Literal["woocommerce"]
    store: str = Field(min_length=1, max_length=500)
    webhook_secret: Secret
    consumer_key: Secret
    consumer_secret: Secret

    @field_validator("store")
    @classmethod
    def _site_url(cls, value: str, info: ValidationInfo) -> str:
        # The hub calls this URL (reconciliation, publishing): a public https host, unless the local stack
        # allows its own (HUB_ALLOW_PRIVATE_HOSTS); checked again, resolved, on every call.
        allow_private = bool((info.context or {}).get("allow_private_hosts"))
        try:
            check_url(value.strip(), allow_private=allow_private)
        except HostRefused as exc:
            raise ValueError(f"a WooCommerce store is its public https site URL: {exc}") from None
        return normalise_store("woocommerce", value)


class AmazonConnection(_Body):
    channel: Literal["amazon"]
    store: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z0-9]+$")
    marketplace_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9]+$")
    lwa_client_id: Secret
    lwa_client_secret: Secret
    refresh_token: Secret


class StripeConnection(_Body):
    """The Stripe account the hub takes payments with: its secret key and its webhook endpoint's secret."""

    channel: Literal["stripe"]
    store: Literal["default"] = "default"
    secret_key: Annotated[Secret, Field(pattern=r"^(sk|rk)_(test|live)_")]
    webhook_secret: Annotated[Secret, Field(pattern=r"^whsec_")]


class ThreePLConnection(_Body):
    """A 3PL provider; store = its name, as in the fulfilment_policy setting and /webhooks/3pl/{provider};
    api_base = its API's base URL (a merchant's 3PL has no public endpoint the hub could default to)."""

    channel: Literal["3pl"]
    store: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    api_base: str = Field(min_length=1, max_length=500)
    api_key: Secret
    webhook_secret: Secret

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str, info: ValidationInfo) -> str:
        # The hub calls it with the API key: a public https host, unless the local stack allows its own
        # simulators (HUB_ALLOW_PRIVATE_HOSTS); checked again, resolved, on every call.
        allow_private = bool((info.context or {}).get("allow_private_hosts"))
        try:
            parts = check_url(value, allow_private=allow_private)
        except HostRefused as exc:
            raise ValueError(f"a 3PL's api_base is its https API URL: {exc}") from None
        if parts.query or parts.fragment:
            raise ValueError("a 3PL's api_base has no query or fragment")
        return value.rstrip("/")


class EasyPostConnection(_Body):
    """The EasyPost account that tracks parcels (trackers, and the webhook's HMAC secret) and buys return
    labels; `return_address` (optional): where returns go when their warehouse has no address in
    the fulfilment_policy setting (kept as JSON text in the connection's settings)."""

    channel: Literal["easypost"]
    store: Literal["default"] = "default"
    api_key: Secret
    webhook_secret: Secret
    return_address: Address | None = None


AnyConnection = (
    ShopifyConnection
    | WooCommerceConnection
    | AmazonConnection
    | StripeConnection
    | ThreePLConnection
    | EasyPostConnection
)
ConnectionBody = Annotated[AnyConnection, Field(discriminator="channel")]
_BODY = TypeAdapter(ConnectionBody)


def connection_body_schema() -> dict[str, Any]:
    """The JSON Schema of `POST /api/connections`' body (one shape per channel), for the API's document."""
    return _BODY.json_schema()


# Fields of each body that are secrets: they go to Secrets Manager and nowhere else.
SECRET_FIELDS = {
    "shopify": ("webhook_secret", "access_token"),
    "woocommerce": ("webhook_secret", "consumer_key", "consumer_secret"),
    "amazon": ("lwa_client_id", "lwa_client_secret", "refresh_token"),
    "stripe": ("secret_key", "webhook_secret"),
    "3pl": ("api_key", "webhook_secret"),
    "easypost": ("api_key", "webhook_secret"),
}


def normalise_store(channel: str, store: str) -> str:
    """The one spelling of a store that webhooks, lookups and ids agree on."""
    value = store.strip()
    if channel == "shopify":
        netloc = urlsplit(value).netloc if "://" in value else value.split("/")[0]
        try:
            host = check_hostname(netloc) if "@" not in netloc and ":" not in netloc else ""
        except HostRefused:
            host = ""
        if not host.endswith(".myshopify.com") or host == ".myshopify.com":
            raise ValueError("a Shopify store is its <shop>.myshopify.com domain")
        return host
    if channel == "woocommerce":
        try:
            parts = check_url(value, allow_private=True)  # the scheme and address rules: at registration
        except HostRefused as exc:
            raise ValueError(
                f"a WooCommerce store is its site URL, as sent in X-WC-Webhook-Source: {exc}"
            ) from None
        if parts.query or parts.fragment:
            raise ValueError("a WooCommerce store's site URL has no query or fragment")
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        host = (parts.hostname or "").lower()
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        return f"{parts.scheme}://{netloc}{path}"
    return value


def connection_id(channel: str, store: str) -> str:
    return "con_" + hashlib.sha256(f"{channel}\x1f{store}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Connection:
    connection_id: str
    channel: str
    store: str
    secret_ref: str
    created_at: datetime
    settings: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What the API shows: never the secrets, never where they live."""
        return {
            "connection_id": self.connection_id,
            "channel": self.channel,
            "store": self.store,
            "created_at": self.created_at.isoformat(),
            **self.settings,
        }


class ConnectionRepository(Protocol):
    def put(self, connection: Connection) -> bool:
        """Store it; True when it is new, False when it replaced an existing one."""
        ...

    def get(self, channel: str, store: str) -> Connection | None: ...

    def get_by_id(self, connection_id: str) -> Connection | None: ...

    def list(self) -> list[Connection]: ...

    def delete(self, connection: Connection) -> None: ...


class SecretStore(Protocol):
    def put(self, name: str, value: dict[str, str]) -> str:
        """Create or overwrite a secret; returns its reference (ARN)."""
        ...

    def get(self, ref: str) -> dict[str, str]: ...

    def delete(self, ref: str) -> None: ...


def parse_connection(body: Any, *, allow_private_hosts: bool = False) -> AnyConnection:
    """The body as a connection, or InvalidInput naming each problem (never a value: it may be a secret).
    `allow_private_hosts`: a store URL may name a loopback or private host (the local stack only)."""
    try:
        parsed: AnyConnection = _BODY.validate_python(
            body, context={"allow_private_hosts": allow_private_hosts}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInput(problems) from None  # `from None`: the input may hold secrets
    return parsed


def register(
    body: Any,
    *,
    connections: ConnectionRepository,
    secrets: SecretStore,
    secret_prefix: str,
    now: Callable[[], datetime],
    allow_private_hosts: bool = False,
) -> tuple[Connection, bool]:
    """Register (or re-register, rotating its secrets) a store. Returns the connection and is-new."""
    parsed = parse_connection(body, allow_private_hosts=allow_private_hosts)
    data = parsed.model_dump()
    channel, store = data.pop("channel"), data.pop("store")
    secret_values = {name: data.pop(name) for name in SECRET_FIELDS[channel]}
    cid = connection_id(channel, store)
    existing = connections.get(channel, store)
    ref = secrets.put(f"{secret_prefix}{cid}", secret_values)
    connection = Connection(
        connection_id=cid,
        channel=channel,
        store=store,
        secret_ref=ref,
        created_at=existing.created_at if existing else now(),
        settings={
            k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in data.items() if v is not None
        },
    )
    return connection, connections.put(connection)


def remove(connection_id_: str, *, connections: ConnectionRepository, secrets: SecretStore) -> None:
    connection = connections.get_by_id(connection_id_)
    if connection is None:
        raise NotFound(f"connection {connection_id_} does not exist")
    connections.delete(connection)
    secrets.delete(connection.secret_ref)


def credentials(
    channel: str, store: str, *, connections: ConnectionRepository, secrets: SecretStore
) -> tuple[Connection, dict[str, str]] | None:
    """The connection and its secrets for a store, or None when the hub does not know the store."""
    try:
        normalised = normalise_store(channel, store)
    except ValueError:
        return None
    connection = connections.get(channel, normalised)
    if connection is None:
        return None
    return connection, secrets.get(connection.secret_ref)
