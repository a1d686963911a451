"""What the CDK stack builds, derived from the Chalice app and chalicelib.resources: plain Python, no CDK.

Kept free of aws_cdk so the main test venv (which has chalice but not the CDK) can check the same facts the
stack relies on: every function a state machine names exists, every placeholder resolves, every function
has an IAM entry.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalice.utils import to_cfn_resource_name

from chalicelib import resources

ROOT = Path(__file__).resolve().parents[2]

# Chalice's defaults are 60 s and 128 MB. The spec sizes queue visibility timeouts as 6 × this timeout
# (Lambda's advice for SQS event sources), so the functions must not run longer than this.
FUNCTION_TIMEOUT_SECONDS = resources.DEFAULT_FUNCTION_TIMEOUT_SECONDS
# boto3 + pydantic + pynamodb + Powertools cold-start far faster with the CPU share of 512 MB than of 128 MB.
FUNCTION_MEMORY_MB = 512
# Lambda's limit on function names.
MAX_FUNCTION_NAME = 64

API_HANDLER = "api_handler"  # Chalice's resource name for the one function behind the REST API
API_HANDLER_LOGICAL_ID = "APIHandler"  # ...and the logical id `chalice package` gives it

# The app's own CloudWatch metrics (EMF lines; mirrors chalicelib.observability.NAMESPACE) and the one that
# counts webhook deliveries refused (bad signature, unknown store, ...).
APP_METRICS_NAMESPACE = "OrderHub"
WEBHOOK_REJECTED_METRIC = "WebhookRejected"
# ...and the dimension each metric names its stage with (mirrors chalicelib.observability.STAGE_DIMENSION).
APP_METRICS_STAGE_DIMENSION = "stage"

SUBSTITUTION_KINDS = ("function", "queue_url", "queue_arn", "table_name", "table_arn")

# EventBridge Scheduler accepts the rate() and cron() expressions Chalice's @schedule produces (and at()).
SCHEDULE_EXPRESSION_PREFIXES = ("rate(", "cron(")

# AWS-only queues: dead-letter queues of AWS services that the local stack does not run (EventBridge
# Scheduler, EventBridge rule targets), so they are not in chalicelib.resources. Stage-free names, as the
# spec's are: the stack creates resources.staged_name(name, stage). Standard queues: neither
# service accepts a FIFO queue as its dead-letter queue.
SCHEDULER_DLQ_NAME = f"{resources.APP_NAME}-scheduler-dlq"
SHOPIFY_EVENTS_DLQ_NAME = f"{resources.APP_NAME}-shopify-events-dlq"
# The message group of Shopify's EventBridge events on the FIFO ingest queue. A rule target sets one fixed
# group, so these events are consumed in arrival order, one batch at a time (HTTPS deliveries keep their
# per-order groups); content-based deduplication, which FIFO targets need, is on for the ingest queue.
SHOPIFY_EVENTS_MESSAGE_GROUP = "shopify-eventbridge"
# A partner event source name as Shopify creates it: aws.partner/shopify.com/<app id>/<source name>.
SHOPIFY_EVENT_SOURCE_PATTERN = re.compile(r"^aws\.partner/shopify\.com/\d+/[A-Za-z0-9._\-]+$")


@dataclass(frozen=True)
class Access:
    """What one Lambda function may touch besides its own log group and X-Ray.

    Consuming from a queue is not listed here: it follows from the function's SQS event source.
    """

    table: bool = True  # read/write items of the single table and query its indexes
    send_to: tuple[str, ...] = ()  # queue keys it sends to
    inspect_queues: bool = False  # sqs:GetQueueAttributes on every main queue (health report)
    start: tuple[str, ...] = ()  # state machine keys it starts executions of
    describe_state_machines: bool = False  # states:DescribeStateMachine on every machine (health report)
    secrets: tuple[str, ...] = ()  # secret keys it reads
    redrive: bool = False  # move messages from every DLQ back to its source queue (operator redrive)
    connection_secrets: str = ""  # "read" or "manage" the per-store channel credentials (see below)
    task_results: tuple[str, ...] = ()  # state machine keys whose waiting tasks it completes (task tokens)
    stop: tuple[str, ...] = ()  # state machine keys whose executions it may describe and stop (cancellation)
    # "read" the runtime settings (business policies; any task may consult one), or "manage" them
    # (PUT /api/settings: write, history), or "" for none.
    settings: str = "read"


# Channel credentials: one secret per registered store, created at run time under this prefix
# (mirrors chalicelib.composition.Services.secret_prefix).
def connection_secret_prefix(stage: str) -> str:
    return f"{resources.APP_NAME}/{stage}/connections/"


# Queues that another AWS account delivers to: queue key → (account id, why).
EXTERNAL_SENDERS: dict[str, tuple[str, str]] = {
    # SP-API's notification service sends from this account; it needs SendMessage and GetQueueAttributes
    # (Amazon's Notifications API use case guide; see shared/samples/SOURCES.md).
    "amazon_notifications": ("437568002678", "Selling Partner API notifications"),
}


# Every Chalice function, by Chalice resource name. A new handler must be added here (the synth and a test
# fail otherwise), so that no function silently gets more, or less, than it needs. Entries for functions
# the app does not (yet) define create nothing.
FUNCTION_ACCESS: dict[str, Access] = {
    # Routes: order queries (table), intake and webhooks (send to ingest; raw archive in the table),
    # /health (queue attributes, state machine descriptions), operator auth (the operator-token secret),
    # connections (channel credentials), DLQ redrive.
    API_HANDLER: Access(
        send_to=(resources.INGEST_QUEUE.key,),
        inspect_queues=True,
        describe_state_machines=True,
        secrets=(resources.OPERATOR_TOKEN_SECRET.key,),
        redrive=True,
        connection_secrets="manage",
        settings="manage",
        # the operator's fraud review answers the lifecycle's waiting task; a cancellation stops it;
        # POST /api/reconciliation/run ingests (and so starts lifecycles) as the schedule does
        task_results=(resources.ORDER_LIFECYCLE.key, resources.ORDER_RETURN.key),
        stop=(resources.ORDER_LIFECYCLE.key,),
        start=(resources.ORDER_LIFECYCLE.key, resources.ORDER_RETURN.key),
    ),
    # Ingest: applies deliveries to the table and starts the order's lifecycle execution.
    # A channel's cancellation compensates (Stripe key), a payment at the channel resumes a waiting order;
    # Stripe's webhooks come through here too.
    "ingest_deliveries": Access(
        start=(resources.ORDER_LIFECYCLE.key, resources.ORDER_RETURN.key),
        stop=(resources.ORDER_LIFECYCLE.key,),
        task_results=(resources.ORDER_LIFECYCLE.key, resources.ORDER_RETURN.key),
        connection_secrets="read",
    ),
    # SP-API notifications: reads the seller's credentials to fetch the order, archives and ingests it.
    "amazon_notifications": Access(
        start=(resources.ORDER_LIFECYCLE.key,),
        stop=(resources.ORDER_LIFECYCLE.key,),
        task_results=(resources.ORDER_LIFECYCLE.key,),
        connection_secrets="read",
    ),
    # Step Functions tasks: each reads and writes the order.
    # Validation, then the fraud check: reads Stripe Radar's verdict on the order's PaymentIntent (the
    # Stripe key is a connection secret).
    resources.FUNCTION_CHECK_ORDER: Access(connection_secrets="read"),
    resources.FUNCTION_RECORD_FAILURE: Access(),
    resources.FUNCTION_REQUEST_REVIEW: Access(),
    resources.FUNCTION_REVIEW_TIMED_OUT: Access(),
    # Payment: Stripe (its key) or the channel's API (its credentials); cancelling voids or refunds.
    resources.FUNCTION_TAKE_PAYMENT: Access(connection_secrets="read"),
    resources.FUNCTION_REQUEST_PAYMENT_METHOD: Access(task_results=(resources.ORDER_LIFECYCLE.key,)),
    resources.FUNCTION_CANCEL_ORDER: Access(connection_secrets="read"),
    # Fulfilment: the 3PL's API (its key) for stock and requests; the waits resume themselves when the
    # confirmations or the deliveries came first.
    resources.FUNCTION_FULFIL_ORDER: Access(
        connection_secrets="read", task_results=(resources.ORDER_LIFECYCLE.key,)
    ),
    resources.FUNCTION_AWAIT_ORDER_DELIVERY: Access(task_results=(resources.ORDER_LIFECYCLE.key,)),
    resources.FUNCTION_COMPLETE_ORDER: Access(),
    # Retired from the lifecycle (resources.ORDER_LIFECYCLE.retired_functions), the same access as before
    # for the executions started under the earlier definition.
    resources.FUNCTION_VALIDATE_ORDER: Access(),
    resources.FUNCTION_FRAUD_CHECK: Access(connection_secrets="read"),
    resources.FUNCTION_ALLOCATE: Access(connection_secrets="read"),
    resources.FUNCTION_REQUEST_FULFILMENT: Access(
        connection_secrets="read", task_results=(resources.ORDER_LIFECYCLE.key,)
    ),
    resources.FUNCTION_AWAIT_DELIVERY: Access(task_results=(resources.ORDER_LIFECYCLE.key,)),
    # Returns: the label (carrier key) and the RMA (3PL key); the waits resume themselves when the parcel
    # or the inspection came first; resolution refunds (Stripe key) or queues an exchange's replacement.
    resources.FUNCTION_APPROVE_RETURN: Access(),
    resources.FUNCTION_ISSUE_RETURN_LABEL: Access(connection_secrets="read"),
    resources.FUNCTION_AWAIT_RETURN: Access(task_results=(resources.ORDER_RETURN.key,)),
    resources.FUNCTION_RETURN_OVERDUE: Access(),
    resources.FUNCTION_RESOLVE_RETURN: Access(
        connection_secrets="read", send_to=(resources.INGEST_QUEUE.key,)
    ),
    resources.FUNCTION_RECORD_RETURN_FAILURE: Access(),
    # Scheduled: writes its heartbeat item.
    "heartbeat": Access(),
    # Scheduled: reads the open shipments and flags late or silent ones on their orders.
    "watch_shipments": Access(),
    # Scheduled: publishes order milestones with each channel's credentials.
    "publish_outbox": Access(connection_secrets="read"),
    # Scheduled: reads each Amazon store's returns report (its SP-API credentials) and records the returns
    # through the returns intake, which starts each new return's workflow.
    "amazon_returns": Access(connection_secrets="read", start=(resources.ORDER_RETURN.key,)),
    # Scheduled: reads closed orders from the by-status index, redacts their personal data and deletes their
    # archived raw deliveries (items of the single table): nothing else.
    "redact_personal_data": Access(),
    # Scheduled: reads each store's orders from its channel (credentials) and ingests them; may start,
    # stop and resume lifecycles as ingestion does.
    "reconcile": Access(
        connection_secrets="read",
        start=(resources.ORDER_LIFECYCLE.key,),
        stop=(resources.ORDER_LIFECYCLE.key,),
        task_results=(resources.ORDER_LIFECYCLE.key,),
    ),
}


@dataclass(frozen=True)
class ChaliceFunction:
    """One Lambda function that `chalice package` generates."""

    resource_name: str  # Chalice's name: "api_handler", or the handler's `name`
    kind: str  # "api", "lambda_function", or the event source config class (SQSEventConfig, ...)
    queues: tuple[str, ...] = ()  # names of the SQS queues it consumes
    schedule: str = ""  # @schedule handlers: the expression, "rate(1 minute)" or "cron(...)"
    description: str = ""  # @schedule handlers: the description given to the decorator

    @property
    def logical_id(self) -> str:
        """The function's logical id in Chalice's SAM template (what `Chalice.get_resource` takes)."""
        if self.resource_name == API_HANDLER:
            return API_HANDLER_LOGICAL_ID
        return to_cfn_resource_name(self.resource_name)

    @property
    def sqs_event_logical_id(self) -> str:
        """The name of its SQS event inside the SAM function's `Events`."""
        return to_cfn_resource_name(f"{self.resource_name}-sqs-event-source")

    @property
    def schedule_event_logical_id(self) -> str:
        """The name of its schedule event inside the SAM function's `Events` (an EventBridge rule)."""
        return to_cfn_resource_name(f"{self.resource_name}-event")

    def function_name(self, stage: str) -> str:
        """The physical name, as `chalice deploy` would name it (and as the local stack's ARNs assume)."""
        if self.resource_name == API_HANDLER:
            return f"{resources.APP_NAME}-{stage}"
        return f"{resources.APP_NAME}-{stage}-{self.resource_name}"


