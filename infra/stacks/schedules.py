"""EventBridge Scheduler schedules for the @schedule handlers, and Shopify's partner event route."""

from __future__ import annotations

import json

from aws_cdk import (
    ArnFormat,
    CfnOutput,
)
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib import resources
from chalicelib.integrations.shopify.eventbridge import PARTNER_SOURCE_PREFIX
from infra.stacks import model
from infra.stacks.common import (
    SCHEDULE_MAX_EVENT_AGE,
    SCHEDULE_RETRY_ATTEMPTS,
    SHOPIFY_EVENTS_MAX_EVENT_AGE,
    SHOPIFY_EVENTS_RETRY_ATTEMPTS,
)


class SchedulesMixin:
    """EventBridge Scheduler schedules for the @schedule handlers, and Shopify's partner event route.

    Mixed into HubStack: construct ids (and so logical ids) are the stack's own.
    """

    def _schedules(self) -> dict[str, scheduler.CfnSchedule]:
        """One EventBridge Scheduler schedule per @schedule handler, replacing Chalice's EventBridge rule."""
        scheduled = model.schedules(self.functions)
        if not scheduled:
            return {}
        dlq_name = resources.staged_name(model.SCHEDULER_DLQ_NAME, self.stage)
        dlq = self._aws_only_dlq(
            "scheduler",
            dlq_name,
            "the EventBridge Scheduler schedules",
            f"EventBridge Scheduler gave up invoking a scheduled function (after {SCHEDULE_RETRY_ATTEMPTS} "
            "retries, or at once for errors retrying cannot fix: permissions, a missing function). The "
            f"message in {dlq_name} names the schedule and the error: fix the cause, then "
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

    def _shopify_events(self, source_name: str) -> events.Rule:
        """Shopify's partner event source → its event bus → a rule → the FIFO ingest queue.

        The bus accepts the partner event source (it must bear the source's name, and the source must be
        pending in this account and region); the ingest handler recognises the events by their source.
        """
        bus = events.EventBus(self, "ShopifyEventBus", event_source_name=source_name)
        dlq_name = resources.staged_name(model.SHOPIFY_EVENTS_DLQ_NAME, self.stage)
        ingest = resources.INGEST_QUEUE.physical_name(self.stage)
        dlq = self._aws_only_dlq(
            "shopify-events",
            dlq_name,
            "the Shopify EventBridge rule's target",
            f"EventBridge gave up delivering Shopify events to {ingest} (after "
            f"{SHOPIFY_EVENTS_MAX_EVENT_AGE.to_hours()} hours of retries, or at once for errors retrying "
            f"cannot fix: permissions, a missing queue). They are in {dlq_name}, the "
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
