"""Composition root: wires real adapters for Lambda and the local stack; tests swap in fakes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib import resources
from chalicelib.observability import use_count_sink
from chalicelib.settings import ConfigurationError, Settings, get_settings
from chalicelib.wiring import (
    ConnectedClients,
    amazon_notification,
    amazon_order,
    channel_normalisers,
    no_return_labels,
    no_returns_desk,
    return_event,
    threepl_update,
    tracking_update,
)

if TYPE_CHECKING:  # types only: each function imports the domain modules (and pydantic) its work needs
    from datetime import timedelta

    from chalicelib.adapters.plumbing import AwsPlumbing
    from chalicelib.adapters.status_board import DynamoStatusBoard
    from chalicelib.domain.cancellation import Compensator, WindDownWith
    from chalicelib.domain.connections import Connection, ConnectionRepository, SecretStore
    from chalicelib.domain.credit.model import CreditLedger
    from chalicelib.domain.fraud import VelocityCounter
    from chalicelib.domain.fraud_policy import FraudPolicy
    from chalicelib.domain.fraud_signals import FraudSignals
    from chalicelib.domain.fulfilment import (
        FulfilmentPolicy,
        FulfilmentStore,
        ThreePL,
        ThreePLUpdate,
        Trackers,
        TrackingUpdate,
    )
    from chalicelib.domain.ingest import Normalisers
    from chalicelib.domain.order import Order, OrderStatus
    from chalicelib.domain.parking import ParkedMessage, ParkingLot
    from chalicelib.domain.payment import ChannelCapturer, PaymentPolicy
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
    from chalicelib.domain.retention import ClosedOrders, RetentionCursor, RetentionPolicy
    from chalicelib.domain.returns.events import ChannelReturn, ReturnEvent
    from chalicelib.domain.returns.policy import ReturnPolicies
    from chalicelib.domain.returns.ports import ReturnLabels, ReturnsBoard, ReturnsDesk, ReturnsReport
    from chalicelib.domain.returns.report_sync import ReturnsCursor
    from chalicelib.domain.runtime_settings import Policies, SettingsAudit, SettingsStore, StoredSetting
    from chalicelib.domain.webhooks import WebhookSpec


def _no_payments() -> PaymentGateway:
    raise ConfigurationError("no payment gateway configured")


def _no_threepl(provider: str) -> ThreePL:
    raise ConfigurationError(f"no 3PL client configured for {provider}")


def _no_fraud_signals(order: Order) -> FraudSignals:
    from chalicelib.domain.fraud_signals import FraudSignals

    return FraudSignals()


def _default_policies() -> Policies:
    from chalicelib.domain.runtime_settings import Policies

    return Policies()


class _NoTrackers:
    def register(self, tracking_number: str, carrier: str) -> None:
        raise ConfigurationError("no carrier tracking configured")


# How long a publisher holds a milestone it is telling the channel: well beyond the function's timeout, so
# only the claim of a publisher that died (timed out, crashed) ever lapses.
PUBLISH_CLAIM_SECONDS = 6 * resources.DEFAULT_FUNCTION_TIMEOUT_SECONDS


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
    threepl_update: Callable[[dict[str, Any]], ThreePLUpdate] = field(default=threepl_update)
    tracking_update: Callable[[dict[str, Any]], TrackingUpdate] = field(default=tracking_update)
    # An SP-API notification (None: not an ORDER_CHANGE), and the order it names, read with a client.
    amazon_notification: Callable[[dict[str, Any]], Any] = field(default=amazon_notification)
    amazon_order: Callable[[Any, str], dict[str, Any]] = field(default=amazon_order)
    # Builds (and caches, token and pacing included) the SP-API client of one Amazon connection.
    spapi: Callable[[Connection, dict[str, str]], Any] = field(default=lambda c, s: None)
    # The Stripe account's client (built from the registered Stripe connection, cached per key).
    payments: Callable[[], PaymentGateway] = field(default=_no_payments)
    # Captures a channel's own authorisation (Shopify), or None when the channel cannot.
    channel_capturer: Callable[[Order], ChannelCapturer | None] = field(default=lambda order: None)
    # What the channel and the payment provider say about an order's risk (Shopify risk, Stripe Radar).
    fraud_signals: Callable[[Order], FraudSignals] = field(default=_no_fraud_signals)
    # Fulfilment: a 3PL provider's client by name, the carrier's trackers, what the stage keeps aside.
    threepl: Callable[[str], ThreePL] = field(default=_no_threepl)
    trackers: Trackers = field(default_factory=_NoTrackers)
    fulfilment_store: FulfilmentStore | None = None
    # Returns: a 3PL's return event (and its provider) in the domain's words, returns desks, return labels.
    return_event: Callable[[dict[str, Any], str], ReturnEvent] = field(default=return_event)
    returns_desk: Callable[[str], ReturnsDesk] = field(default=no_returns_desk)
    return_labels: Callable[[], ReturnLabels] = field(default=no_return_labels)
    # The channel's publisher for an order (None: a channel the hub does not publish to).
    publisher_for: Callable[[Order], ChannelPublisher | None] = field(default=lambda order: None)
    publish_claim_seconds: float = PUBLISH_CLAIM_SECONDS
    reconciliation_store: ReconciliationStore | None = None
    # Schedule amazon_returns: a connected store's returns report, and where each store's reading stopped.
    returns_report: Callable[[Connection], ReturnsReport] | None = None
    returns_cursor: ReturnsCursor | None = None
    # Keeps the counts the status page shows per store (deliveries received, rejected, ...).
    traffic: TrafficSink | None = None
    # Where a queued message that can never be processed is set aside at once (None: the queue's own
    # retries and redrive policy park it, after max_receive_count receives).
    parking: ParkingLot | None = None
    # Schedule redact_personal_data: closed orders by the time they closed, and where each lane stopped.
    closed_orders: ClosedOrders | None = None
    retention_cursor: RetentionCursor | None = None
    # Returns: the return workflow (one execution per return).
    return_workflow: WorkflowStarter | None = None
    # The returns closed per day, for the status page (None: not kept, the page shows open returns only).
    returns_board: ReturnsBoard | None = None

    def returns(self) -> WorkflowStarter:
        """The return workflow (one execution per return)."""
        if self.return_workflow is None:
            raise ConfigurationError("no return workflow configured")
        return self.return_workflow

    def place_replacement(self, body: dict[str, Any], delivery_id: str) -> str:
        """Queue an exchange's replacement as a manual order (ingested and run like any other); the
        delivery id is the return's, so a retried resolution places it once. Answers its order id."""
        import json

        from chalicelib.domain.delivery import Delivery
        from chalicelib.domain.manual_channel import CHANNEL, normalise_manual

        order = normalise_manual(body)
        delivery = Delivery(
            delivery_id=delivery_id,
            channel=CHANNEL,
            store=order.store,
            topic="orders/create",
            received_at=self.now(),
            payload=body,
            external_id=order.external_id,
            raw=json.dumps(body, separators=(",", ":")),
        )
        self.ingest_queue.send(
            delivery.to_message(),
            group_id=delivery.message_group(),
            deduplication_id=deduplication_id(delivery_id),
        )
        return order.order_id

    # The store-credit and voucher ledger's read side (its writes go with the orders').
    credit_ledger: CreditLedger | None = None
    # The business policies in force (the runtime settings store's values; defaults without one), and the
    # store itself with its audit trail for /api/settings.
    policies: Policies = field(default_factory=_default_policies)
    settings_store: SettingsStore | None = None
    settings_audit: SettingsAudit | None = None

    @property
    def fraud_policy(self) -> FraudPolicy:
        from chalicelib.domain import runtime_settings

        return self.policies.get(runtime_settings.FRAUD_POLICY)

    @property
    def payment_policy(self) -> PaymentPolicy:
        from chalicelib.domain import runtime_settings

        return self.policies.get(runtime_settings.PAYMENT_RECOVERY)

    @property
    def fulfilment_policy(self) -> FulfilmentPolicy:
        from chalicelib.domain import runtime_settings

        return self.policies.get(runtime_settings.FULFILMENT_POLICY)

    @property
    def return_policies(self) -> ReturnPolicies:
        from chalicelib.domain import runtime_settings

        return self.policies.get(runtime_settings.RETURNS_POLICY)

    @property
    def personal_data_retention(self) -> RetentionPolicy:
        from chalicelib.domain import runtime_settings

        return self.policies.get(runtime_settings.PERSONAL_DATA_RETENTION)

    def runtime_settings(self) -> tuple[SettingsStore, SettingsAudit]:
        if self.settings_store is None or self.settings_audit is None:
            raise ConfigurationError("no runtime settings store configured")
        return self.settings_store, self.settings_audit

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
        (publishing joins with #6), then the vouchers and credit it redeemed."""
        from chalicelib.domain.credit.redemption import CreditCompensator
        from chalicelib.domain.fulfilment import FulfilmentCompensator
        from chalicelib.domain.payment_compensation import PaymentCompensator

        return (
            FulfilmentCompensator(self.orders, self.threepl, self.now),
            PaymentCompensator(self.payments),
            CreditCompensator(self.orders, self.now),
        )

    def wind_down_with(self, *, stop_workflow: bool = True) -> WindDownWith:
        """What cancelling an order (stopping its lifecycle, undoing what was done) works with here."""
        from chalicelib.domain.cancellation import WindDownWith

        return WindDownWith(
            orders=self.orders,
            workflow=self.workflow,
            now=self.now,
            compensators=self.compensators,
            stop_workflow=stop_workflow,
        )

    def record_channel_return(self, event: ChannelReturn) -> Mapping[str, Any]:
        """A return opened or changed at the channel, handed to the returns intake (ingest's
        `channel_returns`)."""
        from chalicelib.domain.returns.intake import record_channel_return
        from chalicelib.domain.returns.steps import resume_return

        result: Mapping[str, Any] = record_channel_return(
            event,
            orders=self.orders,
            workflow=self.returns(),
            policies=self.return_policies,
            now=self.now,
            resume=lambda ret: resume_return(self.store(), self.workflow, ret),
        )
        return result

    def credit(self) -> CreditLedger:
        if self.credit_ledger is None:
            raise ConfigurationError("no credit ledger configured")
        return self.credit_ledger

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
        from chalicelib.domain import runtime_settings

        return self.policies.get(runtime_settings.STUCK_AFTER)

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
    from chalicelib.adapters.credit_ledger import DynamoCreditLedger
    from chalicelib.adapters.delivery_queue import SqsDeliveryQueue
    from chalicelib.adapters.fulfilment_store import DynamoFulfilmentStore
    from chalicelib.adapters.order_repository import DynamoHeartbeats, DynamoOrderRepository
    from chalicelib.adapters.parameter_store import SsmSettingsStore
    from chalicelib.adapters.parking import SqsParkingLot
    from chalicelib.adapters.raw_archive import DynamoRawArchive
    from chalicelib.adapters.reconciliation_store import DynamoReconciliationStore
    from chalicelib.adapters.retention_store import DynamoClosedOrders, DynamoRetentionCursor
    from chalicelib.adapters.returns_board import DynamoReturnsBoard
    from chalicelib.adapters.returns_cursor import DynamoReturnsCursor
    from chalicelib.adapters.settings_audit import DynamoSettingsAudit
    from chalicelib.adapters.stats import DynamoTrafficStats
    from chalicelib.adapters.velocity import DynamoVelocityCounter, bind_velocity
    from chalicelib.adapters.workflow import StepFunctionsWorkflow
    from chalicelib.domain.order import utcnow
    from chalicelib.domain.runtime_settings import Policies
    from chalicelib.integrations.http import HostGuard, guard_hosts

    models.bind(settings.table_name, settings.region, settings.aws_endpoint)
    # Every outbound REST call: public https hosts only, checked after resolution (local stack: its own too).
    guard_hosts(HostGuard(allow_private=settings.allow_private_hosts))
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
        velocity=DynamoVelocityCounter(),
    )
    store = _LazySettingsStore(
        lambda: SsmSettingsStore(aws.client("ssm"), settings.settings_path, max_age=settings.settings_max_age)
    )
    services.settings_store, services.settings_audit = store, DynamoSettingsAudit()
    services.policies = Policies(store, unusable=_unusable_setting)
    clients = ConnectedClients(
        settings, services.connections, services.secrets, fulfilment_policy=lambda: services.fulfilment_policy
    )
    services.spapi = clients.spapi.get
    services.payments = clients.payments
    services.channel_capturer = clients.capturer
    services.fraud_signals = clients.fraud_signals
    services.fulfilment_store = DynamoFulfilmentStore()
    services.threepl = clients.threepl
    services.returns_desk = clients.returns_desk
    services.return_labels = clients.return_labels
    services.trackers = clients
    services.publisher_for = clients.publisher_for
    services.reconciliation_store = DynamoReconciliationStore()
    services.returns_cursor = DynamoReturnsCursor()
    services.returns_report = clients.returns_report
    services.closed_orders = DynamoClosedOrders()
    services.retention_cursor = DynamoRetentionCursor()

    services.credit_ledger = DynamoCreditLedger(now=utcnow)
    services.returns_board = DynamoReturnsBoard()
    services.traffic = DynamoTrafficStats(now=utcnow)
    services.parking = _LazyParkingLot(lambda: SqsParkingLot(aws.client("sqs"), settings.dlq_urls))
    services.return_workflow = _LazyWorkflow(
        lambda: StepFunctionsWorkflow(
            aws.client("stepfunctions"), settings.state_machine_arn(resources.ORDER_RETURN.key)
        )
    )
    return services


