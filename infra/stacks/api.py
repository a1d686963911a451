"""The REST API's hardening: access and execution logs, tracing, the account's logging role."""

from __future__ import annotations

from aws_cdk import (
    RemovalPolicy,
)
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs

from chalicelib import resources
from infra.stacks import model
from infra.stacks.common import (
    LOG_RETENTION,
    acknowledge,
)


class ApiMixin:
    """The REST API's hardening: access and execution logs, tracing, the account's logging role.

    Mixed into HubStack: construct ids (and so logical ids) are the stack's own.
    """

    def _harden_rest_api(self, manage_account_role: bool) -> None:
        """The stage's API name, access logs, execution logs (errors) and tracing on Chalice's REST API."""
        if not any(fn.resource_name == model.API_HANDLER for fn in self.functions):
            return
        api = self.chalice.get_resource("RestAPI")
        # Chalice names the API after the app (the OpenAPI title); the stage's API carries the stage.
        name = f"{resources.APP_NAME}-{self.stage}"
        api.add_property_override("Name", name)
        api.add_property_override("DefinitionBody.info.title", name)
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
