"""The order-hub stack: the Chalice app plus every resource of chalicelib.resources, for one stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import (
    Acknowledgment,
    ArnFormat,
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from chalice.cdk import Chalice
from constructs import Construct

from chalicelib import resources
from chalicelib.integrations.shopify.eventbridge import PARTNER_SOURCE_PREFIX
from infra.stacks import model

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


class HubStack(Stack):
    """One stage of the hub. The construct id is the stage name, because Chalice takes its stage from the
    enclosing scope's id; the CloudFormation stack is named order-hub-<stage>.

    Physical names come from chalicelib.resources (Chalice's SQS triggers and the local stack use them), so
    one account and region holds one stage. Stages in PROTECTED_STAGES keep their data on deletion.

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
        self.state_machine_arns = {
            spec.key: self.format_arn(
                service="states",
                resource="stateMachine",
                resource_name=spec.name,
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
                # Metrics Insights: the sum over every dimension combination (channel, store, reason).
                expression=(  # CloudWatch Metrics Insights over two constants, not a database query
                    f'SELECT SUM("{model.WEBHOOK_REJECTED_METRIC}") FROM "{model.APP_METRICS_NAMESPACE}"'  # noqa: S608
                ),
                label="webhook deliveries rejected",
                period=ALARM_PERIOD,
            ),
            "Webhook deliveries were rejected (bad signature, unknown store, malformed body): a rotated "
            "webhook secret not registered via /api/connections, or someone probing the endpoints.",
        )
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        for spec in resources.SECRETS:
            CfnOutput(self, f"{_camel(spec.key)}SecretArn", value=self.secrets[spec.key].secret_arn)

    # ----------------------------------------------------------------- environment of every function

    def environment(self) -> dict[str, str]:
        """Exactly the variables chalicelib.settings reads (tokens resolve at synth)."""
        env = {"HUB_STAGE": self.stage, resources.TABLE.env_var: self.table.table_name}
        for spec in resources.QUEUES:
            env[spec.env_var] = self.queues[spec.key].queue_url
            env[spec.dlq_env_var] = self.dlqs[spec.key].queue_url
        for machine in resources.STATE_MACHINES:
            env[machine.env_var] = self.state_machine_arns[machine.key]
        for secret in resources.SECRETS:
            env[secret.env_var] = self.secrets[secret.key].secret_arn
        return env

    # ----------------------------------------------------------------------------------- resources

    def _table(self, spec: resources.TableSpec) -> dynamodb.Table:
        string = dynamodb.AttributeType.STRING
        table = dynamodb.Table(
            self,
            "Table",
            table_name=spec.name,
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
            f"{_camel(spec.key)}Dlq",
            queue_name=spec.dlq_name,
            fifo=fifo,
            retention_period=Duration.seconds(resources.DLQ_RETENTION_SECONDS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            removal_policy=self.removal,
        )
        queue = sqs.Queue(
            self,
            f"{_camel(spec.key)}Queue",
            queue_name=spec.name,
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
            CfnOutput(self, f"{_camel(spec.key)}QueueArn", value=queue.queue_arn, description=f"for {who}")
        self._alarm(
            f"dlq-{spec.key.replace('_', '-')}",
            dlq.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
            ),
            f"A message reached {spec.dlq_name}: inspect it and redrive (POST /api/dlq/{spec.key}/redrive).",
        )
        return queue, dlq

    def _secret(self, spec: resources.SecretSpec) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            f"{_camel(spec.key)}Secret",
            secret_name=spec.name,
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

    def _alarm_topic(self, email: str | None) -> sns.Topic:
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"{resources.APP_NAME}-{self.stage}-alarms",
            enforce_ssl=True,
        )
        if email:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return topic

    def _alarm(self, name: str, metric: cloudwatch.IMetric, description: str) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            f"Alarm{_camel(name)}",
            alarm_name=f"{resources.APP_NAME}-{self.stage}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
        return alarm

    # ----------------------------------------------------------------------------------- functions

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
                            resource_name=f"{spec.name}:*",
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
                        f"<AWS::AccountId>:execution:{spec.name}:*]",
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
                    cfn.node.add_dependency(self.queues[spec.key])
        name = fn.function_name(self.stage)
        self._alarm(
            f"{fn.resource_name.replace('_', '-')}-errors",
            _lambda_metric("Errors", name),
            f"{name} raised errors (unhandled exceptions or timeouts).",
        )
        self._alarm(
            f"{fn.resource_name.replace('_', '-')}-throttles",
            _lambda_metric("Throttles", name),
            f"{name} was throttled: account concurrency is exhausted or reserved concurrency too low.",
        )

    def _harden_rest_api(self, manage_account_role: bool) -> None:
        """Access logs, execution logs (errors) and tracing on the REST API stage Chalice generates."""
        if not any(fn.resource_name == model.API_HANDLER for fn in self.functions):
            return
        api = self.chalice.get_resource("RestAPI")
        if manage_account_role:
            # API Gateway writes logs through ONE role per account and region (AWS::ApiGateway::Account).
            # Kept on stack deletion: other APIs of the account may log through it by then.
            role = iam.Role(
                self,
                "ApiGatewayCloudWatchRole",
                assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
                managed_policies=[
                    iam.ManagedPolicy.from_aws_managed_policy_name(
                        "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                    )
                ],
            )
            role.apply_removal_policy(RemovalPolicy.RETAIN)
            acknowledge(
                role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "The AWS managed policy AWS documents for API Gateway's account-level logging role; "
                "API Gateway, not the hub, uses it, to create and write its own log groups.",
            )
            account = apigateway.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn)
            account.apply_removal_policy(RemovalPolicy.RETAIN)
            api.node.add_dependency(account)
        access_logs = logs.LogGroup(
            self,
            "ApiAccessLogs",
            log_group_name=f"/aws/apigateway/{resources.APP_NAME}-{self.stage}/access",
            retention=LOG_RETENTION,
            removal_policy=self.removal,
        )
        api.add_property_override("TracingEnabled", True)
        api.add_property_override(
            "AccessLogSetting",
            {
                "DestinationArn": access_logs.log_group_arn,
                # No query strings, headers or bodies: they can carry customer data and signatures.
                "Format": (
                    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
                    '"requestTime":"$context.requestTime","method":"$context.httpMethod",'
                    '"resource":"$context.resourcePath","status":"$context.status",'
                    '"length":"$context.responseLength","latencyMs":"$context.responseLatency",'
                    '"integrationError":"$context.integrationErrorMessage"}'
                ),
            },
        )
        # Execution logs at ERROR only, without request/response data (DataTraceEnabled would log bodies).
        api.add_property_override(
            "MethodSettings",
            [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "LoggingLevel": "ERROR",
                    "MetricsEnabled": True,
                    "DataTraceEnabled": False,
                }
            ],
        )

    # ------------------------------------------------------------------------------------ schedules

    def _aws_only_dlq(self, key: str, name: str, used_by: str, alarm: str) -> sqs.Queue:
        """A standard dead-letter queue of an AWS service (not in the shared spec), with its alarm."""
        dlq = sqs.Queue(
            self,
            f"{_camel(key)}Dlq",
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

    def _schedules(self) -> dict[str, scheduler.CfnSchedule]:
        """One EventBridge Scheduler schedule per @schedule handler, replacing Chalice's EventBridge rule."""
        scheduled = model.schedules(self.functions)
        if not scheduled:
            return {}
        dlq = self._aws_only_dlq(
            "scheduler",
            model.SCHEDULER_DLQ_NAME,
            "the EventBridge Scheduler schedules",
            f"EventBridge Scheduler gave up invoking a scheduled function (after {SCHEDULE_RETRY_ATTEMPTS} "
            "retries, or at once for errors retrying cannot fix: permissions, a missing function). The "
            f"message in {model.SCHEDULER_DLQ_NAME} names the schedule and the error: fix the cause, then "
            "delete the message (the next scheduled run follows anyway).",
        )
        # A scope of their own: hashed logical ids, which cannot collide with the Chalice template's.
        scope = Construct(self, "Scheduler")
        group_name = f"{resources.APP_NAME}-{self.stage}"
        group = scheduler.CfnScheduleGroup(scope, "Group", name=group_name)
        group_arn = self.format_arn(
            service="scheduler",
            resource="schedule-group",
            resource_name=group_name,
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        return {fn.resource_name: self._schedule(scope, fn, group, group_arn, dlq) for fn in scheduled}

    def _schedule(
        self,
        scope: Construct,
        fn: model.ChaliceFunction,
        group: scheduler.CfnScheduleGroup,
        group_arn: str,
        dlq: sqs.Queue,
    ) -> scheduler.CfnSchedule:
        name = fn.function_name(self.stage)
        function_arn = self.chalice.get_function(fn.logical_id).function_arn
        # Only this function (the unqualified ARN, no versions or aliases) and the DLQ, which Scheduler
        # writes to with the schedule's role. Assumable by Scheduler for this account's hub group only.
        role = iam.Role(
            scope,
            f"{fn.logical_id}Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": self.account, "aws:SourceArn": group_arn}},
            ),
            description=f"EventBridge Scheduler: invoke {name} ({fn.schedule})",
            inline_policies={
                "InvokeFunction": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function_arn]),
                        iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[dlq.queue_arn]),
                    ]
                )
            },
        )
        schedule = scheduler.CfnSchedule(
            scope,
            fn.logical_id,
            name=name,
            group_name=group.ref,
            description=(fn.description or f"Runs {name}")[:512],
            schedule_expression=fn.schedule,
            schedule_expression_timezone="UTC",  # Chalice's cron() is UTC, as EventBridge rules are
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=function_arn,
                role_arn=role.role_arn,
                input=self._scheduled_event(),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
                    maximum_event_age_in_seconds=int(SCHEDULE_MAX_EVENT_AGE.to_seconds()),
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=dlq.queue_arn),
            ),
        )
        # Chalice's own trigger, an EventBridge rule that SAM would generate from the function's Events.
        self.chalice.get_resource(fn.logical_id).add_property_deletion_override(
            f"Events.{fn.schedule_event_logical_id}"
        )
        return schedule

    def _scheduled_event(self) -> str:
        """The target input: the event a Chalice @schedule handler parses (chalice.app.CloudWatchEvent reads
        every one of these keys), filled in with Scheduler's context attributes. Unlike an EventBridge rule,
        Scheduler wraps nothing in an event envelope: the function receives this input and nothing else."""
        return json.dumps(
            {
                "version": "0",
                "id": "<aws.scheduler.execution-id>",
                "detail-type": "Scheduled Event",
                "source": "aws.scheduler",
                "account": self.account,
                "time": "<aws.scheduler.scheduled-time>",
                "region": self.region,
                "resources": ["<aws.scheduler.schedule-arn>"],
                "detail": {},
            }
        )

    # ------------------------------------------------------------------------- Shopify EventBridge

    def _shopify_events(self, source_name: str) -> events.Rule:
        """Shopify's partner event source → its event bus → a rule → the FIFO ingest queue.

        The bus accepts the partner event source (it must bear the source's name, and the source must be
        pending in this account and region); the ingest handler recognises the events by their source.
        """
        bus = events.EventBus(self, "ShopifyEventBus", event_source_name=source_name)
        dlq = self._aws_only_dlq(
            "shopify-events",
            model.SHOPIFY_EVENTS_DLQ_NAME,
            "the Shopify EventBridge rule's target",
            f"EventBridge gave up delivering Shopify events to {resources.INGEST_QUEUE.name} (after "
            f"{SHOPIFY_EVENTS_MAX_EVENT_AGE.to_hours()} hours of retries, or at once for errors retrying "
            f"cannot fix: permissions, a missing queue). They are in {model.SHOPIFY_EVENTS_DLQ_NAME}, the "
            "message attributes say why: fix the cause, then send each body to the ingest queue with "
            f"message group {model.SHOPIFY_EVENTS_MESSAGE_GROUP}.",
        )
        rule = events.Rule(
            self,
            "ShopifyEventsRule",
            rule_name=f"{resources.APP_NAME}-{self.stage}-shopify-events",
            description="Shopify webhooks from the partner event source, to the ingest queue",
            event_bus=bus,
            event_pattern=events.EventPattern(source=events.Match.prefix(PARTNER_SOURCE_PREFIX)),
        )
        # The target adds the ingest queue's and the DLQ's policy statements for events.amazonaws.com,
        # conditioned on aws:SourceArn = this rule.
        rule.add_target(
            events_targets.SqsQueue(
                self.queues[resources.INGEST_QUEUE.key],
                message_group_id=model.SHOPIFY_EVENTS_MESSAGE_GROUP,
                dead_letter_queue=dlq,
                retry_attempts=SHOPIFY_EVENTS_RETRY_ATTEMPTS,
                max_event_age=SHOPIFY_EVENTS_MAX_EVENT_AGE,
            )
        )
        CfnOutput(self, "ShopifyEventBusName", value=bus.event_bus_name, description="Shopify partner bus")
        return rule

    # ------------------------------------------------------------------------------ state machines

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
            f"{_camel(spec.key)}Logs",
            # /aws/vendedlogs/ keeps the log group resource policy small (AWS's advice for Step Functions).
            log_group_name=f"/aws/vendedlogs/states/{spec.name}",
            retention=LOG_RETENTION,
            removal_policy=self.removal,
        )
        machine = sfn.StateMachine(
            self,
            f"{_camel(spec.key)}StateMachine",
            state_machine_name=spec.name,
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
            f"An execution of {spec.name} failed: the order is FAILED and needs an operator.",
        )
        self._alarm(
            f"{spec.key.replace('_', '-')}-timed-out",
            machine.metric_timed_out(period=ALARM_PERIOD, statistic=cloudwatch.Stats.SUM),
            f"An execution of {spec.name} timed out.",
        )
        return machine

    def _logical_id(self, construct: Construct) -> str:
        child = construct.node.default_child
        assert child is not None
        return self.resolve(child.logical_id)  # type: ignore[attr-defined, no-any-return]


def _lambda_metric(metric_name: str, function_name: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/Lambda",
        metric_name=metric_name,
        dimensions_map={"FunctionName": function_name},
        statistic=cloudwatch.Stats.SUM,
        period=ALARM_PERIOD,
    )


def _camel(key: str) -> str:
    return "".join(part.capitalize() for part in key.replace("-", "_").split("_"))
