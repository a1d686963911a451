"""The composition root's factories: each vendor's client per connection and credentials (cached), and the
integrations' functions the services hand out, imported on first use (a function loads only what it uses)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from chalicelib import resources
from chalicelib.settings import ConfigurationError, Settings

if TYPE_CHECKING:  # the domain's types only: a function imports the domain modules its work needs
    from chalicelib.domain.channel_events import ChannelEvent
    from chalicelib.domain.connections import Connection, ConnectionRepository, SecretStore
    from chalicelib.domain.fraud_signals import FraudSignals
    from chalicelib.domain.fulfilment import FulfilmentPolicy, ThreePL, ThreePLUpdate, TrackingUpdate
    from chalicelib.domain.ingest import Normaliser
    from chalicelib.domain.order import Order
    from chalicelib.domain.payment import ChannelCapturer
    from chalicelib.domain.payment_gateway import PaymentGateway
    from chalicelib.domain.publishing import ChannelPublisher
    from chalicelib.domain.returns.events import ReturnEvent
    from chalicelib.domain.returns.ports import ReturnLabels, ReturnsDesk, ReturnsReport

# The hub's own channel (domain.manual_channel.CHANNEL, a test keeps them equal): named here so that
# listing the normalisers imports none of them.
MANUAL = "manual"

T = TypeVar("T")


class CredentialCache(Generic[T]):
    """Clients built from a connection's credentials, kept per connection and secret version: a client's
    token cache, pacing and throttle bucket persist between calls, and a rotated secret builds a new one."""

    def __init__(self, build: Callable[[Connection, dict[str, str]], T], *, keep_one: bool = False) -> None:
        self._build = build
        self._keep_one = keep_one  # a single account (Stripe, EasyPost): drop the client of an older key
        self._clients: dict[str, T] = {}

    def get(self, connection: Connection, secrets: dict[str, str]) -> T:
        fingerprint = hashlib.sha256(repr(sorted(secrets.items())).encode()).hexdigest()
        key = f"{connection.connection_id}:{fingerprint}"
        client = self._clients.get(key)
        if client is None:
            client = self._build(connection, secrets)
            self._clients = {key: client} if self._keep_one else {**self._clients, key: client}
        return client


class ConnectedClients:
    """The vendor clients of the connected accounts and stores, each built once per credentials."""

    def __init__(
        self,
        settings: Settings,
        connections: ConnectionRepository,
        secrets: SecretStore,
        *,
        fulfilment_policy: Callable[[], FulfilmentPolicy],
    ) -> None:
        self._settings = settings
        self._connections = connections
        self._secrets = secrets
        self._fulfilment_policy = fulfilment_policy
        self.spapi = CredentialCache(lambda c, s: _spapi_client(settings, c, s))
        self._stripe = CredentialCache(lambda c, s: _stripe_client(settings, s), keep_one=True)
        self._threepl = CredentialCache(_threepl_client)
        self._easypost = CredentialCache(lambda c, s: _easypost_client(settings, s), keep_one=True)
        self._shopify = CredentialCache(lambda c, s: _shopify_admin(settings, c, s))
        self._publishers: CredentialCache[ChannelPublisher | None] = CredentialCache(self._publisher)

    def _connected(self, channel: str, store: str, missing: str) -> tuple[Connection, dict[str, str]]:
        from chalicelib.domain.connections import credentials

        found = credentials(channel, store, connections=self._connections, secrets=self._secrets)
        if found is None:
            raise ConfigurationError(missing)
        return found

    def payments(self) -> PaymentGateway:
        from chalicelib.domain.connections import STRIPE_ACCOUNT

        missing = "no Stripe account connected (POST /api/connections channel stripe)"
        return self._stripe.get(*self._connected("stripe", STRIPE_ACCOUNT, missing))

    def threepl(self, provider: str) -> ThreePL:
        return self._threepl.get(
            *self._connected("3pl", provider, f"no 3PL connection for provider {provider!r}")
        )

    def returns_desk(self, provider: str) -> ReturnsDesk:
        """The 3PL provider's returns desk: its client (ThreePLClient announces returns too)."""
        return cast("ReturnsDesk", self.threepl(provider))

    def return_labels(self) -> ReturnLabels:
        """Return labels bought with the connected EasyPost account, addressed to the warehouses of the
        fulfilment_policy setting (else the connection's `return_address`)."""
        from chalicelib.domain.connections import CARRIER_ACCOUNT
        from chalicelib.integrations.easypost.returns import (
            EasyPostReturnLabels,
            connection_return_address,
            warehouse_addresses,
        )

        missing = "no EasyPost account connected (POST /api/connections channel easypost)"
        connection, secrets = self._connected("easypost", CARRIER_ACCOUNT, missing)
        policy = self._fulfilment_policy()
        return EasyPostReturnLabels(
            self._easypost.get(connection, secrets),
            warehouses=warehouse_addresses(policy.warehouses),
            default_address=connection_return_address(connection.settings),
        )

    def register(self, tracking_number: str, carrier: str) -> None:
        """Trackers: registers parcels with the connected EasyPost account."""
        from chalicelib.domain.connections import CARRIER_ACCOUNT

        missing = "no EasyPost account connected (POST /api/connections channel easypost)"
        self._easypost.get(*self._connected("easypost", CARRIER_ACCOUNT, missing)).create_tracker(
            tracking_number, carrier
        )

    def shopify(self, store: str) -> Any:
        return self._shopify.get(*self._connected("shopify", store, f"no Shopify connection for {store}"))

    def capturer(self, order: Order) -> ChannelCapturer | None:
        from chalicelib.integrations.shopify.capture import ShopifyCapture

        return ShopifyCapture(self.shopify(order.store)) if order.channel == "shopify" else None

    def publisher_for(self, order: Order) -> ChannelPublisher | None:
        """The channel publisher of an order's store, built from its connection (None: not connected)."""
        from chalicelib.domain.connections import credentials

        if order.channel == "shopify":
            from chalicelib.integrations.shopify.publisher import ShopifyPublisher

            return ShopifyPublisher(self.shopify(order.store))
        found = credentials(order.channel, order.store, connections=self._connections, secrets=self._secrets)
        return None if found is None else self._publishers.get(*found)

    def _publisher(self, connection: Connection, secrets: dict[str, str]) -> ChannelPublisher | None:
        if connection.channel == "woocommerce":
            from chalicelib.integrations.woocommerce.publisher import WooCommercePublisher

            return WooCommercePublisher(
                connection.store,
                secrets["consumer_key"],
                secrets["consumer_secret"],
                api_base=self._settings.woocommerce_api_base,
            )
        if connection.channel == "amazon":
            from chalicelib.integrations.amazon.publisher import AmazonPublisher

            client = self.spapi.get(connection, secrets)
            return AmazonPublisher(client, connection.settings.get("marketplace_id", ""))
        return None

    def returns_report(self, connection: Connection) -> ReturnsReport:
        """A connected Amazon store's returns report (Reports API, with the store's SP-API client)."""
        from chalicelib.integrations.amazon.returns_report import AmazonReturnsReport

        if connection.channel != "amazon":
            raise ConfigurationError(f"no returns report for channel {connection.channel!r}")
        client = self.spapi.get(connection, self._secrets.get(connection.secret_ref))
        # Polling fits inside the schedule function's timeout; a report not ready by then is asked for
        # again on the next run (the cursor does not move).
        return AmazonReturnsReport(
            client,
            connection.store,
            connection.settings.get("marketplace_id", ""),
            patience=REPORT_PATIENCE_SECONDS,
        )

    def fraud_signals(self, order: Order) -> FraudSignals:
        from chalicelib.domain.fraud_signals import outside_signals

        return outside_signals(
            order,
            shopify_risk=lambda o: self.shopify(o.store).order_risk(o.external_id),
            payments=self.payments,
            unavailable=_signal_unavailable,
            unreachable=(ConfigurationError,),
        )


