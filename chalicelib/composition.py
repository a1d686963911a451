"""Composition root: wires real adapters for Lambda and the local stack; tests swap in fakes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib import resources
from chalicelib.domain.cancellation import Compensator
from chalicelib.domain.channel_events import ChannelEvent
from chalicelib.domain.connections import Connection, ConnectionRepository, SecretStore
from chalicelib.domain.fraud import FraudPolicy, FraudSignals, VelocityCounter
from chalicelib.domain.fulfilment import (
    FulfilmentCompensator,
    FulfilmentPolicy,
    FulfilmentStore,
    ThreePL,
    ThreePLUpdate,
    Trackers,
    TrackingUpdate,
)
from chalicelib.domain.ingest import Normaliser, Normalisers, normalise_manual_event
from chalicelib.domain.manual_channel import CHANNEL as MANUAL
from chalicelib.domain.order import Order, utcnow
from chalicelib.domain.payment import ChannelCapture, ChannelCapturer, PaymentCompensator, PaymentPolicy
from chalicelib.domain.payment_gateway import PaymentGateway
from chalicelib.domain.ports import (
    DeliveryQueue,
    Heartbeats,
    OrderRepository,
    RawArchive,
    WorkflowStarter,
)
from chalicelib.domain.publishing import ChannelPublisher
from chalicelib.domain.reconciliation import ChannelPull, ReconciliationStore
from chalicelib.observability import use_count_sink
from chalicelib.settings import ConfigurationError, Settings, get_settings

if TYPE_CHECKING:
    from datetime import timedelta

    from chalicelib.adapters.plumbing import AwsPlumbing
    from chalicelib.adapters.status_board import DynamoStatusBoard
    from chalicelib.domain.order import OrderStatus


def _no_payments() -> PaymentGateway:
    raise ConfigurationError("no payment gateway configured")


def _no_threepl(provider: str) -> ThreePL:
    raise ConfigurationError(f"no 3PL client configured for {provider}")


class _NoTrackers:
    def register(self, tracking_number: str, carrier: str) -> None:
        raise ConfigurationError("no carrier tracking configured")


# How long a publisher holds a milestone it is telling the channel: well beyond the function's timeout, so
# only the claim of a publisher that died (timed out, crashed) ever lapses.
PUBLISH_CLAIM_SECONDS = 6 * resources.DEFAULT_FUNCTION_TIMEOUT_SECONDS


def _shopify_event(topic: str, payload: dict[str, Any], store: str) -> ChannelEvent:
    from chalicelib.integrations.shopify.webhook import parse_shopify

    return parse_shopify(topic, payload, store)


def _woocommerce_event(topic: str, payload: dict[str, Any], store: str) -> ChannelEvent:
    from chalicelib.integrations.woocommerce.orders import woocommerce_event

    return woocommerce_event(topic, payload, store)


def _amazon_event(topic: str, payload: dict[str, Any], store: str) -> ChannelEvent:
    from chalicelib.integrations.amazon.orders import amazon_event

    return amazon_event(topic, payload, store)


def _threepl_update(raw: bytes) -> ThreePLUpdate:
    from chalicelib.integrations.threepl.updates import threepl_update

    return threepl_update(raw)


def _tracking_update(raw: bytes) -> TrackingUpdate:
    from chalicelib.integrations.easypost.updates import tracking_update

    return tracking_update(raw)


def _amazon_notification(body: dict[str, Any]) -> Any:
    from chalicelib.integrations.amazon.notifications import parse_order_change_notification

    return parse_order_change_notification(body)


def _amazon_order(client: Any, amazon_order_id: str) -> dict[str, Any]:
    from chalicelib.integrations.amazon.orders import fetch_order

    return fetch_order(client, amazon_order_id)


def channel_normalisers() -> dict[str, Normaliser]:
    """Channel → its integration's normaliser (imported on first use: a function loads only its channels)."""
    return {
        MANUAL: normalise_manual_event,
        "shopify": _shopify_event,
        "woocommerce": _woocommerce_event,
        "amazon": _amazon_event,
    }


class TrafficSink(Protocol):
    def sink(self, name: str, channel: str, store: str | None, value: float) -> None: ...


