"""The Step Functions state machines, from the ASL files with their substitutions."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn

from chalicelib import resources
from infra.stacks import model
from infra.stacks.common import (
    ALARM_PERIOD,
    LOG_RETENTION,
    TABLE_ACTIONS,
    acknowledge,
    camel,
)


class WorkflowsMixin:
    """The Step Functions state machines, from the ASL files with their substitutions.

    Mixed into HubStack: construct ids (and so logical ids) are the stack's own.
    """

    def _substitutions(self, spec: resources.StateMachineSpec) -> dict[str, str]:
        """Mirrors local/provision.py's resolve_substitutions, with CloudFormation values."""
        values: dict[str, str] = {}
        by_name = {fn.resource_name: fn for fn in self.functions}
        for placeholder, sub in spec.substitutions.items():
            if sub.kind == "function":
                values[placeholder] = self.chalice.get_function(by_name[sub.target].logical_id).function_arn
            elif sub.kind == "queue_url":
                values[placeholder] = self.queues[sub.target].queue_url
            elif sub.kind == "queue_arn":
                values[placeholder] = self.queues[sub.target].queue_arn
            elif sub.kind == "table_name":
                values[placeholder] = self.table.table_name
            elif sub.kind == "table_arn":
                values[placeholder] = self.table.table_arn
            else:
                raise ValueError(f"unknown substitution kind {sub.kind!r} for {placeholder}")
        return values

    def _state_machine(self, spec: resources.StateMachineSpec) -> sfn.StateMachine:
        text = model.definition_text(spec)
        values = self._substitutions(spec)
        missing = resources.placeholders(text) - values.keys()
        if missing:
            raise KeyError(f"{spec.definition_file}: unresolved placeholders {sorted(missing)}")
        log_group = logs.LogGroup(
            self,
            f"{camel(spec.key)}Logs",
            # /aws/vendedlogs/ keeps the log group resource policy small (AWS's advice for Step Functions).
            log_group_name=f"/aws/vendedlogs/states/{spec.physical_name(self.stage)}",
            retention=LOG_RETENTION,
            removal_policy=self.removal,
        )
        machine = sfn.StateMachine(
            self,
            f"{camel(spec.key)}StateMachine",
            state_machine_name=spec.physical_name(self.stage),
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(text),
            definition_substitutions=values,
            # ALL events, without execution data: inputs and outputs carry customer details.
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
            removal_policy=self.removal,
        )
        by_name = {fn.resource_name: fn for fn in self.functions}
        for sub in spec.substitutions.values():
            # The machine's role may invoke its own functions (unqualified ARNs, as the ASL uses them),
            # use the queues and the table it names, and nothing else.
            if sub.kind == "function":
                arn = self.chalice.get_function(by_name[sub.target].logical_id).function_arn
                machine.add_to_role_policy(
                    iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[arn])
                )
            elif sub.kind in ("queue_url", "queue_arn"):
                self.queues[sub.target].grant_send_messages(machine)
            elif sub.kind in ("table_name", "table_arn"):
                self.table.grant(machine, *TABLE_ACTIONS)
        for retired in spec.retired_functions:
            # Executions started under an earlier definition still call these until they end.
            arn = self.chalice.get_function(by_name[retired].logical_id).function_arn
            machine.add_to_role_policy(
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[arn])
            )
        policy = machine.role.node.try_find_child("DefaultPolicy")
        acknowledge(
            policy or machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery (logs:CreateLogDelivery, PutResourcePolicy, DescribeLogGroups, "
            "...) and X-Ray (PutTraceSegments, GetSamplingRules) accept only '*' as resource; CDK "
            "generates exactly these statements for logging and tracing.",
        )
        self._alarm(
            f"{spec.key.replace('_', '-')}-failed",
            machine.metric_failed(period=ALARM_PERIOD, statistic=cloudwatch.Stats.SUM),
            f"An execution of {spec.physical_name(self.stage)} failed: the order is FAILED and needs an "
            "operator.",
        )
        self._alarm(
            f"{spec.key.replace('_', '-')}-timed-out",
            machine.metric_timed_out(period=ALARM_PERIOD, statistic=cloudwatch.Stats.SUM),
            f"An execution of {spec.physical_name(self.stage)} timed out.",
        )
        return machine
