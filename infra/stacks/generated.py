"""cdk-nag on the resources SAM generates from Chalice's `AWS::Serverless::*` ones.

The main synth's cdk-nag run cannot see inside `AWS::Serverless::Function`/`Api`. infra/check.py expands
the synthesized template with aws-sam-translator and runs AwsSolutionsChecks again on what the expansion
created (Lambda functions, event source mappings, rules, the REST API and its stage); the acknowledgements
for those findings are made here, each with its reason. Resources the CDK code defines itself are checked,
and acknowledged, in the main synth (hub_stack.py, common.acknowledge).
"""

from __future__ import annotations

from aws_cdk import cloudformation_include as cfn_include

from infra.stacks.common import acknowledge

# Resource type → [(rule, reason)], applied to every generated resource of that type.
ACKNOWLEDGEMENTS: dict[str, list[tuple[str, str]]] = {
    "AWS::Lambda::Function": [
        (
            "AwsSolutions-L1",
            "Chalice sets the runtime to the Python that runs the synth (3.11, the project's floor) and "
            "downloads the matching binary wheels (pydantic-core); a newer runtime would need the synth "
            "to run on that Python too. Raise both together.",
        )
    ],
    "AWS::ApiGateway::RestApi": [
        (
            "AwsSolutions-APIG2",
            "Bodies are validated by the handlers (canonical order model, per-channel normalisers); "
            "webhook routes must see the raw body to verify the sender's HMAC, so API Gateway models "
            "would duplicate that validation without adding safety.",
        )
    ],
    "AWS::ApiGateway::Stage": [
        (
            "AwsSolutions-APIG3",
            "No WAF web ACL by default (a per-account cost decision): webhooks are rejected unless "
            "their HMAC signature verifies, operator routes need the bearer token. Associate a web ACL "
            "with the stage where the account runs WAF.",
        )
    ],
}


def generated_resources(synthesized: dict[str, object], expanded: dict[str, object]) -> dict[str, str]:
    """Logical id → type of what the SAM expansion created or changed (not checked by the main synth)."""
    before = synthesized.get("Resources", {})
    after = expanded.get("Resources", {})
    assert isinstance(before, dict) and isinstance(after, dict)
    return {
        logical_id: str(resource["Type"])
        for logical_id, resource in after.items()
        if logical_id not in before or before[logical_id].get("Type") != resource["Type"]
    }


def acknowledge_generated(template: cfn_include.CfnInclude, generated: dict[str, str]) -> None:
    for logical_id, resource_type in generated.items():
        for rule, reason in ACKNOWLEDGEMENTS.get(resource_type, []):
            acknowledge(template.get_resource(logical_id), rule, reason)