@dataclass
class Services:
    settings: Settings
    orders: OrderRepository
    workflow: WorkflowStarter
    ingest_queue: DeliveryQueue
    heartbeats: Heartbeats
    now: Callable[[], datetime]
    operator_token: Callable[[], str | None]
    connections: ConnectionRepository
    secrets: SecretStore
    raw_archive: RawArchive
    velocity: VelocityCounter | None = None
    # Each sales channel's payloads as channel events (what ingestion and reconciliation apply).
    normalisers: Normalisers = field(default_factory=channel_normalisers)
    # A verified 3PL event and a carrier's tracking event (raw bodies) in the domain's words.
    threepl_update: Callable[[bytes], ThreePLUpdate] = field(default=_threepl_update)
    tracking_update: Callable[[bytes], TrackingUpdate] = field(default=_tracking_update)
    # An SP-API notification (None: not an ORDER_CHANGE), and the order it names, read with a client.
    amazon_notification: Callable[[dict[str, Any]], Any] = field(default=_amazon_notification)
    amazon_order: Callable[[Any, str], dict[str, Any]] = field(default=_amazon_order)
    fraud_policy: FraudPolicy = field(default_factory=FraudPolicy)
    # Builds (and caches, token and pacing included) the SP-API client of one Amazon connection.
    spapi: Callable[[Connection, dict[str, str]], Any] = field(default=lambda c, s: None)
    # The Stripe account's client (built from the registered Stripe connection, cached per key).
    payments: Callable[[], PaymentGateway] = field(default=_no_payments)
    # Captures a channel's own authorisation (Shopify), or None when the channel cannot.
    channel_capturer: Callable[[Order], ChannelCapturer | None] = field(default=lambda order: None)
    payment_policy: PaymentPolicy = field(default_factory=PaymentPolicy)
    # What the channel and the payment provider say about an order's risk (Shopify risk, Stripe Radar).
    fraud_signals: Callable[[Order], FraudSignals] = field(default=lambda order: FraudSignals())
    # Fulfilment: a 3PL provider's client by name, the carrier's trackers, what the stage keeps aside.
    threepl: Callable[[str], ThreePL] = field(default=_no_threepl)
    trackers: Trackers = field(default_factory=_NoTrackers)
    fulfilment_store: FulfilmentStore | None = None
    fulfilment_policy: FulfilmentPolicy = field(default_factory=FulfilmentPolicy)
    # The channel's publisher for an order (None: a channel the hub does not publish to).
    publisher_for: Callable[[Order], ChannelPublisher | None] = field(default=lambda order: None)
    publish_claim_seconds: float = PUBLISH_CLAIM_SECONDS
    reconciliation_store: ReconciliationStore | None = None
    # Keeps the counts the status page shows per store (deliveries received, rejected, ...).
    traffic: TrafficSink | None = None

    def count_sink(self, name: str, channel: str, store: str | None, value: float) -> None:
        """observability.count's sink: the per-store counts the status page shows, when kept."""
        if self.traffic is not None:
            self.traffic.sink(name, channel, store, value)

    @property
    def secret_prefix(self) -> str:
        return f"{resources.APP_NAME}/{self.settings.stage}/connections/"

    @property
    def compensators(self) -> Sequence[Compensator]:
        """Undo, in order, what each stage did for a cancelled order: the goods first, then the money
        (publishing joins with #6)."""
        return (FulfilmentCompensator(self.orders, self.threepl, self.now), PaymentCompensator(self.payments))

    def reconciliation(self) -> ReconciliationStore:
        if self.reconciliation_store is None:
            raise ConfigurationError("no reconciliation store configured")
        return self.reconciliation_store

    def plumbing(self) -> AwsPlumbing:
        """The queues and state machines themselves (health, queue depths, redrive)."""
        from chalicelib.adapters.plumbing import AwsPlumbing

        return AwsPlumbing(self.settings)

    def status_board(self) -> DynamoStatusBoard:
        """The status page's read side: counts, lists and traffic from the table's aggregates."""
        from chalicelib.adapters.status_board import DynamoStatusBoard

        return DynamoStatusBoard()

    def stuck_thresholds(self) -> dict[OrderStatus, timedelta]:
        from chalicelib.adapters.status_board import stuck_thresholds

        return stuck_thresholds(self.settings.stuck_after)

    def channel_pull(self, connection: Connection) -> ChannelPull:
        """Reconciliation's reader of one connected store (its channel's read API, with its credentials)."""
        from chalicelib.domain.reconciliation_run import StoreUnreadable

        secrets = self.secrets.get(connection.secret_ref)
        try:
            return self._channel_pull(connection, secrets)
        except ConfigurationError as exc:
            raise StoreUnreadable(str(exc)) from exc

    def _channel_pull(self, connection: Connection, secrets: dict[str, str]) -> ChannelPull:
        if connection.channel == "woocommerce":
            from chalicelib.integrations.woocommerce.orders import WooCommerceOrders, woocommerce_pull

            reader = WooCommerceOrders(
                connection.store,
                secrets["consumer_key"],
                secrets["consumer_secret"],
                api_base=self.settings.woocommerce_api_base,
            )
            return woocommerce_pull(reader)
        if connection.channel == "amazon":
            from chalicelib.integrations.amazon.orders import amazon_pull

            return amazon_pull(self.spapi(connection, secrets), connection.settings.get("marketplace_id", ""))
        from chalicelib.integrations.shopify.admin import ShopifyAdmin
        from chalicelib.integrations.shopify.orders import shopify_pull

        return shopify_pull(
            ShopifyAdmin(connection.store, secrets["access_token"], api_base=self.settings.shopify_api_base)
        )

    def store(self) -> FulfilmentStore:
        if self.fulfilment_store is None:
            raise ConfigurationError("no fulfilment store configured")
        return self.fulfilment_store


