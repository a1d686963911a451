"""Several stages share one account and region: two synthesised stages share no physical name, every
physical name carries its stage, and nothing of one stage points at the other's (or a stage-free) resource.

Needs the CDK venv (infra/.venv), like test_template.py: two synths per session (tests/infra/conftest.py),
the `dev` one shared with test_template.py. Checked on what CloudFormation deploys: the templates with SAM's
transform applied, so the functions, the REST API and the event source mappings are seen as well.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip(
    "aws_cdk",
    reason="aws-cdk-lib is not installed: run with infra/.venv (pip install -r infra/requirements.txt)",
)

from chalicelib import resources
from infra.check import expand_template
from infra.stacks import model

STAGES = ("dev", "prod")

# (resource type, property): a name the resource is created under, unique per account and region (or per
# account: IAM), so two stages must not share it. Types the stack may add later are listed too.
PHYSICAL_NAMES = {
    ("AWS::ApiGateway::RestApi", "Name"),
    ("AWS::AppConfig::Application", "Name"),
    ("AWS::CloudWatch::Alarm", "AlarmName"),
    ("AWS::DynamoDB::Table", "TableName"),
    ("AWS::Events::EventBus", "Name"),
    ("AWS::Events::Rule", "Name"),
    ("AWS::IAM::ManagedPolicy", "ManagedPolicyName"),
    ("AWS::IAM::Role", "RoleName"),
    ("AWS::Lambda::Function", "FunctionName"),
    ("AWS::Logs::LogGroup", "LogGroupName"),
    ("AWS::Scheduler::Schedule", "Name"),
    ("AWS::Scheduler::ScheduleGroup", "Name"),
    ("AWS::SecretsManager::Secret", "Name"),
    ("AWS::SNS::Topic", "TopicName"),
    ("AWS::SQS::Queue", "QueueName"),
    ("AWS::SSM::Parameter", "Name"),
    ("AWS::StepFunctions::StateMachine", "StateMachineName"),
}
# (resource type, property) → why a *Name property there is not a name of its own in the account.
NOT_PHYSICAL_NAMES = {
    ("AWS::ApiGateway::Deployment", "StageName"): "an API Gateway stage, scoped to its own REST API",
    ("AWS::ApiGateway::Stage", "StageName"): "an API Gateway stage, scoped to its own REST API",
    ("AWS::CloudWatch::Alarm", "MetricName"): "the metric the alarm watches",
    ("AWS::IAM::Policy", "PolicyName"): "an inline policy, scoped to the roles it is attached to",
    ("AWS::Lambda::EventSourceMapping", "FunctionName"): "a reference to the function",
    ("AWS::Lambda::Permission", "FunctionName"): "a reference to the function",
    ("AWS::Scheduler::Schedule", "GroupName"): "a reference to the schedule group",
}
# Whatever of the hub a string names (a physical name, or an ARN built from one) starts like this...
APP_REFERENCE = re.compile(rf"{re.escape(resources.APP_NAME)}[-/]")


def staged(stage: str) -> re.Pattern[str]:
    """...and carries the stage right after the app name: order-hub-<stage> (ending there, or going on with
    `-`, `.`, ...: not order-hub-<stage>x) or order-hub/<stage>/."""
    app = re.escape(resources.APP_NAME)
    return re.compile(rf"{app}-{re.escape(stage)}(?![a-z0-9_])|{app}/{re.escape(stage)}/")


@pytest.fixture(scope="module")
def deployed(stage_template: Callable[[str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """stage → its template as CloudFormation deploys it (SAM's transform applied)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator wants one; any will do
    return {stage: expand_template(stage_template(stage)) for stage in STAGES}


def name_properties(template: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """(logical id, type, property, value) of every top-level property called Name or ending in Name."""
    for logical_id, resource in template["Resources"].items():
        for prop, value in (resource.get("Properties") or {}).items():
            if prop.endswith("Name"):
                yield logical_id, resource["Type"], prop, value


def physical_names(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(resource type, physical name) → the logical id that owns it (names are unique per type: a function
    and the schedule that runs it may share one)."""
    names: dict[tuple[str, str], str] = {}
    for logical_id, resource_type, prop, value in name_properties(template):
        if (resource_type, prop) in PHYSICAL_NAMES:
            assert isinstance(value, str), f"{logical_id}.{prop} is not a literal name: {value}"
            key = (resource_type, value)
            assert key not in names, f"{value} is the name of {names[key]} and of {logical_id}"
            names[key] = logical_id
    return names


def strings(value: Any) -> Iterator[str]:
    """Every string in a template value, Fn::Join parts joined (tokens as ${...}) so ARNs read whole."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            yield separator.join(p if isinstance(p, str) else "${" + json.dumps(p) + "}" for p in parts)
            for part in parts:
                if not isinstance(part, str):
                    yield from strings(part)
        else:
            for item in value.values():
                yield from strings(item)


def test_every_name_property_is_classified(deployed):
    """A resource type with a name the lists above do not know fails here: decide whether it is physical."""
    for stage, template in deployed.items():
        unknown = {
            (resource_type, prop)
            for _, resource_type, prop, _ in name_properties(template)
            if (resource_type, prop) not in PHYSICAL_NAMES and (resource_type, prop) not in NOT_PHYSICAL_NAMES
        }
        assert not unknown, f"{stage}: add to PHYSICAL_NAMES or NOT_PHYSICAL_NAMES: {sorted(unknown)}"


def test_two_stages_share_no_physical_name(deployed):
    dev, prod = ({name for _, name in physical_names(deployed[stage])} for stage in STAGES)
    assert len(dev) > 50 and len(prod) == len(dev)  # the table, queues, functions, logs, alarms, ...
    shared = sorted(dev & prod)
    assert not shared, f"names both stages would create: {shared}"


@pytest.mark.parametrize("stage", STAGES)
def test_every_physical_name_carries_its_stage(deployed, stage):
    pattern = staged(stage)
    unstaged = sorted(name for _, name in physical_names(deployed[stage]) if not pattern.search(name))
    assert not unstaged, f"{stage}: physical names without the stage: {unstaged}"


@pytest.mark.parametrize("stage", STAGES)
def test_every_spec_resource_is_created_under_its_stage_name(deployed, stage):
    names = {name for _, name in physical_names(deployed[stage])}
    expected = {resources.TABLE.physical_name(stage)}
    expected |= {q.physical_name(stage) for q in resources.QUEUES}
    expected |= {q.physical_dlq_name(stage) for q in resources.QUEUES}
    expected |= {m.physical_name(stage) for m in resources.STATE_MACHINES}
    expected |= {s.physical_name(stage) for s in resources.SECRETS}
    expected |= {fn.function_name(stage) for fn in model.chalice_functions(model.load_app())}
    expected |= {f"{resources.APP_NAME}-{stage}"}  # the REST API (and the schedule group)
    assert expected <= names


@pytest.mark.parametrize("stage", STAGES)
def test_nothing_refers_to_a_stage_free_or_another_stages_resource(deployed, stage):
    """ARNs in policies, environment variables, substitutions and alarm texts name this stage's resources:
    every mention of the app (order-hub- or order-hub/) is followed by the stage."""
    pattern = staged(stage)
    wrong = set()
    for logical_id, resource in deployed[stage]["Resources"].items():
        for text in strings(resource.get("Properties") or {}):
            for match in APP_REFERENCE.finditer(text):
                if not pattern.match(text, match.start()):
                    wrong.add(f"{logical_id}: ...{text[max(0, match.start() - 30) : match.end() + 40]}...")
    assert not wrong, f"{stage}: stage-free or foreign references:\n" + "\n".join(sorted(wrong))


@pytest.mark.parametrize("stage", STAGES)
def test_sqs_triggers_read_the_stages_own_queues(deployed, stage):
    """The app's decorators name the stage-free queue; each event source mapping reads this stage's."""
    template = deployed[stage]
    queue_names = {
        logical_id: r["Properties"]["QueueName"]
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::SQS::Queue"
    }
    mappings = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    consumed = {q for fn in model.chalice_functions(model.load_app()) for q in fn.queues}
    assert len(mappings) == len(consumed) > 0
    read = set()
    for mapping in mappings:
        queue_id, attribute = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"]
        assert attribute == "Arn"
        read.add(queue_names[queue_id])
    by_name = {q.name: q for q in resources.QUEUES}
    assert read == {by_name[name].physical_name(stage) for name in consumed}


@pytest.mark.parametrize("stage", STAGES)
def test_the_webhook_rejections_alarm_counts_its_own_stage(deployed, stage):
    """The app's metrics share one namespace across stages; each stage's alarm selects its stage."""
    (alarm,) = [
        r["Properties"]
        for r in deployed[stage]["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"]["AlarmName"] == f"{resources.APP_NAME}-{stage}-webhook-rejections"
    ]
    (query,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    assert query.endswith(f"WHERE {model.APP_METRICS_STAGE_DIMENSION} = '{stage}'")


def test_stage_names_follow_the_spec():
    assert resources.staged_name("order-hub-main", "prod") == "order-hub-prod-main"
    assert resources.staged_name("order-hub-ingest.fifo", "prod") == "order-hub-prod-ingest.fifo"
    assert resources.staged_name("order-hub/operator-token", "prod") == "order-hub/prod/operator-token"
    with pytest.raises(ValueError, match="order-hub"):
        resources.staged_name("orders-main", "prod")
