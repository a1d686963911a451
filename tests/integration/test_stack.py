"""The local stack itself: health, auth, and each emulated AWS mechanism, over real HTTP and boto3."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import requests

from chalicelib import resources
from tests.integration.conftest import eventually
from tests.orders import manual_body

FIXTURES = Path(__file__).parent / "fixtures"


def test_health__reports_components_endpoint_and_every_queue(stack):
    body = requests.get(f"{stack.hub_url}/health", timeout=5).json()
    assert body["status"] == "ok"
    assert {"table", "queues", "workflows", "scheduler"} <= set(body["components"])
    assert body["aws_endpoint"] == stack.aws_url
    for spec in resources.QUEUES:
        assert body["queues"][spec.name].endswith(f"/123456789012/{spec.name}")
        assert body["queues"][spec.dlq_name].endswith(f"/123456789012/{spec.dlq_name}")


def test_api__requires_the_operator_token(stack):
    assert requests.get(f"{stack.hub_url}/api/orders", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.get(f"{stack.hub_url}/api/orders", headers=wrong, timeout=5).status_code == 401
    assert stack.api("GET", "/api/orders").status_code == 200


def test_resources__provisioned_from_the_specification(stack):
    sqs = stack.client("sqs")
    for spec in resources.QUEUES:
        attrs = sqs.get_queue_attributes(QueueUrl=stack.queue_url(spec.name), AttributeNames=["All"])[
            "Attributes"
        ]
        policy = json.loads(attrs["RedrivePolicy"])
        assert policy["maxReceiveCount"] == spec.max_receive_count
        assert policy["deadLetterTargetArn"].endswith(spec.dlq_name)
        assert attrs.get("FifoQueue") == ("true" if spec.fifo else None)
    table = stack.client("dynamodb").describe_table(TableName=resources.TABLE.name)["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {
        i.name for i in resources.TABLE.indexes
    }
    machines = stack.client("stepfunctions").list_state_machines()["stateMachines"]
    assert {m["name"] for m in machines} >= {m.name for m in resources.STATE_MACHINES}


def test_state_machine_task__invokes_a_chalice_lambda_through_the_gateway(stack):
    """A failing lifecycle: CheckOrder raises NotFound in-process, Catch routes to RecordFailure."""
    sfn = stack.client("stepfunctions")
    arn = next(
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if m["name"] == resources.ORDER_LIFECYCLE.name
    )
    name = f"ord_missing_{uuid.uuid4().hex[:8]}"
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps({"order_id": name}))

    def finished():
        d = sfn.describe_execution(executionArn=execution["executionArn"])
        return d if d["status"] != "RUNNING" else None

    done = eventually(finished)
    assert done["status"] == "FAILED"
    events = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    assert entered == ["CheckOrder", "RecordFailure", "Failed"]
    invocations = stack.local_status()["invocations"]
    assert invocations.get("check_order", 0) >= 1 and invocations.get("record_failure", 0) >= 1


def test_wait_for_task_token__resumed_by_send_task_success(stack):
    sqs, sfn = stack.client("sqs"), stack.client("stepfunctions")
    queue_name = f"tokens-{uuid.uuid4().hex[:8]}.fifo"
    queue_url = sqs.create_queue(QueueName=queue_name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    definition = resources.substitute(
        (FIXTURES / "wait_for_token.asl.json").read_text(), {"QueueUrl": queue_url}
    )
    machine = sfn.create_state_machine(
        name=f"wait-{uuid.uuid4().hex[:8]}",
        definition=definition,
        roleArn="arn:aws:iam::123456789012:role/test",
    )
    execution = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], name="wait-1", input=json.dumps({"order_id": "o1"})
    )
    message = eventually(
        lambda: sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages"), timeout=20
    )[0]
    body = json.loads(message["Body"])
    assert body["order_id"] == "o1"
    assert sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "RUNNING"
    sfn.send_task_success(taskToken=body["token"], output=json.dumps({"shipped": True}))
    done = eventually(
        lambda: (
            d
            if (d := sfn.describe_execution(executionArn=execution["executionArn"]))["status"] != "RUNNING"
            else None
        ),
    )
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"])["confirmation"] == {"shipped": True}


def test_schedule__fires_on_demand_and_health_shows_the_run(stack):
    response = requests.post(f"{stack.aws_url}/_local/schedules/heartbeat", timeout=10)
    assert response.status_code == 200 and response.json()["error"] is None
    scheduler = requests.get(f"{stack.hub_url}/health", timeout=5).json()["components"]["scheduler"]
    # The heartbeat's own minute may have run since: the last run is this one or a later one.
    ours = datetime.fromisoformat(response.json()["payload"]["heartbeat"])
    assert scheduler["status"] == "ok" and datetime.fromisoformat(scheduler["last_run"]) >= ours
    schedules = stack.local_status()["schedules"]
    assert schedules["heartbeat"]["runs"] >= 1 and schedules["heartbeat"]["paused"] is False
    assert schedules["publish_outbox"]["paused"] is True  # the suite runs the outbox itself (conftest)
    assert requests.post(f"{stack.aws_url}/_local/schedules/nope", timeout=5).status_code == 404
    assert requests.post(f"{stack.aws_url}/_local/schedules/heartbeat/nap", timeout=5).status_code == 404


def test_gateway__unknown_function_is_resource_not_found(stack):
    import botocore.exceptions
    import pytest

    with pytest.raises(botocore.exceptions.ClientError) as info:
        stack.client("lambda").invoke(FunctionName="order-hub-local-nope", Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    ok = stack.client("lambda").invoke(
        FunctionName="order-hub-local-check_order", Payload=json.dumps({"order_id": "ord_x"})
    )
    assert ok["FunctionError"] == "Unhandled"
    assert json.loads(ok["Payload"].read())["errorType"] == "NotFound"


def test_event_sources__paused_messages_wait_in_the_queue_and_flow_on_resume(stack):
    from chalicelib.domain.order import derive_order_id

    assert requests.post(f"{stack.aws_url}/_local/event-sources/pause", timeout=5).json()["paused"] is True
    try:
        external_id = f"PAUSE-{uuid.uuid4().hex[:8]}"
        body = manual_body(
            "it-store",
            external_id,
            lines=[{"title": "Mug", "quantity": 1, "unit_price": "9.00"}],
        )
        assert stack.api("POST", "/api/orders", json=body).status_code == 202
        sqs = stack.client("sqs")
        queue_url = stack.queue_url(resources.INGEST_QUEUE.name)

        def waiting():
            attributes = sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            return int(attributes["ApproximateNumberOfMessages"]) >= 1

        assert eventually(waiting)
        order_id = derive_order_id("manual", "it-store", external_id)
        assert stack.api("GET", f"/api/orders/{order_id}").status_code == 404
    finally:
        requests.post(f"{stack.aws_url}/_local/event-sources/resume", timeout=5)
    assert eventually(lambda: stack.api("GET", f"/api/orders/{order_id}").status_code == 200)
    assert requests.post(f"{stack.aws_url}/_local/event-sources/nope", timeout=5).status_code == 404
