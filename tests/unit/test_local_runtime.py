"""The local runtime's emulation of Lambda event sources and schedules, with fakes around it."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from chalice import Chalice
from chalice.app import Cron, Rate

from local.event_sources import SqsPoller, failed_ids, to_lambda_record
from local.lambda_runtime import FunctionNotFound, LambdaRuntime
from local.scheduler import Scheduler, cron_matches, next_run, rate_seconds


def make_app():
    app = Chalice(app_name="t")

    @app.lambda_function(name="boom")
    def boom(event, context):
        raise ValueError("bad input")

    @app.lambda_function(name="echo")
    def echo(event, context):
        return {"event": event, "function": context.function_name}

    @app.on_sqs_message(queue="q", batch_size=10)
    def consume(event):
        failures = [{"itemIdentifier": r.to_dict()["messageId"]} for r in event if r.body == "poison"]
        return {"batchItemFailures": failures}

    @app.schedule(Rate(5, unit=Rate.MINUTES), name="tick")
    def tick(event):
        return {"source": event.source, "detail_type": event.detail_type}

    return app


@pytest.fixture
def runtime():
    return LambdaRuntime(make_app(), app_name="order-hub", stage="local")


def test_runtime__resolves_names_deployed_names_and_arns(runtime):
    arn = "arn:aws:lambda:us-east-1:123456789012:function:order-hub-local-echo"
    assert runtime.resolve("echo") == "echo"
    assert runtime.resolve("order-hub-local-echo") == "echo"
    assert runtime.resolve(arn) == "echo"
    assert runtime.resolve(arn + ":$LATEST") == "echo"
    with pytest.raises(FunctionNotFound):
        runtime.resolve("nope")


def test_runtime__reports_a_raised_exception_as_lambda_does(runtime):
    result = runtime.invoke("boom", {})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "ValueError"
    assert result.payload["errorMessage"] == "bad input"
    ok = runtime.invoke("echo", {"a": 1})
    assert ok.function_error is None
    assert ok.payload == {"event": {"a": 1}, "function": "order-hub-local-echo"}


def test_failed_ids__follows_lambdas_partial_batch_rules():
    ids = {"a", "b"}
    assert failed_ids(None, ids) == set()
    assert failed_ids({"batchItemFailures": []}, ids) == set()
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "a"}]}, ids) == {"a"}
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) is None
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, ids) is None


class FakeSqs:
    def __init__(self, bodies):
        self.messages = [
            {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": b, "Attributes": {}}
            for i, b in enumerate(bodies)
        ]
        self.deleted = []

    def get_queue_attributes(self, **_):
        return {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:123456789012:q"}}

    def receive_message(self, **kwargs):
        batch, self.messages = self.messages[: kwargs["MaxNumberOfMessages"]], []
        return {"Messages": batch}

    def delete_message_batch(self, QueueUrl, Entries):
        self.deleted.extend(e["ReceiptHandle"] for e in Entries)


def poller(runtime, sqs, function="consume"):
    return SqsPoller(
        sqs=sqs,
        runtime=runtime,
        function=function,
        queue_url="http://x/q",
        batch_size=10,
        region="us-east-1",
        stop=threading.Event(),
    )


def test_poller__deletes_only_the_records_that_succeeded(runtime):
    sqs = FakeSqs(["ok", "poison", "ok"])
    p = poller(runtime, sqs)
    assert p.poll_once() == 3
    assert sqs.deleted == ["r0", "r2"]
    assert p.stats.as_dict() | {"last_error": None} == {
        "batches": 1,
        "records": 3,
        "succeeded": 2,
        "failed": 1,
        "last_error": None,
    }


def test_poller__a_raising_handler_fails_the_whole_batch(runtime):
    sqs = FakeSqs(["ok", "ok"])
    p = poller(runtime, sqs, function="boom")
    p.poll_once()
    assert sqs.deleted == []
    assert p.stats.failed == 2 and "bad input" in p.stats.last_error


def test_to_lambda_record__has_the_shape_lambda_delivers():
    record = to_lambda_record(
        {
            "MessageId": "m",
            "ReceiptHandle": "r",
            "Body": "{}",
            "Attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": "g"},
            "MessageAttributes": {"k": {"StringValue": "v", "DataType": "String"}},
        },
        "arn:q",
        "eu-west-1",
    )
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == "arn:q"
    assert record["attributes"]["MessageGroupId"] == "g"
    assert record["messageAttributes"]["k"]["stringValue"] == "v"
    assert record["md5OfBody"] == "99914b932bd37a50b983c5e7c90ae93b"


def test_schedule_expressions__rate_and_cron():
    assert rate_seconds(Rate(5, unit=Rate.MINUTES)) == 300
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds(Cron(0, 3, "*", "*", "?", "*")) is None
    monday_3am = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    assert cron_matches(Cron(0, 3, "*", "*", "?", "*"), monday_3am)
    assert cron_matches("cron(0/15 * ? * MON-FRI *)", monday_3am)
    assert not cron_matches("cron(0 3 ? * SAT,SUN *)", monday_3am)
    assert next_run("cron(30 4 * * ? *)", monday_3am) == monday_3am.replace(hour=4, minute=30)


def ticking_every_5_minutes(runtime, now: list[datetime], rate: Rate | None = None, **knobs) -> Scheduler:
    """A scheduler of one schedule, `tick` (every 5 minutes unless `rate`), whose clock reads `now[0]`."""
    return Scheduler(
        runtime,
        {"tick": rate or Rate(5, unit=Rate.MINUTES)},
        region="us-east-1",
        account="123456789012",
        stop=threading.Event(),
        clock=lambda: now[0],
        **knobs,
    )


def test_scheduler__fires_on_cadence_and_on_demand(runtime):
    now = [datetime(2026, 11, 23, 12, 0, tzinfo=UTC)]
    scheduler = ticking_every_5_minutes(runtime, now)
    assert scheduler.due(now[0] + timedelta(minutes=4)) == []
    now[0] += timedelta(minutes=5)
    assert scheduler.due(now[0]) == ["tick"]
    assert scheduler.due(now[0]) == []  # moved to the next slot
    result = scheduler.fire("tick")
    assert result.payload == {"source": "aws.scheduler", "detail_type": "Scheduled Event"}
    assert scheduler.status()["tick"]["runs"] == 1


def test_scheduler__a_paused_cadence_skips_its_slots_and_still_fires_on_demand(runtime):
    now = [datetime(2026, 11, 23, 12, 0, tzinfo=UTC)]
    scheduler = ticking_every_5_minutes(runtime, now)
    scheduler.pause("tick")
    now[0] += timedelta(minutes=10)
    assert scheduler.due(now[0]) == []
    assert scheduler.status()["tick"]["paused"] is True
    assert scheduler.fire("tick").payload["source"] == "aws.scheduler"
    scheduler.resume("tick")
    assert scheduler.due(now[0]) == []  # no burst of the slots it skipped: the next one is 5 min away
    now[0] += timedelta(minutes=5)
    assert scheduler.due(now[0]) == ["tick"]
    assert scheduler.status()["tick"] == {**scheduler.status()["tick"], "runs": 1, "paused": False}


def test_scheduler__a_compressed_cadence_runs_an_hours_long_schedule_every_few_seconds_and_still_pauses(
    runtime,
):
    now = [datetime(2026, 11, 23, 12, 0, tzinfo=UTC)]
    scheduler = ticking_every_5_minutes(runtime, now, Rate(6, unit=Rate.HOURS), every_s={"tick": 60})
    now[0] += timedelta(seconds=60)
    assert scheduler.due(now[0]) == ["tick"]
    assert scheduler.status()["tick"]["every_s"] == 60
    scheduler.pause("tick")
    now[0] += timedelta(seconds=60)
    assert scheduler.due(now[0]) == []
    scheduler.resume("tick")
    now[0] += timedelta(seconds=60)
    assert scheduler.due(now[0]) == ["tick"]
