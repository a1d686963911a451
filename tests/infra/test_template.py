"""The synthesized CloudFormation template matches chalicelib.resources, the spec the local stack uses.

Needs the CDK venv (infra/.venv): skipped where aws_cdk is not importable. Synthesizes once per session
(offline; the first run ever downloads Lambda wheels into .chalice/deployments/), or reads an existing
assembly from $HUB_INFRA_ASSEMBLY (a cdk.out directory, e.g. the one `infra/check.py --outdir` leaves).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "aws_cdk",
    reason="aws-cdk-lib is not installed: run with infra/.venv (pip install -r infra/requirements.txt)",
)

from chalicelib import resources
from chalicelib.settings import from_environ
from infra.stacks import model

STAGE = "dev"


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    existing = os.environ.get("HUB_INFRA_ASSEMBLY")
    if existing:
        path = Path(existing) / f"{STAGE}.template.json"
    else:
        from infra import app as cdk_app

        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        outdir = tmp_path_factory.mktemp("cdk.out")
        cdk_app.build(outdir=str(outdir), stage=STAGE)
        path = outdir / f"{STAGE}.template.json"
    return json.loads(path.read_text())


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def queue_by_name(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    found = [
        (logical_id, r["Properties"])
        for logical_id, r in of_type(template, "AWS::SQS::Queue").items()
        if r["Properties"].get("QueueName") == name
    ]
    assert len(found) == 1, f"expected one queue named {name}"
    return found[0]


def test_table_matches_the_spec(template):
    (table,) = [r["Properties"] for r in of_type(template, "AWS::DynamoDB::Table").values()]
    spec = resources.TABLE
    assert table["TableName"] == spec.name
    assert table["KeySchema"] == [
        {"AttributeName": spec.partition_key, "KeyType": "HASH"},
        {"AttributeName": spec.sort_key, "KeyType": "RANGE"},
    ]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    indexes = {
        gsi["IndexName"]: (
            [k["AttributeName"] for k in gsi["KeySchema"]],
            gsi["Projection"]["ProjectionType"],
        )
        for gsi in table["GlobalSecondaryIndexes"]
    }
    assert indexes == {i.name: ([i.partition_key, i.sort_key], "ALL") for i in spec.indexes}


@pytest.mark.parametrize("spec", resources.QUEUES, ids=lambda q: q.key)
def test_queue_and_dlq_match_the_spec(template, spec):
    dlq_id, dlq = queue_by_name(template, spec.dlq_name)
    _, queue = queue_by_name(template, spec.name)
    assert bool(queue.get("FifoQueue")) is spec.fifo
    assert bool(dlq.get("FifoQueue")) is spec.fifo
    assert queue["VisibilityTimeout"] == spec.visibility_timeout_seconds
    assert queue["MessageRetentionPeriod"] == spec.retention_seconds
    assert dlq["MessageRetentionPeriod"] == resources.DLQ_RETENTION_SECONDS
    assert bool(queue.get("ContentBasedDeduplication")) is (spec.fifo and spec.content_based_deduplication)
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": spec.max_receive_count,
    }
    for props in (queue, dlq):
        assert props.get("SqsManagedSseEnabled") is True


def test_no_queue_outside_the_spec(template):
    names = {r["Properties"]["QueueName"] for r in of_type(template, "AWS::SQS::Queue").values()}
    assert names == {q.name for q in resources.QUEUES} | {q.dlq_name for q in resources.QUEUES}


@pytest.mark.parametrize("spec", resources.QUEUES, ids=lambda q: q.key)
def test_every_queue_requires_tls_and_every_dlq_alarms(template, spec):
    dlq_id, _ = queue_by_name(template, spec.dlq_name)
    policies = [
        r["Properties"]
        for r in of_type(template, "AWS::SQS::QueuePolicy").values()
        if {"Ref": dlq_id} in r["Properties"]["Queues"]
    ]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for p in policies
        for s in p["PolicyDocument"]["Statement"]
    )
    alarms = [
        a["Properties"]
        for a in of_type(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}]
    ]
    assert len(alarms) == 1
    assert alarms[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarms[0]["Threshold"] == 0
    assert alarms[0]["ComparisonOperator"] == "GreaterThanThreshold"


@pytest.mark.parametrize("spec", resources.STATE_MACHINES, ids=lambda m: m.key)
def test_state_machine_matches_the_spec(template, spec):
    (machine,) = [
        r["Properties"]
        for r in of_type(template, "AWS::StepFunctions::StateMachine").values()
        if r["Properties"]["StateMachineName"] == spec.name
    ]
    definition = model.definition_text(spec)
    assert machine["DefinitionString"] == definition  # unchanged: placeholders resolve in CloudFormation
    substitutions = machine["DefinitionSubstitutions"]
    assert substitutions.keys() == resources.placeholders(definition) == spec.substitutions.keys()
    functions = {f.resource_name: f for f in model.chalice_functions(model.load_app())}
    for placeholder, sub in spec.substitutions.items():
        if sub.kind == "function":
            function = functions[sub.target]
            assert substitutions[placeholder] == {"Fn::GetAtt": [function.logical_id, "Arn"]}
            assert template["Resources"][function.logical_id]["Type"] == "AWS::Serverless::Function"
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"


def test_state_machine_role_invokes_only_its_functions(template):
    for spec in resources.STATE_MACHINES:
        (logical_id,) = [
            k
            for k, r in of_type(template, "AWS::StepFunctions::StateMachine").items()
            if r["Properties"]["StateMachineName"] == spec.name
        ]
        role = template["Resources"][logical_id]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        statements = [
            s
            for p in of_type(template, "AWS::IAM::Policy").values()
            if {"Ref": role} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]
        invoked = {
            s["Resource"]["Fn::GetAtt"][0] for s in statements if s["Action"] == "lambda:InvokeFunction"
        }
        functions = {f.resource_name: f.logical_id for f in model.chalice_functions(model.load_app())}
        expected = {functions[s.target] for s in spec.substitutions.values() if s.kind == "function"}
        assert invoked == expected


def test_functions_get_exactly_the_environment_settings_reads(template):
    functions = of_type(template, "AWS::Serverless::Function")
    assert {f.logical_id for f in model.chalice_functions(model.load_app())} == set(functions)
    expected = {"HUB_STAGE", resources.TABLE.env_var}
    expected |= {q.env_var for q in resources.QUEUES} | {q.dlq_env_var for q in resources.QUEUES}
    expected |= {m.env_var for m in resources.STATE_MACHINES} | {s.env_var for s in resources.SECRETS}
    for logical_id, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert set(variables) == expected, logical_id
        settings = from_environ(dict.fromkeys(variables, "x") | {"HUB_STAGE": STAGE})
        assert settings.queue_urls.keys() == {q.key for q in resources.QUEUES}
        assert settings.dlq_urls.keys() == {q.key for q in resources.QUEUES}
        assert settings.state_machine_arns.keys() == {m.key for m in resources.STATE_MACHINES}
        assert settings.operator_token_secret_id == "x"
        assert settings.stage == STAGE


def test_every_sqs_event_source_reports_batch_item_failures(template):
    app = model.load_app()
    consumers = [f for f in model.chalice_functions(app) if f.queues]
    assert consumers
    for fn in consumers:
        events = template["Resources"][fn.logical_id]["Properties"]["Events"]
        event = events[fn.sqs_event_logical_id]
        assert event["Type"] == "SQS"
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_every_function_has_its_own_role_log_group_and_alarms(template):
    app = model.load_app()
    roles = set()
    alarm_names = {a["Properties"]["AlarmName"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()}
    log_groups = {
        r["Properties"]["LogGroupName"]: r["Properties"]
        for r in of_type(template, "AWS::Logs::LogGroup").values()
    }
    for fn in model.chalice_functions(app):
        props = template["Resources"][fn.logical_id]["Properties"]
        assert props["FunctionName"] == fn.function_name(STAGE)
        assert props["Timeout"] == model.FUNCTION_TIMEOUT_SECONDS
        assert props["Tracing"] == "Active"
        roles.add(props["Role"]["Fn::GetAtt"][0])
        assert log_groups[f"/aws/lambda/{fn.function_name(STAGE)}"]["RetentionInDays"] > 0
        slug = fn.resource_name.replace("_", "-")
        assert {f"order-hub-{STAGE}-{slug}-errors", f"order-hub-{STAGE}-{slug}-throttles"} <= alarm_names
    assert len(roles) == len(model.chalice_functions(app)), "one role per function"


def test_secrets_match_the_spec(template):
    names = {r["Properties"]["Name"] for r in of_type(template, "AWS::SecretsManager::Secret").values()}
    assert names == {s.name for s in resources.SECRETS}