_services: Services | None = None


def services() -> Services:
    if _services is None:
        _install(build(get_settings()))
    assert _services is not None
    return _services


def override(replacement: Services | None) -> None:
    """Use other collaborators (tests); None rebuilds the real ones on next use."""
    _install(replacement)


def _install(installed: Services | None) -> None:
    """The services every entrypoint gets; observability.count also reaches their traffic aggregates."""
    global _services
    _services = installed
    use_count_sink(installed.count_sink if installed is not None else None)


def build(settings: Settings) -> Services:
    from chalicelib.adapters import aws, models
    from chalicelib.adapters.connections import DynamoConnectionRepository, SecretsManagerStore
    from chalicelib.adapters.delivery_queue import SqsDeliveryQueue
    from chalicelib.adapters.fulfilment_store import DynamoFulfilmentStore
    from chalicelib.adapters.order_repository import DynamoHeartbeats, DynamoOrderRepository
    from chalicelib.adapters.raw_archive import DynamoRawArchive
    from chalicelib.adapters.reconciliation_store import DynamoReconciliationStore
    from chalicelib.adapters.stats import DynamoTrafficStats
    from chalicelib.adapters.velocity import DynamoVelocityCounter, bind_velocity
    from chalicelib.adapters.workflow import StepFunctionsWorkflow

    models.bind(settings.table_name, settings.region, settings.aws_endpoint)
    bind_velocity(settings.table_name, settings.region, settings.aws_endpoint)
    services = Services(
        settings=settings,
        orders=DynamoOrderRepository(),
        workflow=_LazyWorkflow(
            lambda: StepFunctionsWorkflow(
                aws.client("stepfunctions"),
                settings.state_machine_arn(resources.ORDER_LIFECYCLE.key),
            )
        ),
        ingest_queue=_LazyQueue(
            lambda: SqsDeliveryQueue(aws.client("sqs"), settings.queue_url(resources.INGEST_QUEUE.key))
        ),
        heartbeats=DynamoHeartbeats(),
        now=utcnow,
        operator_token=lambda: _operator_token(settings),
        connections=DynamoConnectionRepository(),
        secrets=SecretsManagerStore(aws.client("secretsmanager")),
        raw_archive=DynamoRawArchive(),
        spapi=_SpApiClients(settings),
        velocity=DynamoVelocityCounter(),
        fraud_policy=FraudPolicy.from_mapping(settings.fraud_policy)
        if settings.fraud_policy
        else FraudPolicy(),
        payment_policy=PaymentPolicy(settings.payment_recovery_seconds, settings.payment_max_attempts),
    )
    services.payments = _StripeClients(services)
    shopify = _ShopifyClients(services)
    services.channel_capturer = shopify.capturer
    services.fraud_signals = _FraudSignalSource(services, shopify)
    services.fulfilment_store = DynamoFulfilmentStore()
    services.threepl = _ThreePLClients(services)
    services.trackers = _EasyPostTrackers(services)
    services.publisher_for = _Publishers(services, shopify)
    services.reconciliation_store = DynamoReconciliationStore()
    services.traffic = DynamoTrafficStats(now=utcnow)
    if settings.fulfilment_policy:
        services.fulfilment_policy = FulfilmentPolicy.from_mapping(settings.fulfilment_policy)
    return services