def load_app(root: Path = ROOT) -> Any:
    """Import the project's Chalice app the way `chalice package` does (module `app` at the root)."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module("app")
    module_file = Path(str(module.__file__)).resolve()
    if module_file != root / "app.py":
        raise RuntimeError(f"module 'app' resolved to {module_file}, not the Chalice app in {root}")
    return module.app


def _queue_name(config: Any) -> str:
    if config.queue:
        return str(config.queue)
    return str(config.queue_arn).rsplit(":", 1)[-1]


def schedule_expression(config: Any) -> str:
    """A ScheduledEventConfig's expression as text, exactly as `chalice package` renders it."""
    expression = config.schedule_expression
    to_string = getattr(expression, "to_string", None)  # chalice.Rate / chalice.Cron
    return str(to_string() if to_string else expression)


def chalice_functions(app: Any) -> list[ChaliceFunction]:
    """Every Lambda function the app packages into, in a stable order."""
    found: list[ChaliceFunction] = []
    if app.routes:
        found.append(ChaliceFunction(API_HANDLER, "api"))
    found.extend(ChaliceFunction(f.name, "lambda_function") for f in app.pure_lambda_functions)
    for source in app.event_sources:
        kind = type(source).__name__
        queues = (_queue_name(source),) if kind == "SQSEventConfig" else ()
        if kind == "ScheduledEventConfig":
            found.append(
                ChaliceFunction(
                    source.name,
                    kind,
                    schedule=schedule_expression(source),
                    description=str(source.description or ""),
                )
            )
        else:
            found.append(ChaliceFunction(source.name, kind, queues))
    if getattr(app, "websocket_handlers", None):
        # The hub has no websocket API; refuse rather than deploy handlers with nothing routed to them.
        raise ValueError("the app defines websocket handlers, which this stack does not deploy")
    return found


