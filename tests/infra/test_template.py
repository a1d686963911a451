"""The synthesized CloudFormation template matches chalicelib.resources, the spec the local stack uses.

Needs the CDK venv (infra/.venv): skipped where aws_cdk is not importable. Synthesizes once per session
(offline; the first run ever downloads Lambda wheels into .chalice/deployments/), or reads an existing
assembly from $HUB_INFRA_ASSEMBLY (a cdk.out directory, e.g. the one `infra/check.py --outdir` leaves).
The optional Shopify EventBridge rule is checked on a second synth with context shopify_event_source: the
one `infra/check.py` leaves next to $HUB_INFRA_ASSEMBLY (cdk.out.shopify-events), else its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "aws_cdk",
    reason="aws-cdk-lib is not installed: run with infra/.venv (pip install -r infra/requirements.txt)",
)

from chalice.app import CloudWatchEvent, ScheduledEventConfig
from chalice.utils import to_cfn_resource_name

from chalicelib import resources
from chalicelib.domain.runtime_settings import RUNTIME_SETTINGS
from chalicelib.integrations.shopify.eventbridge import PARTNER_SOURCE_PREFIX, is_shopify_event
from chalicelib.settings import SETTINGS, from_environ, settings_path
from infra.check import SAMPLE_SHOPIFY_EVENT_SOURCE, SHOPIFY_EVENTS_ASSEMBLY, expand_template
from infra.stacks import model
from tests.settings_reads import deployed_reads, names

STAGE = "dev"
SCHEDULER_DLQ = resources.staged_name(model.SCHEDULER_DLQ_NAME, STAGE)
SHOPIFY_EVENTS_DLQ = resources.staged_name(model.SHOPIFY_EVENTS_DLQ_NAME, STAGE)


@pytest.fixture(scope="session")
def template(stage_template: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    return stage_template(STAGE)  # tests/infra/conftest.py: one synth per stage and session


@pytest.fixture(scope="session")
def expanded(template: dict[str, Any]) -> dict[str, Any]:
    """What CloudFormation deploys: the template with SAM's transform applied (as infra/check.py does)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator wants one; any will do
    return expand_template(template)


@pytest.fixture(scope="session")
def events_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stack synthesised with context shopify_event_source (the sample partner event source)."""
    existing = os.environ.get("HUB_INFRA_ASSEMBLY")
    path = Path(existing).parent / SHOPIFY_EVENTS_ASSEMBLY / f"{STAGE}.template.json" if existing else None
    if path is None or not path.is_file():
        from infra import app as cdk_app

        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        outdir = tmp_path_factory.mktemp(SHOPIFY_EVENTS_ASSEMBLY)
        cdk_app.build(outdir=str(outdir), stage=STAGE, shopify_event_source=SAMPLE_SHOPIFY_EVENT_SOURCE)
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


def get_att(logical_id: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def policy_statements(template: dict[str, Any], queue_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in of_type(template, "AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in policy["Properties"]["Queues"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def assert_tls_only_and_alarmed(template: dict[str, Any], queue_id: str) -> dict[str, Any]:
    """The queue refuses plain HTTP and one alarm fires on its first visible message."""
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy_statements(template, queue_id)
    )
    alarms = [
        a["Properties"]
        for a in of_type(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    ]
    assert len(alarms) == 1
    assert alarms[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarms[0]["Threshold"] == 0
    assert alarms[0]["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarms[0]["AlarmActions"]
    return alarms[0]


def rendered(value: Any) -> str:
    """A string property as CloudFormation renders it, with sample values for the pseudo parameters."""
    if isinstance(value, str):
        return value
    pseudo = {"AWS::AccountId": "123456789012", "AWS::Region": "eu-west-1", "AWS::Partition": "aws"}
    separator, parts = value["Fn::Join"]
    return separator.join(p if isinstance(p, str) else pseudo[p["Ref"]] for p in parts)


def schedule_handlers() -> dict[str, str]:
    """Straight from the Chalice app, not through infra's model: @schedule name → its expression."""
    return {
        source.name: (
            source.schedule_expression.to_string()
            if hasattr(source.schedule_expression, "to_string")
            else str(source.schedule_expression)
        )
        for source in model.load_app().event_sources
        if isinstance(source, ScheduledEventConfig)
    }