def _operator_token(settings: Settings) -> str | None:
    if settings.operator_token:
        return settings.operator_token
    if settings.operator_token_secret_id:
        from aws_lambda_powertools.utilities import parameters

        # Cached for five minutes: a rotated token takes effect without a redeploy.
        return str(parameters.get_secret(settings.operator_token_secret_id, max_age=300))
    return None


class _SpApiClients:
    """One client per Amazon connection and secret version, so its token cache and pacing persist."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str, Any] = {}

    def __call__(self, connection: Connection, secrets: dict[str, str]) -> Any:
        from chalicelib.integrations.amazon.spapi import LWA_TOKEN_URL, SpApiClient, endpoint_for_marketplace

        key = connection.connection_id + hashlib.sha256(repr(sorted(secrets.items())).encode()).hexdigest()
        client = self._clients.get(key)
        if client is None:
            marketplace = connection.settings.get("marketplace_id", "")
            client = SpApiClient(
                endpoint=self._settings.amazon_spapi_endpoint or endpoint_for_marketplace(marketplace),
                lwa_endpoint=self._settings.amazon_lwa_endpoint or LWA_TOKEN_URL,
                client_id=secrets["lwa_client_id"],
                client_secret=secrets["lwa_client_secret"],
                refresh_token=secrets["refresh_token"],
            )
            self._clients[key] = client
        return client


class _StripeClients:
    """The registered Stripe account's client, rebuilt only when its key changes (rotation)."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._clients: dict[str, PaymentGateway] = {}

    def __call__(self) -> PaymentGateway:
        from chalicelib.domain.connections import STRIPE_ACCOUNT, credentials
        from chalicelib.integrations.stripe.payments import StripePayments

        found = credentials(
            "stripe", STRIPE_ACCOUNT, connections=self._svc.connections, secrets=self._svc.secrets
        )
        if found is None:
            raise ConfigurationError("no Stripe account connected (POST /api/connections channel stripe)")
        key = found[1]["secret_key"]
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        client = self._clients.get(fingerprint)
        if client is None:
            client = StripePayments(key, api_base=self._svc.settings.stripe_api_base)
            self._clients = {fingerprint: client}
        return client


class _Publishers:
    """The channel publisher of an order's store, built from its connection (and cached with it)."""

    def __init__(self, svc: Services, shopify: _ShopifyClients) -> None:
        self._svc = svc
        self._shopify = shopify
        self._cache: dict[str, ChannelPublisher] = {}

    def __call__(self, order: Order) -> ChannelPublisher | None:
        from chalicelib.domain.connections import credentials

        if order.channel == "shopify":
            from chalicelib.integrations.shopify.publisher import ShopifyPublisher

            return ShopifyPublisher(self._shopify.admin(order.store))
        found = credentials(
            order.channel, order.store, connections=self._svc.connections, secrets=self._svc.secrets
        )
        if found is None:
            return None
        connection, secrets = found
        key = connection.connection_id + hashlib.sha256(repr(sorted(secrets.items())).encode()).hexdigest()
        if key in self._cache:
            return self._cache[key]
        publisher: ChannelPublisher | None = None
        if order.channel == "woocommerce":
            from chalicelib.integrations.woocommerce.publisher import WooCommercePublisher

            publisher = WooCommercePublisher(
                connection.store,
                secrets["consumer_key"],
                secrets["consumer_secret"],
                api_base=self._svc.settings.woocommerce_api_base,
            )
        elif order.channel == "amazon":
            from chalicelib.integrations.amazon.publisher import AmazonPublisher

            client = self._svc.spapi(connection, secrets)
            publisher = AmazonPublisher(client, connection.settings.get("marketplace_id", ""))
        if publisher is not None:
            self._cache[key] = publisher
        return publisher