def check_functions(functions: list[ChaliceFunction], stage: str) -> list[str]:
    """Problems that would make the stack wrong: unknown functions, unknown queues, names too long."""
    problems: list[str] = []
    names = {f.resource_name for f in functions}
    for missing in sorted(names - FUNCTION_ACCESS.keys()):
        problems.append(f"Chalice function {missing!r} has no entry in infra FUNCTION_ACCESS")
    queue_names = {q.name for q in resources.QUEUES}
    for fn in functions:
        for queue in fn.queues:
            if queue not in queue_names:
                problems.append(f"{fn.resource_name} consumes {queue!r}, which is not in resources.QUEUES")
        if fn.kind == "ScheduledEventConfig" and not fn.schedule.startswith(SCHEDULE_EXPRESSION_PREFIXES):
            problems.append(
                f"{fn.resource_name}: schedule {fn.schedule!r} is not a rate() or cron() expression"
            )
        if len(fn.function_name(stage)) > MAX_FUNCTION_NAME:
            problems.append(
                f"function name {fn.function_name(stage)!r} exceeds {MAX_FUNCTION_NAME} characters"
            )
    for name, access in FUNCTION_ACCESS.items():
        if access.connection_secrets not in ("", "read", "manage"):
            problems.append(f"FUNCTION_ACCESS[{name!r}].connection_secrets: {access.connection_secrets!r}")
        if access.settings not in ("", "read", "manage"):
            problems.append(f"FUNCTION_ACCESS[{name!r}].settings: {access.settings!r}")
        for key in access.send_to:
            _known(problems, name, "queue", key, [q.key for q in resources.QUEUES])
        for key in access.start:
            _known(problems, name, "state machine", key, [m.key for m in resources.STATE_MACHINES])
        for key in access.secrets:
            _known(problems, name, "secret", key, [s.key for s in resources.SECRETS])
    return problems