def _operator_token(settings: Settings) -> str | None:
    if settings.operator_token:
        return settings.operator_token
    if settings.operator_token_secret_id:
        from aws_lambda_powertools.utilities import parameters

        # Cached for five minutes: a rotated token takes effect without a redeploy.
        return str(parameters.get_secret(settings.operator_token_secret_id, max_age=300))
    return None


def _unusable_setting(name: str, reason: str) -> None:
    from chalicelib.observability import logger

    logger.warning("runtime setting unusable, last good one kept", extra={"setting": name, "error": reason})


class _LazySettingsStore:
    """Opens the store on first use: a function that reads no policy makes no SSM client."""

    def __init__(self, factory: Callable[[], SettingsStore]) -> None:
        self._factory = factory
        self._store: SettingsStore | None = None

    def _get(self) -> SettingsStore:
        if self._store is None:
            self._store = self._factory()
        return self._store

    def current(self) -> Mapping[str, Any]:
        return self._get().current()

    def read(self, name: str) -> StoredSetting | None:
        return self._get().read(name)

    def write(self, name: str, text: str) -> int:
        return self._get().write(name, text)

    def versions(self, name: str) -> list[StoredSetting]:
        return self._get().versions(name)


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


class _LazyParkingLot:
    def __init__(self, factory: Callable[[], ParkingLot]) -> None:
        self._factory = factory
        self._adapter: ParkingLot | None = None

    def park(self, queue: str, message: ParkedMessage) -> None:
        if self._adapter is None:
            self._adapter = self._factory()
        self._adapter.park(queue, message)