def test_table_matches_the_spec(template):
    (table,) = [r["Properties"] for r in of_type(template, "AWS::DynamoDB::Table").values()]
    spec = resources.TABLE
    assert table["TableName"] == spec.physical_name(STAGE)
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
    dlq_id, dlq = queue_by_name(template, spec.physical_dlq_name(STAGE))
    _, queue = queue_by_name(template, spec.physical_name(STAGE))
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


def test_no_queue_outside_the_spec(template, events_template):
    # Besides the spec's queues, only the AWS-only dead-letter queues of EventBridge Scheduler and, with the
    # optional rule, of its target (services the local stack does not run).
    spec = {q.physical_name(STAGE) for q in resources.QUEUES} | {
        q.physical_dlq_name(STAGE) for q in resources.QUEUES
    }
    scheduler = {SCHEDULER_DLQ} if schedule_handlers() else set()
    names = {r["Properties"]["QueueName"] for r in of_type(template, "AWS::SQS::Queue").values()}
    assert names == spec | scheduler
    names = {r["Properties"]["QueueName"] for r in of_type(events_template, "AWS::SQS::Queue").values()}
    assert names == spec | scheduler | {SHOPIFY_EVENTS_DLQ}


@pytest.mark.parametrize("spec", resources.QUEUES, ids=lambda q: q.key)
def test_every_queue_requires_tls_and_every_dlq_alarms(template, spec):
    queue_id, _ = queue_by_name(template, spec.physical_name(STAGE))
    dlq_id, _ = queue_by_name(template, spec.physical_dlq_name(STAGE))
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy_statements(template, queue_id)
    )
    assert_tls_only_and_alarmed(template, dlq_id)


