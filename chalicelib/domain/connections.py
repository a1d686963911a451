"""Store connections: which stores the hub listens to, and where each one's secrets live."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from chalicelib.domain.errors import InvalidInput, NotFound

CHANNELS = ("shopify", "woocommerce", "amazon")
# Payment accounts are registered the same way; the hub uses one Stripe account per deployment.
PAYMENT_PROVIDERS = ("stripe",)
STRIPE_ACCOUNT = "default"
CARRIER_ACCOUNT = "default"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ShopifyConnection(_Body):
    channel: Literal["shopify"]
    store: str = Field(min_length=1, max_length=255)
    webhook_secret: str = Field(min_length=1)
    access_token: str = Field(min_length=1)

    @field_validator("store")
    @classmethod
    def _shop_domain(cls, value: str) -> str:
        return normalise_store("shopify", value)


class WooCommerceConnection(_Body):
    channel: Literal["woocommerce"]
    store: str = Field(min_length=1, max_length=500)
    webhook_secret: str = Field(min_length=1)
    consumer_key: str = Field(min_length=1)
    consumer_secret: str = Field(min_length=1)

    @field_validator("store")
    @classmethod
    def _site_url(cls, value: str) -> str:
        return normalise_store("woocommerce", value)


class AmazonConnection(_Body):
    channel: Literal["amazon"]
    store: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z0-9]+$")
    marketplace_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9]+$")
    lwa_client_id: str = Field(min_length=1)
    lwa_client_secret: str = Field(min_length=1)
    refresh_token: str = Field(min_length=1)


class StripeConnection(_Body):
    """The Stripe account the hub takes payments with: its secret key and its webhook endpoint's secret."""

    channel: Literal["stripe"]
    store: Literal["default"] = "default"
    secret_key: str = Field(min_length=1, pattern=r"^(sk|rk)_(test|live)_")
    webhook_secret: str = Field(min_length=1, pattern=r"^whsec_")


class ThreePLConnection(_Body):
    """A 3PL provider; store = its name, as in HUB_FULFILMENT_POLICY and /webhooks/3pl/{provider}."""

    channel: Literal["3pl"]
    store: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    api_key: str = Field(min_length=1)
    webhook_secret: str = Field(min_length=1)


class EasyPostConnection(_Body):
    """The EasyPost account that tracks parcels (trackers, and the webhook's HMAC secret)."""

    channel: Literal["easypost"]
    store: Literal["default"] = "default"
    api_key: str = Field(min_length=1)
    webhook_secret: str = Field(min_length=1)


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
        host = (urlsplit(value).hostname if "://" in value else value.split("/")[0]) or ""
        host = host.lower()
        if not host.endswith(".myshopify.com") or host == ".myshopify.com":
            raise ValueError("a Shopify store is its <shop>.myshopify.com domain")
        return host
    if channel == "woocommerce":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a WooCommerce store is its site URL, as sent in X-WC-Webhook-Source")
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        netloc = parts.hostname.lower() + (f":{parts.port}" if parts.port else "")
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


def parse_connection(body: Any) -> AnyConnection:
    try:
        parsed: AnyConnection = _BODY.validate_python(body)
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
) -> tuple[Connection, bool]:
    """Register (or re-register, rotating its secrets) a store. Returns the connection and is-new."""
    parsed = parse_connection(body)
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
        settings={k: str(v) for k, v in data.items()},
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
