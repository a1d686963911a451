"""Tables, queues (with their DLQs) and secrets: the stateful resources of chalicelib.resources."""

from __future__ import annotations

from aws_cdk import (
    CfnOutput,
    Duration,
)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs

from chalicelib import resources
from infra.stacks import model
from infra.stacks.common import (
    acknowledge,
    camel,
)


class StorageMixin:
    """Tables, queues (with their DLQs) and secrets: the stateful resources of chalicelib.resources.

    Mixed into HubStack: construct ids (and so logical ids) are the stack's own.
    """

    def _table(self, spec: resources.TableSpec) -> dynamodb.Table:
        string = dynamodb.AttributeType.STRING
        table = dynamodb.Table(
            self,
            "Table",
            table_name=spec.physical_name(self.stage),
            partition_key=dynamodb.Attribute(name=spec.partition_key, type=string),
            sort_key=dynamodb.Attribute(name=spec.sort_key, type=string),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=spec.ttl_attribute,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=self.protected,
            removal_policy=self.removal,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=dynamodb.Attribute(name=index.partition_key, type=string),
                sort_key=dynamodb.Attribute(name=index.sort_key, type=string),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return table

    def _queue(self, spec: resources.QueueSpec) -> tuple[sqs.Queue, sqs.Queue]:
        fifo = True if spec.fifo else None
        dlq = sqs.Queue(
            self,
            f"{camel(spec.key)}Dlq",
            queue_name=spec.physical_dlq_name(self.stage),
            fifo=fifo,
            retention_period=Duration.seconds(resources.DLQ_RETENTION_SECONDS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            removal_policy=self.removal,
        )
        queue = sqs.Queue(
            self,
            f"{camel(spec.key)}Queue",
            queue_name=spec.physical_name(self.stage),
            fifo=fifo,
            content_based_deduplication=True if spec.fifo and spec.content_based_deduplication else None,
            visibility_timeout=Duration.seconds(spec.visibility_timeout_seconds),
            retention_period=Duration.seconds(spec.retention_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=spec.max_receive_count),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            removal_policy=self.removal,
        )
        if spec.key in model.EXTERNAL_SENDERS:
            account, who = model.EXTERNAL_SENDERS[spec.key]
            queue.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="ExternalSender",
                    principals=[iam.AccountPrincipal(account)],
                    actions=["sqs:SendMessage", "sqs:GetQueueAttributes"],
                    resources=[queue.queue_arn],
                )
            )
            CfnOutput(self, f"{camel(spec.key)}QueueArn", value=queue.queue_arn, description=f"for {who}")
        self._alarm(
            f"dlq-{spec.key.replace('_', '-')}",
            dlq.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
            ),
            f"A message reached {spec.physical_dlq_name(self.stage)}: inspect it and redrive "
            f"(POST /api/dlq/{spec.key}/redrive).",
        )
        return queue, dlq

    def _secret(self, spec: resources.SecretSpec) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            f"{camel(spec.key)}Secret",
            secret_name=spec.physical_name(self.stage),
            description=spec.description,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=48, exclude_punctuation=True
            ),
            removal_policy=self.removal,
        )
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "The operator token is a bearer token that operators hold, not a credential of another "
            "service: rotating it is an operator decision (put-secret-value), and the hub re-reads it "
            "within five minutes (Powertools cache), so no rotation Lambda is deployed.",
        )
        return secret

    def _aws_only_dlq(self, key: str, name: str, used_by: str, alarm: str) -> sqs.Queue:
        """A standard dead-letter queue of an AWS service (not in the shared spec), with its alarm."""
        dlq = sqs.Queue(
            self,
            f"{camel(key)}Dlq",
            queue_name=name,
            retention_period=Duration.seconds(resources.DLQ_RETENTION_SECONDS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            removal_policy=self.removal,
        )
        acknowledge(
            dlq,
            "AwsSolutions-SQS3",
            f"This queue is itself a dead-letter queue: the DeadLetterConfig of {used_by}, which cdk-nag "
            "does not recognise as such (it only knows SQS redrive policies). A DLQ of a DLQ would only "
            "move the problem; the alarm on this queue is the safeguard.",
        )
        self._alarm(
            f"dlq-{key}",
            dlq.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
            ),
            alarm,
        )
        return dlq