def schedules(functions: list[ChaliceFunction]) -> list[ChaliceFunction]:
    """The @schedule handlers: each gets an EventBridge Scheduler schedule instead of Chalice's rule."""
    return [fn for fn in functions if fn.kind == "ScheduledEventConfig"]


def shopify_event_source(value: str | None) -> str | None:
    """The partner event source name from context `shopify_event_source` (the name, or its ARN), or None.

    The AWS console shows the ARN (arn:aws:events:<region>::event-source/aws.partner/shopify.com/...);
    the event bus that accepts the source must be named after the source itself.
    """
    if not value:
        return None
    name = value.strip().split(":event-source/", 1)[-1]
    if not SHOPIFY_EVENT_SOURCE_PATTERN.match(name):
        raise ValueError(
            f"shopify_event_source {value!r}: expected aws.partner/shopify.com/<app id>/<source name> "
            "(or its arn:aws:events:<region>::event-source/... ARN)"
        )
    return name


def _known(problems: list[str], owner: str, what: str, key: str, keys: list[str]) -> None:
    if key not in keys:
        problems.append(f"FUNCTION_ACCESS[{owner!r}] names unknown {what} {key!r}")


def definition_text(spec: resources.StateMachineSpec, root: Path = ROOT) -> str:
    return spec.definition_path(root).read_text()


