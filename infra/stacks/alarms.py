"""The alarm topic and the alarms that publish to it."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions

from chalicelib import resources
from infra.stacks.common import (
    camel,
)


class AlarmsMixin:
    """The alarm topic and the alarms that publish to it.

    Mixed into HubStack: construct ids (and so logical ids) are the stack's own.
    """

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
            f"Alarm{camel(name)}",
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
