"""What the stack's parts share: retention, alarm period, table actions, retry windows, small helpers."""

from __future__ import annotations

from aws_cdk import (
    Acknowledgment,
    Duration,
    Validations,
)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

# Stages whose data outlives `cdk destroy` and whose table refuses deletion.
PROTECTED_STAGES = frozenset({"prod"})
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
ALARM_PERIOD = Duration.minutes(5)
# Item-level access to the table and its indexes: no Scan (the hub never scans) and no stream reads.
# TransactWriteItems needs no action of its own: IAM checks each item's Put/Update/ConditionCheck.
TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
)
# EventBridge Scheduler retries an invocation it could not deliver (Lambda throttling or service errors; the
# function runs asynchronously, its own errors are Lambda's to retry and alarm on). A scheduled job that
# cannot start within this window goes to the scheduler DLQ, and alarms, rather than running late: every
# schedule is periodic, the next run follows anyway.
SCHEDULE_RETRY_ATTEMPTS = 3
SCHEDULE_MAX_EVENT_AGE = Duration.minutes(15)
# EventBridge's own defaults for a rule target, stated: a Shopify event is retried for a day before it
# lands in the DLQ (Shopify does not send it again).
SHOPIFY_EVENTS_RETRY_ATTEMPTS = 185
SHOPIFY_EVENTS_MAX_EVENT_AGE = Duration.hours(24)


def acknowledge(scope: Construct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on one construct (and its children), with the reason."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))


def lambda_metric(metric_name: str, function_name: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/Lambda",
        metric_name=metric_name,
        dimensions_map={"FunctionName": function_name},
        statistic=cloudwatch.Stats.SUM,
        period=ALARM_PERIOD,
    )


def camel(key: str) -> str:
    return "".join(part.capitalize() for part in key.replace("-", "_").split("_"))
