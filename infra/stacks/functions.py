"""Each Lambda function's log group, least-privilege role and wiring (environment, triggers)."""

from __future__ import annotations

from aws_cdk import (
    ArnFormat,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs

from chalicelib import resources
from infra.stacks import model
from infra.stacks.common import (
    LOG_RETENTION,
    TABLE_ACTIONS,
    acknowledge,
    lambda_metric,
)


class FunctionsMixin:
    """Each Lambda function's log group, least-privilege role and wiring (environment, triggers).

    Mixed into HubStack: construct ids (and so logical ids) are the stack's own.
    """

    def _function_log_group(self, fn: model.ChaliceFunction) -> logs.LogGroup:
        # Created before the function, so Lambda never creates it (without retention) on first run.
        return logs.LogGroup(
            self,
            f"{fn.logical_id}Logs",
            log_group_name=f"/aws/lambda/{fn.function_name(self.stage)}",
            retention=LOG_RETENTION,
            removal_policy=self.removal,
        )

    def _function_role(self, fn: model.ChaliceFunction) -> iam.Role:  # noqa: PLR0912 - one branch per kind of access, flat on purpose
        access = model.FUNCTION_ACCESS[fn.resource_name]
        role = iam.Role(
            self,
            f"{fn.logical_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{fn.function_name(self.stage)}: only what this function uses",
        )
        log_group = self.log_groups[fn.resource_name]
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"]
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions: "
            "'*' is the only resource they accept (active tracing).",
        )
        if access.table:
            self.table.grant(role, *TABLE_ACTIONS)
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{self._logical_id(self.table)}.Arn>/index/*]",
                "Queries on the single table's own GSIs (by channel id, status, store, recency); the "
                "wildcard spans only this table's indexes.",
            )
        for spec in resources.QUEUES:
            if spec.name in fn.queues:
                self.queues[spec.key].grant_consume_messages(role)
                # A message that can never be processed is parked in the DLQ at once (domain/parking.py).
                self.dlqs[spec.key].grant_send_messages(role)
            if spec.key in access.send_to:
                self.queues[spec.key].grant_send_messages(role)
        if access.inspect_queues:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["sqs:GetQueueAttributes"], resources=[q.queue_arn for q in self.queues.values()]
                )
            )
        if access.start:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["states:StartExecution"],
                    resources=[self.state_machine_arns[key] for key in access.start],
                )
            )
        if access.describe_state_machines:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["states:DescribeStateMachine"], resources=list(self.state_machine_arns.values())
                )
            )
        if access.task_results:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                    resources=[self.state_machine_arns[key] for key in access.task_results],
                )
            )
        if access.stop:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["states:DescribeExecution", "states:StopExecution"],
                    resources=[
                        self.format_arn(
                            service="states",
                            resource="execution",
                            resource_name=f"{spec.physical_name(self.stage)}:*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                        for spec in resources.STATE_MACHINES
                        if spec.key in access.stop
                    ],
                )
            )
            for spec in resources.STATE_MACHINES:
                if spec.key in access.stop:
                    acknowledge(
                        role,
                        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
                        f"<AWS::AccountId>:execution:{spec.physical_name(self.stage)}:*]",
                        "Executions are named after orders at run time, so only the machine can be named: "
                        "the wildcard spans this one state machine's executions (describe and stop to "
                        "cancel an order).",
                    )
        for key in access.secrets:
            self.secrets[key].grant_read(role)
        if access.redrive:
            for spec in resources.QUEUES:
                self.dlqs[spec.key].grant_consume_messages(role)
                self.queues[spec.key].grant_send_messages(role)
        if access.connection_secrets:
            self._grant_connection_secrets(role, manage=access.connection_secrets == "manage")
        if access.settings:
            self._grant_runtime_settings(role, manage=access.settings == "manage")
        return role

    def _grant_connection_secrets(self, role: iam.Role, *, manage: bool) -> None:
        prefix = model.connection_secret_prefix(self.stage)
        arn = self.format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{prefix}*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        actions = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        if manage:
            actions += [
                "secretsmanager:CreateSecret",
                "secretsmanager:PutSecretValue",
                "secretsmanager:RestoreSecret",  # re-registering a store whose secret awaits deletion
                "secretsmanager:DeleteSecret",
            ]
        role.add_to_policy(iam.PolicyStatement(actions=actions, resources=[arn]))
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:"
            f"secret:{prefix}*]",
            "Channel credentials: one secret per registered store, created at run time by POST "
            "/api/connections, so the names are not known at deploy time; the wildcard is confined "
            "to this stage's connections/ prefix.",
        )

    def _wire_function(self, fn: model.ChaliceFunction) -> None:
        cfn = self.chalice.get_resource(fn.logical_id)
        role = self.roles[fn.resource_name]
        cfn.add_property_override("FunctionName", fn.function_name(self.stage))
        cfn.add_property_override("Role", role.role_arn)
        # The role's policy, the log group and consumed queues exist before the function and its event
        # source mapping (Lambda checks the role can read the queue when the mapping is created).
        policy = role.node.find_child("DefaultPolicy")
        cfn.node.add_dependency(policy, self.log_groups[fn.resource_name])
        if fn.queues:
            # Chalice does not set it; without it one failed record retries the whole batch.
            cfn.add_property_override(
                f"Events.{fn.sqs_event_logical_id}.Properties.FunctionResponseTypes",
                ["ReportBatchItemFailures"],
            )
            for spec in resources.QUEUES:
                if spec.name in fn.queues:
                    # The app's decorator names the stage-free queue (it cannot know the stage at import);
                    # the trigger reads this stage's queue.
                    cfn.add_property_override(
                        f"Events.{fn.sqs_event_logical_id}.Properties.Queue", self.queues[spec.key].queue_arn
                    )
                    cfn.node.add_dependency(self.queues[spec.key])
        name = fn.function_name(self.stage)
        self._alarm(
            f"{fn.resource_name.replace('_', '-')}-errors",
            lambda_metric("Errors", name),
            f"{name} raised errors (unhandled exceptions or timeouts).",
        )
        self._alarm(
            f"{fn.resource_name.replace('_', '-')}-throttles",
            lambda_metric("Throttles", name),
            f"{name} was throttled: account concurrency is exhausted or reserved concurrency too low.",
        )