def check_state_machine(spec: resources.StateMachineSpec, app: Any, root: Path = ROOT) -> list[str]:
    """Every placeholder resolves through the spec, to a resource that exists; nothing is left unused."""
    path = spec.definition_path(root)
    if not path.is_file():
        return [f"{spec.key}: definition {path} does not exist"]
    text = path.read_text()
    problems: list[str] = []
    try:
        json.loads(text)
    except ValueError as exc:
        problems.append(f"{spec.key}: {path.name} is not valid JSON: {exc}")
    used = resources.placeholders(text)
    for name in sorted(used - spec.substitutions.keys()):
        problems.append(f"{spec.key}: ${{{name}}} in {path.name} has no substitution in the spec")
    for name in sorted(spec.substitutions.keys() - used):
        problems.append(f"{spec.key}: substitution {name} is never used in {path.name}")
    task_functions = {f.name for f in app.pure_lambda_functions}
    queue_keys = {q.key for q in resources.QUEUES}
    for name, sub in sorted(spec.substitutions.items()):
        if sub.kind not in SUBSTITUTION_KINDS:
            problems.append(f"{spec.key}: {name} has unknown kind {sub.kind!r}")
        elif sub.kind == "function" and sub.target not in task_functions:
            problems.append(
                f"{spec.key}: {name} names Lambda function {sub.target!r}, which is not a "
                f"@lambda_function of the Chalice app (have: {sorted(task_functions)})"
            )
        elif sub.kind in ("queue_url", "queue_arn") and sub.target not in queue_keys:
            problems.append(f"{spec.key}: {name} names queue {sub.target!r}, not in resources.QUEUES")
        elif sub.kind in ("table_name", "table_arn") and sub.target != resources.TABLE.key:
            problems.append(f"{spec.key}: {name} names table {sub.target!r}, not {resources.TABLE.key!r}")
    return problems


def problems(app: Any, stage: str, root: Path = ROOT) -> list[str]:
    """Everything the stack would get wrong, before any CDK code runs."""
    found = check_functions(chalice_functions(app), stage)
    for spec in resources.STATE_MACHINES:
        found.extend(check_state_machine(spec, app, root))
    return found