class _ThreePLClients:
    """One client per 3PL provider (its connection: API key; HUB_3PL_API_BASE or the provider's default)."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._clients: dict[str, ThreePL] = {}

    def __call__(self, provider: str) -> ThreePL:
        from chalicelib.domain.connections import credentials

        found = credentials("3pl", provider, connections=self._svc.connections, secrets=self._svc.secrets)
        if found is None:
            raise ConfigurationError(f"no 3PL connection for provider {provider!r}")
        key = provider + hashlib.sha256(found[1]["api_key"].encode()).hexdigest()
        client = self._clients.get(key)
        if client is None:
            from chalicelib.integrations.threepl.client import ThreePLClient

            base = self._svc.settings.threepl_api_base
            if base is None:
                raise ConfigurationError("HUB_3PL_API_BASE is not set (the 3PL's API base URL)")
            client = _TranslatedThreePL(ThreePLClient(base, found[1]["api_key"]))
            self._clients[key] = client
        return client


class _TranslatedThreePL:
    """The 3PL client with its refusals in the domain's words (already shipped, handed to the carrier)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def create_fulfillment_order(self, request: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._client.create_fulfillment_order(
            request, idempotency_key=idempotency_key
        )
        return answer

    def cancel(self, fulfillment_order_id: str) -> dict[str, Any]:
        from chalicelib.domain.fulfilment import AlreadyShippedError
        from chalicelib.integrations.threepl.client import AlreadyShipped

        try:
            answer: dict[str, Any] = self._client.cancel(fulfillment_order_id)
        except AlreadyShipped as exc:
            raise AlreadyShippedError(str(exc)) from exc
        return answer

    def recall(self, fulfillment_order_id: str) -> list[str]:
        from chalicelib.domain.fulfilment import RecallRefused
        from chalicelib.integrations.threepl.client import HandedToCarrier

        try:
            return list(self._client.recall(fulfillment_order_id))
        except HandedToCarrier as exc:
            raise RecallRefused(str(exc)) from exc

    def inventory(self, skus: Sequence[str], warehouse: str | None = None) -> list[dict[str, Any]]:
        return list(self._client.inventory(list(skus), warehouse))


class _EasyPostTrackers:
    """Registers parcels with the connected EasyPost account (HUB_CARRIER_API_BASE points elsewhere)."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._client: Any = None
        self._key: str | None = None

    def register(self, tracking_number: str, carrier: str) -> None:
        from chalicelib.domain.connections import CARRIER_ACCOUNT, credentials
        from chalicelib.integrations.easypost.client import EasyPostClient

        found = credentials(
            "easypost", CARRIER_ACCOUNT, connections=self._svc.connections, secrets=self._svc.secrets
        )
        if found is None:
            raise ConfigurationError("no EasyPost account connected (POST /api/connections channel easypost)")
        if self._client is None or self._key != found[1]["api_key"]:
            self._key = found[1]["api_key"]
            self._client = EasyPostClient(self._key, api_base=self._svc.settings.carrier_api_base)
        self._client.create_tracker(tracking_number, carrier)


class _ShopifyClients:
    """One Admin GraphQL client per shop and token (its throttle bucket is learnt per client)."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._clients: dict[str, Any] = {}

    def admin(self, store: str) -> Any:
        from chalicelib.domain.connections import credentials
        from chalicelib.integrations.shopify.admin import ShopifyAdmin

        found = credentials("shopify", store, connections=self._svc.connections, secrets=self._svc.secrets)
        if found is None:
            raise ConfigurationError(f"no Shopify connection for {store}")
        token = found[1]["access_token"]
        key = store + hashlib.sha256(token.encode()).hexdigest()
        client = self._clients.get(key)
        if client is None:
            client = ShopifyAdmin(store, token, api_base=self._svc.settings.shopify_api_base)
            self._clients[key] = client
        return client

    def capturer(self, order: Order) -> ChannelCapturer | None:
        return _ShopifyCapture(self.admin(order.store)) if order.channel == "shopify" else None