@pytest.mark.parametrize("spec", resources.STATE_MACHINES, ids=lambda m: m.key)
def test_state_machine_matches_the_spec(template, spec):
    (machine,) = [
        r["Properties"]
        for r in of_type(template, "AWS::StepFunctions::StateMachine").values()
        if r["Properties"]["StateMachineName"] == spec.physical_name(STAGE)
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
            if r["Properties"]["StateMachineName"] == spec.physical_name(STAGE)
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
        expected |= {functions[name] for name in spec.retired_functions}
        assert invoked == expected


def test_functions_get_exactly_the_environment_settings_reads(template):
    """The expectation comes from the code (an ast scan of app.py and chalicelib/, tests/settings_reads.py),
    not from the lists the stack uses: a function gets every `stack`-homed variable the code reads, and
    nothing else (no `local` override, no variable only tests set)."""
    functions = of_type(template, "AWS::Serverless::Function")
    assert {f.logical_id for f in model.chalice_functions(model.load_app())} == set(functions)
    homes = {s.name: s.home for s in SETTINGS}
    read = names(deployed_reads(), kind="env")
    expected = {name for name in read if homes.get(name) == "stack"}
    assert "HUB_SETTINGS_PATH" in expected and resources.TABLE.env_var in expected
    for logical_id, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert set(variables) == expected, logical_id
        assert variables["HUB_SETTINGS_PATH"] == settings_path(STAGE), logical_id
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
    assert names == {s.physical_name(STAGE) for s in resources.SECRETS}


# ------------------------------------------------------------------------- EventBridge Scheduler


def test_one_scheduler_schedule_per_chalice_schedule_handler(template):
    handlers = schedule_handlers()
    assert handlers, "the app has @schedule handlers (heartbeat): this test must see them"
    schedules = of_type(template, "AWS::Scheduler::Schedule")
    assert len(schedules) == len(handlers)
    (group_id,) = of_type(template, "AWS::Scheduler::ScheduleGroup")
    dlq_id, dlq = queue_by_name(template, SCHEDULER_DLQ)
    assert not dlq.get("FifoQueue"), "Scheduler accepts only a standard queue as its DLQ"
    for name, expression in handlers.items():
        function_id = to_cfn_resource_name(name)
        (props,) = [
            s["Properties"]
            for s in schedules.values()
            if s["Properties"]["Target"]["Arn"] == get_att(function_id)
        ]
        assert template["Resources"][function_id]["Type"] == "AWS::Serverless::Function"
        assert props["ScheduleExpression"] == expression
        assert props["ScheduleExpressionTimezone"] == "UTC"
        assert props["Name"] == template["Resources"][function_id]["Properties"]["FunctionName"]
        assert props["GroupName"] == {"Ref": group_id}
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert props["State"] == "ENABLED"
        target = props["Target"]
        assert target["DeadLetterConfig"] == {"Arn": get_att(dlq_id)}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400


def test_schedule_input_is_the_event_a_chalice_schedule_handler_parses(template):
    for schedule in of_type(template, "AWS::Scheduler::Schedule").values():
        event = json.loads(rendered(schedule["Properties"]["Target"]["Input"]))
        parsed = CloudWatchEvent(event, None)  # what Chalice hands a @schedule handler; KeyError if short
        assert parsed.detail_type == "Scheduled Event"
        assert parsed.account == "123456789012"
        assert parsed.region == "eu-west-1"
        assert parsed.time == "<aws.scheduler.scheduled-time>"
        assert parsed.resources == ["<aws.scheduler.schedule-arn>"]
        assert parsed.event_id == "<aws.scheduler.execution-id>"


def test_schedule_role_may_only_invoke_its_function(template):
    (group_id,) = of_type(template, "AWS::Scheduler::ScheduleGroup")
    group_name = template["Resources"][group_id]["Properties"]["Name"]
    dlq_id, _ = queue_by_name(template, SCHEDULER_DLQ)
    roles = set()
    for schedule in of_type(template, "AWS::Scheduler::Schedule").values():
        target = schedule["Properties"]["Target"]
        role_id = target["RoleArn"]["Fn::GetAtt"][0]
        roles.add(role_id)
        role = template["Resources"][role_id]["Properties"]
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
        conditions = trust["Condition"]["StringEquals"]
        assert conditions["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
        assert rendered(conditions["aws:SourceArn"]).endswith(f":schedule-group/{group_name}")
        assert "ManagedPolicyArns" not in role
        statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
        assert sorted((s["Action"], json.dumps(s["Resource"])) for s in statements) == sorted(
            [
                ("lambda:InvokeFunction", json.dumps(target["Arn"])),  # that function, no versions or aliases
                ("sqs:SendMessage", json.dumps(get_att(dlq_id))),  # Scheduler writes the DLQ with this role
            ]
        )
        assert all(s["Effect"] == "Allow" for s in statements)
        attached = [
            p
            for p in of_type(template, "AWS::IAM::Policy").values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
        ]
        assert attached == [], "no other policy on a schedule's role"
    assert len(roles) == len(of_type(template, "AWS::Scheduler::Schedule")), "one role per schedule"


def test_no_eventbridge_rule_is_left_for_a_schedule(template, expanded):
    function_ids = {to_cfn_resource_name(name) for name in schedule_handlers()}
    for function_id in function_ids:
        events = template["Resources"][function_id]["Properties"].get("Events", {})
        assert [e for e in events.values() if e["Type"] == "Schedule"] == [], function_id
    # What CloudFormation deploys, after SAM's transform: no scheduled rule at all, none aimed at these
    # functions, and no permission for EventBridge rules to invoke them.
    for rule in of_type(expanded, "AWS::Events::Rule").values():
        assert "ScheduleExpression" not in rule["Properties"]
        assert not any(t["Arn"] in [get_att(f) for f in function_ids] for t in rule["Properties"]["Targets"])
    for permission in of_type(expanded, "AWS::Lambda::Permission").values():
        if permission["Properties"]["Principal"] == "events.amazonaws.com":
            assert permission["Properties"]["FunctionName"] not in [{"Ref": f} for f in function_ids]
    assert function_ids <= set(of_type(expanded, "AWS::Lambda::Function"))


def test_scheduler_dlq_requires_tls_and_alarms(template):
    dlq_id, _ = queue_by_name(template, SCHEDULER_DLQ)
    alarm = assert_tls_only_and_alarmed(template, dlq_id)
    assert alarm["AlarmName"] == f"order-hub-{STAGE}-dlq-scheduler"


# --------------------------------------------------------------- Shopify's EventBridge partner source


def test_the_shopify_rule_is_only_there_when_asked_for(template, events_template):
    for resource_type in ("AWS::Events::EventBus", "AWS::Events::Rule"):
        assert of_type(template, resource_type) == {}
    # The option only adds: every resource of the default stack is there, under the same logical id.
    assert set(template["Resources"]) <= set(events_template["Resources"])


def test_partner_event_bus_accepts_the_shopify_source(events_template):
    (bus,) = [b["Properties"] for b in of_type(events_template, "AWS::Events::EventBus").values()]
    assert bus == {"EventSourceName": SAMPLE_SHOPIFY_EVENT_SOURCE, "Name": SAMPLE_SHOPIFY_EVENT_SOURCE}


def test_rule_sends_shopify_events_to_the_fifo_ingest_queue(events_template):
    (bus_id,) = of_type(events_template, "AWS::Events::EventBus")
    (rule,) = [r["Properties"] for r in of_type(events_template, "AWS::Events::Rule").values()]
    assert rule["EventBusName"] == {"Ref": bus_id}
    assert rule["State"] == "ENABLED"
    assert rule["EventPattern"] == {"source": [{"prefix": PARTNER_SOURCE_PREFIX}]}
    # The handler side recognises what the rule lets through.
    assert is_shopify_event({"source": SAMPLE_SHOPIFY_EVENT_SOURCE, "detail-type": "shopifyWebhook"})
    ingest_id, ingest = queue_by_name(events_template, resources.INGEST_QUEUE.physical_name(STAGE))
    assert ingest["FifoQueue"] is True
    assert ingest["ContentBasedDeduplication"] is True, "EventBridge needs it to target a FIFO queue"
    dlq_id, dlq = queue_by_name(events_template, SHOPIFY_EVENTS_DLQ)
    assert not dlq.get("FifoQueue"), "EventBridge accepts only a standard queue as a target's DLQ"
    (target,) = rule["Targets"]
    assert target["Arn"] == get_att(ingest_id)
    assert target["SqsParameters"] == {"MessageGroupId": model.SHOPIFY_EVENTS_MESSAGE_GROUP}
    assert target["DeadLetterConfig"] == {"Arn": get_att(dlq_id)}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert "InputTransformer" not in target and "Input" not in target, "the handler expects the whole event"


def test_only_this_rule_may_send_to_the_ingest_queue_and_its_dlq(events_template):
    (rule_id,) = of_type(events_template, "AWS::Events::Rule")
    for name in (resources.INGEST_QUEUE.physical_name(STAGE), SHOPIFY_EVENTS_DLQ):
        queue_id, _ = queue_by_name(events_template, name)
        allowed = [s for s in policy_statements(events_template, queue_id) if s["Effect"] == "Allow"]
        (statement,) = allowed
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "sqs:SendMessage" in actions
        assert all(a in ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl") for a in actions)
        assert statement["Resource"] == get_att(queue_id)
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": get_att(rule_id)}}


def test_shopify_events_dlq_requires_tls_and_alarms(events_template):
    dlq_id, _ = queue_by_name(events_template, SHOPIFY_EVENTS_DLQ)
    alarm = assert_tls_only_and_alarmed(events_template, dlq_id)
    assert alarm["AlarmName"] == f"order-hub-{STAGE}-dlq-shopify-events"


def test_every_runtime_setting_the_code_reads_is_a_parameter_with_its_validated_default(template):
    parameters = {
        p["Properties"]["Name"]: p["Properties"] for p in of_type(template, "AWS::SSM::Parameter").values()
    }
    read = names(deployed_reads(), kind="config")
    assert read == set(RUNTIME_SETTINGS)
    expected = {f"{settings_path(STAGE)}/{name}" for name in read}
    assert expected <= set(parameters)
    for name in read:
        parameter = parameters[f"{settings_path(STAGE)}/{name}"]
        assert parameter["Type"] == "String" and parameter["Tier"] == "Standard"
        RUNTIME_SETTINGS[name].parse(json.loads(parameter["Value"]))


def _ssm_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [
        s
        for p in of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(a.startswith("ssm:") for a in _actions(s))
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_functions_read_only_the_stage_settings_and_only_the_api_writes_them(template):
    functions = of_type(template, "AWS::Serverless::Function")
    fns = model.chalice_functions(model.load_app())
    api = next(f.logical_id for f in fns if f.resource_name == model.API_HANDLER)
    path = settings_path(STAGE)
    for logical_id, function in functions.items():
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        statements = _ssm_statements(template, role)
        actions = {a for s in statements for a in _actions(s)}
        writes = {"ssm:PutParameter", "ssm:GetParameterHistory"}
        assert "ssm:GetParametersByPath" in actions, logical_id
        assert (writes <= actions) == (logical_id == api), logical_id
        text = json.dumps([s["Resource"] for s in statements])
        assert path.lstrip("/") in text and "*" not in text, logical_id
