"""The order-hub stack: the Chalice app plus every resource of chalicelib.resources, for one stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import (
    ArnFormat,
    CfnOutput,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from chalice.cdk import Chalice
from constructs import Construct

from chalicelib import resources
from chalicelib.settings import settings_path
from infra.stacks import model
from infra.stacks.alarms import AlarmsMixin
from infra.stacks.api import ApiMixin
from infra.stacks.common import (
    ALARM_PERIOD,
    PROTECTED_STAGES,
    camel,
)
from infra.stacks.functions import FunctionsMixin
from infra.stacks.runtime_settings import RuntimeSettingsMixin
from infra.stacks.schedules import SchedulesMixin
from infra.stacks.storage import StorageMixin
from infra.stacks.workflows import WorkflowsMixin


class HubStack(
    StorageMixin,
    AlarmsMixin,
    RuntimeSettingsMixin,
    FunctionsMixin,
    ApiMixin,
    SchedulesMixin,
    WorkflowsMixin,
    Stack,
):
    """One stage of the hub. The construct id is the stage name, because Chalice takes its stage from the
    enclosing scope's id; the CloudFormation stack is named order-hub-<stage>.

    Physical names carry the stage (chalicelib.resources' physical_name(stage): order-hub-<stage>-...,
    order-hub/<stage>/...), so several stages share an account and region; Chalice's SQS triggers, which
    name the stage-free queue, are pointed at this stage's queues. Stages in PROTECTED_STAGES keep their data
    on deletion.

    Chalice's @schedule handlers run from EventBridge Scheduler schedules (Chalice's own EventBridge rules are
    removed). `shopify_event_source` (a partner event source name, see model.shopify_event_source) adds the
    partner event bus and a rule that routes Shopify's events to the ingest queue.
    """

    def __init__(
        self,
        scope: Construct,
        stage: str,
        *,
        source_dir: Path = model.ROOT,
        alarm_email: str | None = None,
        manage_api_gateway_account: bool = True,
        shopify_event_source: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("stack_name", f"{resources.APP_NAME}-{stage}")
        super().__init__(scope, stage, description=f"{resources.APP_NAME} ({stage})", **kwargs)
        self.stage = stage
        self.protected = stage in PROTECTED_STAGES
        self.removal = RemovalPolicy.RETAIN if self.protected else RemovalPolicy.DESTROY

        app = model.load_app(source_dir)
        self.functions = model.chalice_functions(app)
        found = model.problems(app, stage, source_dir)
        if found:
            raise ValueError("the stack cannot be built:\n  " + "\n  ".join(found))

        self.alarm_topic = self._alarm_topic(alarm_email)
        self.table = self._table(resources.TABLE)
        self.queues: dict[str, sqs.Queue] = {}
        self.dlqs: dict[str, sqs.Queue] = {}
        for spec in resources.QUEUES:
            self.queues[spec.key], self.dlqs[spec.key] = self._queue(spec)
        self.secrets = {spec.key: self._secret(spec) for spec in resources.SECRETS}
        self.runtime_settings = self._runtime_settings()
        self.state_machine_arns = {
            spec.key: self.format_arn(
                service="states",
                resource="stateMachine",
                resource_name=spec.physical_name(stage),
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for spec in resources.STATE_MACHINES
        }

        self.log_groups = {fn.resource_name: self._function_log_group(fn) for fn in self.functions}
        self.roles = {fn.resource_name: self._function_role(fn) for fn in self.functions}
        self.chalice = Chalice(
            self,
            "Hub",
            source_dir=str(source_dir),
            stage_config={
                "environment_variables": self.environment(),
                "lambda_timeout": model.FUNCTION_TIMEOUT_SECONDS,
                "lambda_memory_size": model.FUNCTION_MEMORY_MB,
                "xray": True,
                # Roles are made here, one per function; each function's Role is set in _wire_function.
                "manage_iam_role": False,
                "iam_role_arn": self.roles[self.functions[0].resource_name].role_arn,
                "autogen_policy": False,
            },
        )
        for fn in self.functions:
            self._wire_function(fn)
        self._harden_rest_api(manage_account_role=manage_api_gateway_account)
        self.schedules = self._schedules()
        self.shopify_event_rule = self._shopify_events(shopify_event_source) if shopify_event_source else None

        self.state_machines = {spec.key: self._state_machine(spec) for spec in resources.STATE_MACHINES}
        self._alarm(
            "webhook-rejections",
            cloudwatch.MathExpression(
                # Metrics Insights: this stage's sum over every other dimension (channel, store, reason).
                # The stage is validated ([a-z0-9-]) and the rest are constants: not a database query.
                expression=(
                    f'SELECT SUM("{model.WEBHOOK_REJECTED_METRIC}") FROM "{model.APP_METRICS_NAMESPACE}" '  # noqa: S608
                    f"WHERE {model.APP_METRICS_STAGE_DIMENSION} = '{stage}'"
                ),
                label="webhook deliveries rejected",
                period=ALARM_PERIOD,
            ),
            "Webhook deliveries were rejected (bad signature, unknown store, malformed body): a rotated "
            "webhook secret not registered via /api/connections, or someone probing the endpoints.",
        )
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        for spec in resources.SECRETS:
            CfnOutput(self, f"{camel(spec.key)}SecretArn", value=self.secrets[spec.key].secret_arn)

    # ----------------------------------------------------------------- environment of every function

    def environment(self) -> dict[str, str]:
        """Exactly the variables chalicelib.settings reads (tokens resolve at synth)."""
        env = {"HUB_STAGE": self.stage, resources.TABLE.env_var: self.table.table_name}
        # The business policies are not here: they are parameters below this path (runtime_settings.py).
        env["HUB_SETTINGS_PATH"] = settings_path(self.stage)
        for spec in resources.QUEUES:
            env[spec.env_var] = self.queues[spec.key].queue_url
            env[spec.dlq_env_var] = self.dlqs[spec.key].queue_url
        for machine in resources.STATE_MACHINES:
            env[machine.env_var] = self.state_machine_arns[machine.key]
        for secret in resources.SECRETS:
            env[secret.env_var] = self.secrets[secret.key].secret_arn
        return env

    # ----------------------------------------------------------------------------------- resources

    # ------------------------------------------------------------------------- Shopify EventBridge

    def _logical_id(self, construct: Construct) -> str:
        child = construct.node.default_child
        assert child is not None
        return self.resolve(child.logical_id)  # type: ignore[attr-defined, no-any-return]