class _ShopifyCapture:
    """Captures a Shopify authorisation through orderCapture (the adapter reads before it writes)."""

    def __init__(self, admin: Any) -> None:
        self._admin = admin

    def capture(self, order: Order, amount: Decimal) -> ChannelCapture:
        from chalicelib.domain.errors import HubError

        authorisations = self._admin.capturable_authorizations(order.external_id)
        if not authorisations:
            raise HubError(f"Shopify order {order.external_id} has no authorisation to capture")
        first = authorisations[0]
        result = self._admin.capture(
            order.external_id, first.transaction_id, min(amount, first.amount), order.currency
        )
        return ChannelCapture(amount=result.amount, reference=result.transaction_id)


class _FraudSignalSource:
    """Signals from outside the order: Shopify's risk assessment, Stripe Radar's verdict and the card's
    fingerprint. Unreachable sources leave their signal out (the rules still run) rather than stall."""

    def __init__(self, svc: Services, shopify: _ShopifyClients) -> None:
        self._svc = svc
        self._shopify = shopify

    def __call__(self, order: Order) -> FraudSignals:
        from chalicelib.domain.errors import HubError
        from chalicelib.domain.fraud import StripeRadar
        from chalicelib.domain.payment import stripe_intent
        from chalicelib.domain.payment_gateway import PaymentError
        from chalicelib.observability import logger

        intent_id = stripe_intent(order)
        if intent_id is None:
            if order.channel == "shopify":
                try:
                    return FraudSignals(
                        shopify_risk=self._shopify.admin(order.store).order_risk(order.external_id)
                    )
                except (HubError, ConfigurationError) as exc:
                    logger.warning(
                        "fraud signal unavailable",
                        extra={"order_id": order.order_id, "source": "shopify", "error": type(exc).__name__},
                    )
            return FraudSignals()
        try:
            intent = self._svc.payments().retrieve(intent_id)
        except (PaymentError, ConfigurationError) as exc:
            logger.warning(
                "fraud signal unavailable",
                extra={"order_id": order.order_id, "source": "stripe", "error": type(exc).__name__},
            )
            return FraudSignals()
        radar = None
        if intent.risk_level is not None or intent.risk_score is not None:
            radar = StripeRadar(risk_level=intent.risk_level, risk_score=intent.risk_score)
        return FraudSignals(card_fingerprint=intent.card_fingerprint, stripe_radar=radar)


class _LazyWorkflow:
    """Builds its adapter on first use, so a function that never starts workflows needs no ARN."""

    def __init__(self, factory: Callable[[], WorkflowStarter]) -> None:
        self._factory = factory
        self._adapter: WorkflowStarter | None = None

    def _get(self) -> WorkflowStarter:
        if self._adapter is None:
            self._adapter = self._factory()
        return self._adapter

    def start(self, order_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        return self._get().start(order_id, payload, name=name)

    def complete_task(self, token: str, output: dict[str, Any]) -> bool:
        return self._get().complete_task(token, output)

    def stop(self, order_id: str, cause: str, *, execution_arn: str | None = None) -> bool:
        return self._get().stop(order_id, cause, execution_arn=execution_arn)


class _LazyQueue:
    def __init__(self, factory: Callable[[], DeliveryQueue]) -> None:
        self._factory = factory
        self._adapter: DeliveryQueue | None = None

    def send(self, body: dict[str, Any], *, group_id: str, deduplication_id: str) -> str:
        if self._adapter is None:
            self._adapter = self._factory()
        return self._adapter.send(body, group_id=group_id, deduplication_id=deduplication_id)


def deduplication_id(delivery_id: str) -> str:
    """An SQS FIFO deduplication id (≤ 128 chars of a restricted alphabet) for any sender id."""
    return hashlib.sha256(delivery_id.encode()).hexdigest()


__all__ = ["ConfigurationError", "Services", "deduplication_id", "override", "services"]