# Seconds one store's returns report is polled for: a third of the function's timeout.
REPORT_PATIENCE_SECONDS = resources.DEFAULT_FUNCTION_TIMEOUT_SECONDS / 3


def _signal_unavailable(order_id: str, source: str, error: str) -> None:
    from chalicelib.observability import logger

    logger.warning("fraud signal unavailable", extra={"order_id": order_id, "source": source, "error": error})


def _spapi_client(settings: Settings, connection: Connection, secrets: dict[str, str]) -> Any:
    from chalicelib.integrations.amazon.spapi import LWA_TOKEN_URL, SpApiClient, endpoint_for_marketplace

    marketplace = connection.settings.get("marketplace_id", "")
    return SpApiClient(
        endpoint=settings.amazon_spapi_endpoint or endpoint_for_marketplace(marketplace),
        lwa_endpoint=settings.amazon_lwa_endpoint or LWA_TOKEN_URL,
        client_id=secrets["lwa_client_id"],
        client_secret=secrets["lwa_client_secret"],
        refresh_token=secrets["refresh_token"],
    )


def _stripe_client(settings: Settings, secrets: dict[str, str]) -> PaymentGateway:
    from chalicelib.integrations.stripe.payments import StripePayments

    return StripePayments(secrets["secret_key"], api_base=settings.stripe_api_base)


