"""The one resource specification that both the CDK stack and the local stack provision from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

APP_NAME = "order-hub"
# Every spec has a stage-free `name`, which the local stack provisions as it is (one hub per moto server),
# and a `physical_name(stage)`, which a deployment provisions: several stages share an account and region.

# Lambda's own advice: a queue's visibility timeout should be at least six times the function timeout.
DEFAULT_FUNCTION_TIMEOUT_SECONDS = 30
# SQS's maximum: an operator has two weeks to inspect and redrive a poison message.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


def staged_name(name: str, stage: str) -> str:
    """A stage-free spec name as a deployed stage names it: the stage follows the app name, with the
    name's own separator (order-hub-main → order-hub-prod-main, order-hub/operator-token →
    order-hub/prod/operator-token), so every name of a stage starts with order-hub-<stage> (or /<stage>/)."""
    for separator in ("-", "/"):
        prefix = APP_NAME + separator
        if name.startswith(prefix):
            return f"{prefix}{stage}{separator}{name.removeprefix(prefix)}"
    raise ValueError(f"{name!r} does not start with {APP_NAME}- or {APP_NAME}/")


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index over generic key attributes (single-table design)."""

    name: str
    partition_key: str
    sort_key: str


@dataclass(frozen=True)
class TableSpec:
    key: str
    name: str
    partition_key: str
    sort_key: str
    indexes: tuple[IndexSpec, ...]
    ttl_attribute: str
    env_var: str

    def physical_name(self, stage: str) -> str:
        return staged_name(self.name, stage)


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue and its dead-letter queue; `max_receive_count` receives, then the DLQ. A queue that
    feeds a Lambda function keeps a message hidden six times the function's timeout (AWS's advice)."""

    key: str
    name: str
    fifo: bool
    visibility_timeout_seconds: int = 6 * DEFAULT_FUNCTION_TIMEOUT_SECONDS
    max_receive_count: int = 5
    retention_seconds: int = 14 * 24 * 3600
    content_based_deduplication: bool = False
    description: str = ""

    @property
    def dlq_name(self) -> str:
        stem = self.name.removesuffix(".fifo")
        return f"{stem}-dlq.fifo" if self.fifo else f"{stem}-dlq"

    def physical_name(self, stage: str) -> str:
        return staged_name(self.name, stage)

    def physical_dlq_name(self, stage: str) -> str:
        return staged_name(self.dlq_name, stage)

    @property
    def env_var(self) -> str:
        return f"HUB_QUEUE_URL_{self.key.upper()}"

    @property
    def dlq_env_var(self) -> str:
        return f"HUB_DLQ_URL_{self.key.upper()}"


@dataclass(frozen=True)
class Substitution:
    """What a `${Placeholder}` in an ASL definition resolves to: a function, queue, table or state machine."""

    kind: str  # "function" | "queue_url" | "queue_arn" | "table_name" | "table_arn"
    target: str


@dataclass(frozen=True)
class StateMachineSpec:
    key: str
    name: str
    definition_file: str
    substitutions: dict[str, Substitution] = field(default_factory=dict)
    # Functions an earlier definition called: running executions keep the definition they started with, so
    # the machine may still invoke these until the last of them ends; then they are deleted.
    retired_functions: tuple[str, ...] = ()

    @property
    def env_var(self) -> str:
        return f"HUB_STATE_MACHINE_ARN_{self.key.upper()}"

    def physical_name(self, stage: str) -> str:
        return staged_name(self.name, stage)

    def definition_path(self, root: Path) -> Path:
        return root / "step_functions" / self.definition_file


@dataclass(frozen=True)
class SecretSpec:
    key: str
    name: str
    description: str
    env_var: str

    def physical_name(self, stage: str) -> str:
        return staged_name(self.name, stage)


TABLE = TableSpec(
    key="main",
    name=f"{APP_NAME}-main",
    partition_key="pk",
    sort_key="sk",
    indexes=(
        # by-channel id: CHANNEL#<channel>#<store>#<external id>
        IndexSpec("gsi1", "gsi1pk", "gsi1sk"),
        # by status + time: STATUS#<status>, sorted by updated time
        IndexSpec("gsi2", "gsi2pk", "gsi2sk"),
        # by store + time: STORE#<channel>#<store>, sorted by placed time
        IndexSpec("gsi3", "gsi3pk", "gsi3sk"),
        # every order, newest first: ORDERS, sorted by placed time
        IndexSpec("gsi4", "gsi4pk", "gsi4sk"),
        # sparse: orders whose channel outbox has pending milestones, oldest first (PUBPENDING)
        IndexSpec("gsi5", "gsi5pk", "gsi5sk"),
    ),
    ttl_attribute="expires_at",
    env_var="HUB_TABLE_NAME",
)

INGEST_QUEUE = QueueSpec(
    key="ingest",
    name=f"{APP_NAME}-ingest.fifo",
    fifo=True,
    # EventBridge can target a FIFO queue only with content-based deduplication on (Shopify's
    # EventBridge route); the hub's own sends still pass an explicit deduplication id.
    content_based_deduplication=True,
    description="Accepted channel deliveries, one message group per channel:store:order.",
)

AMAZON_NOTIFICATIONS_QUEUE = QueueSpec(
    key="amazon_notifications",
    # SP-API delivers to a standard queue only (no FIFO): order is restored by the fence.
    name=f"{APP_NAME}-amazon-notifications",
    fifo=False,
    description="SP-API ORDER_CHANGE notifications; SP-API's principal may SendMessage here.",
)

QUEUES: tuple[QueueSpec, ...] = (INGEST_QUEUE, AMAZON_NOTIFICATIONS_QUEUE)

# Lambda functions the state machines call, by Chalice function name.
FUNCTION_CHECK_ORDER = "check_order"
FUNCTION_RECORD_FAILURE = "record_failure"
FUNCTION_REQUEST_REVIEW = "request_review"
FUNCTION_REVIEW_TIMED_OUT = "review_timed_out"
FUNCTION_TAKE_PAYMENT = "take_payment"
FUNCTION_REQUEST_PAYMENT_METHOD = "request_payment_method"
FUNCTION_CANCEL_ORDER = "cancel_order"
FUNCTION_FULFIL_ORDER = "fulfil_order"
FUNCTION_AWAIT_ORDER_DELIVERY = "await_order_delivery"
FUNCTION_COMPLETE_ORDER = "complete_order"
# Retired from the lifecycle (2026-12, one wait per order): only executions started before still call them.
FUNCTION_VALIDATE_ORDER = "validate_order"
FUNCTION_FRAUD_CHECK = "fraud_check"
FUNCTION_ALLOCATE = "allocate_shipments"
FUNCTION_REQUEST_FULFILMENT = "request_fulfilment"
FUNCTION_AWAIT_DELIVERY = "await_delivery"

ORDER_LIFECYCLE = StateMachineSpec(
    key="order_lifecycle",
    name=f"{APP_NAME}-order-lifecycle",
    definition_file="order_lifecycle.asl.json",
    substitutions={
        "CheckOrderFunctionArn": Substitution("function", FUNCTION_CHECK_ORDER),
        "RecordFailureFunctionArn": Substitution("function", FUNCTION_RECORD_FAILURE),
        "RequestReviewFunctionArn": Substitution("function", FUNCTION_REQUEST_REVIEW),
        "ReviewTimedOutFunctionArn": Substitution("function", FUNCTION_REVIEW_TIMED_OUT),
        "TakePaymentFunctionArn": Substitution("function", FUNCTION_TAKE_PAYMENT),
        "RequestPaymentMethodFunctionArn": Substitution("function", FUNCTION_REQUEST_PAYMENT_METHOD),
        "CancelOrderFunctionArn": Substitution("function", FUNCTION_CANCEL_ORDER),
        "FulfilOrderFunctionArn": Substitution("function", FUNCTION_FULFIL_ORDER),
        "AwaitDeliveryFunctionArn": Substitution("function", FUNCTION_AWAIT_ORDER_DELIVERY),
        "CompleteOrderFunctionArn": Substitution("function", FUNCTION_COMPLETE_ORDER),
    },
    retired_functions=(
        FUNCTION_VALIDATE_ORDER,
        FUNCTION_FRAUD_CHECK,
        FUNCTION_ALLOCATE,
        FUNCTION_REQUEST_FULFILMENT,
        FUNCTION_AWAIT_DELIVERY,
    ),
)

# The return workflow's tasks.
FUNCTION_APPROVE_RETURN = "approve_return"
FUNCTION_ISSUE_RETURN_LABEL = "issue_return_label"
FUNCTION_AWAIT_RETURN = "await_return"
FUNCTION_RETURN_OVERDUE = "return_overdue"
FUNCTION_RESOLVE_RETURN = "resolve_return"
FUNCTION_RECORD_RETURN_FAILURE = "record_return_failure"

ORDER_RETURN = StateMachineSpec(
    key="order_return",
    name=f"{APP_NAME}-order-return",
    definition_file="order_return.asl.json",
    substitutions={
        "ApproveReturnFunctionArn": Substitution("function", FUNCTION_APPROVE_RETURN),
        "IssueReturnLabelFunctionArn": Substitution("function", FUNCTION_ISSUE_RETURN_LABEL),
        "AwaitReturnFunctionArn": Substitution("function", FUNCTION_AWAIT_RETURN),
        "ReturnOverdueFunctionArn": Substitution("function", FUNCTION_RETURN_OVERDUE),
        "ResolveReturnFunctionArn": Substitution("function", FUNCTION_RESOLVE_RETURN),
        "RecordReturnFailureFunctionArn": Substitution("function", FUNCTION_RECORD_RETURN_FAILURE),
    },
)

STATE_MACHINES: tuple[StateMachineSpec, ...] = (ORDER_LIFECYCLE, ORDER_RETURN)

OPERATOR_TOKEN_SECRET = SecretSpec(
    key="operator_token",
    name=f"{APP_NAME}/operator-token",
    description="Bearer token operators use for /api/* and /status.",
    env_var="HUB_OPERATOR_TOKEN_SECRET_ID",
)

SECRETS: tuple[SecretSpec, ...] = (OPERATOR_TOKEN_SECRET,)

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def placeholders(definition_text: str) -> set[str]:
    """Every `${Name}` placeholder used in an ASL definition."""
    return set(_PLACEHOLDER.findall(definition_text))


def substitute(definition_text: str, values: dict[str, str]) -> str:
    """Resolve every placeholder; an unresolved one is an error, never a silent leftover."""
    missing = placeholders(definition_text) - values.keys()
    if missing:
        raise KeyError(f"unresolved placeholders: {sorted(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], definition_text)


def queue(key: str) -> QueueSpec:
    for spec in QUEUES:
        if spec.key == key:
            return spec
    raise KeyError(key)


def state_machine(key: str) -> StateMachineSpec:
    for spec in STATE_MACHINES:
        if spec.key == key:
            return spec
    raise KeyError(key)