def deduplication_id(delivery_id: str) -> str:
    """An SQS FIFO deduplication id (≤ 128 chars of a restricted alphabet) for any sender id."""
    return hashlib.sha256(delivery_id.encode()).hexdigest()


__all__ = [
    "PUBLISH_CLAIM_SECONDS",
    "ConfigurationError",
    "Services",
    "build",
    "channel_normalisers",
    "deduplication_id",
    "override",
    "services",
]


def webhook_spec(sender: str) -> WebhookSpec:
    """The WebhookSpec of one sender (shopify, woocommerce, stripe, 3pl, easypost), imported when asked:
    a webhook function loads only the parser it serves. KeyError for a sender the hub has no spec of."""
    if sender == "shopify":
        from chalicelib.integrations.shopify.webhook import SHOPIFY_WEBHOOK

        return SHOPIFY_WEBHOOK
    if sender == "woocommerce":
        from chalicelib.integrations.woocommerce.webhook import WOOCOMMERCE_WEBHOOK

        return WOOCOMMERCE_WEBHOOK
    if sender == "stripe":
        from chalicelib.integrations.stripe.webhook import STRIPE_WEBHOOK

        return STRIPE_WEBHOOK
    if sender == "3pl":
        from chalicelib.integrations.threepl.webhook import THREEPL_WEBHOOK

        return THREEPL_WEBHOOK
    if sender == "easypost":
        from chalicelib.integrations.easypost.webhook import EASYPOST_WEBHOOK

        return EASYPOST_WEBHOOK
    raise KeyError(sender)


def shopify_partner_event(body: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]] | None:
    """A queued body that is Shopify's EventBridge envelope, as (webhook headers, payload); else None."""
    from chalicelib.integrations.shopify.eventbridge import is_shopify_event, unwrap

    return unwrap(body) if is_shopify_event(body) else None