def _threepl_client(connection: Connection, secrets: dict[str, str]) -> ThreePL:
    """A 3PL provider's client: its API base from its connection (a 3PL has no public endpoint of its own),
    its API key from the connection's secret."""
    from chalicelib.integrations.threepl.client import ThreePLClient

    api_base = connection.settings.get("api_base")
    if not api_base:
        raise ConfigurationError(
            f"the 3PL connection {connection.store!r} has no api_base: register it again with its API URL"
        )
    # Its refusals are the domain's own (AlreadyShipped is an AlreadyShippedError, HandedToCarrier a
    # RecallRefused): nothing to translate.
    return ThreePLClient(api_base, secrets["api_key"])


def _easypost_client(settings: Settings, secrets: dict[str, str]) -> Any:
    from chalicelib.integrations.easypost.client import EasyPostClient

    return EasyPostClient(secrets["api_key"], api_base=settings.carrier_api_base)


def _shopify_admin(settings: Settings, connection: Connection, secrets: dict[str, str]) -> Any:
    from chalicelib.integrations.shopify.admin import ShopifyAdmin

    return ShopifyAdmin(connection.store, secrets["access_token"], api_base=settings.shopify_api_base)


def _shopify_event(topic: str, payload: dict[str, Any], store: str) -> ChannelEvent:
    from chalicelib.integrations.shopify.webhook import parse_shopify

    return parse_shopify(topic, payload, store)


def _woocommerce_event(topic: str, payload: dict[str, Any], store: str) -> ChannelEvent:
    from chalicelib.integrations.woocommerce.orders import woocommerce_event

    return woocommerce_event(topic, payload, store)


def _amazon_event(topic: str, payload: dict[str, Any], store: str) -> ChannelEvent:
    from chalicelib.integrations.amazon.orders import amazon_event

    return amazon_event(topic, payload, store)


def threepl_update(payload: dict[str, Any]) -> ThreePLUpdate:
    from chalicelib.integrations.threepl import updates

    return updates.threepl_update(payload)


def no_returns_desk(provider: str) -> ReturnsDesk:
    raise ConfigurationError(f"no 3PL returns desk configured for {provider}")


def no_return_labels() -> ReturnLabels:
    raise ConfigurationError("no carrier account for return labels configured")


def return_event(payload: dict[str, Any], provider: str) -> ReturnEvent:
    """A verified 3PL return event (`return.received` / `return.inspected`) from `provider`."""
    from chalicelib.integrations.threepl import returns

    return returns.return_event(payload, provider)


def tracking_update(payload: dict[str, Any]) -> TrackingUpdate:
    from chalicelib.integrations.easypost import updates

    return updates.tracking_update(payload)


def amazon_notification(body: dict[str, Any]) -> Any:
    from chalicelib.integrations.amazon.notifications import parse_order_change_notification

    return parse_order_change_notification(body)


def amazon_order(client: Any, amazon_order_id: str) -> dict[str, Any]:
    from chalicelib.integrations.amazon.orders import fetch_order

    return fetch_order(client, amazon_order_id)


def _manual_event(topic: str, payload: dict[str, Any], store: str) -> ChannelEvent:
    from chalicelib.domain.ingest import normalise_manual_event

    return normalise_manual_event(topic, payload, store)


def channel_normalisers() -> dict[str, Normaliser]:
    """Channel → its integration's normaliser (imported on first use: a function loads only its channels)."""
    return {
        MANUAL: _manual_event,
        "shopify": _shopify_event,
        "woocommerce": _woocommerce_event,
        "amazon": _amazon_event,
    }
