"""The runtime settings store: one SSM parameter per business policy, with its validated default, and each
function's access to exactly those parameters (reads; the API function also writes and reads history)."""

from __future__ import annotations

import json

from aws_cdk import ArnFormat
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm

from chalicelib.domain.runtime_settings import RUNTIME_SETTINGS
from chalicelib.settings import settings_path


class RuntimeSettingsMixin:
    """Mixed into HubStack: construct ids (and so logical ids) are the stack's own."""

    def _runtime_settings(self) -> dict[str, ssm.CfnParameter]:
        """The stage's settings under settings_path(stage), each its default (parsed first: a default its
        own schema refuses fails the synth). A deploy that changes a default overwrites that setting; an
        operator's change survives every deploy that does not (CloudFormation updates what changed)."""
        path = settings_path(self.stage)
        made = {}
        for name, setting in sorted(RUNTIME_SETTINGS.items()):
            setting.parse(setting.default)
            parameter = ssm.CfnParameter(
                self,
                f"Setting{''.join(part.title() for part in name.split('_'))}",
                name=f"{path}/{name}",
                type="String",
                tier="Standard",
                value=json.dumps(setting.default, separators=(",", ":"), sort_keys=True),
                description=setting.meaning[:1024],
            )
            parameter.apply_removal_policy(self.removal)
            made[name] = parameter
        return made

    def _settings_arns(self) -> tuple[str, list[str]]:
        """The path's ARN (GetParametersByPath) and each parameter's."""
        path = settings_path(self.stage).lstrip("/")

        def arn(name: str) -> str:
            slash = ArnFormat.SLASH_RESOURCE_NAME
            return self.format_arn(service="ssm", resource="parameter", resource_name=name, arn_format=slash)

        return arn(path), [arn(f"{path}/{name}") for name in sorted(RUNTIME_SETTINGS)]

    def _grant_runtime_settings(self, role: iam.Role, *, manage: bool) -> None:
        path_arn, parameter_arns = self._settings_arns()
        role.add_to_policy(iam.PolicyStatement(actions=["ssm:GetParametersByPath"], resources=[path_arn]))
        actions = ["ssm:GetParameter", "ssm:GetParameters"]
        if manage:
            actions += ["ssm:PutParameter", "ssm:GetParameterHistory"]
        role.add_to_policy(iam.PolicyStatement(actions=actions, resources=parameter_arns))
