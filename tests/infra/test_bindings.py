"""The deployment's wiring checked without the CDK: only chalice and the app, as in the main venv.

Every `${Placeholder}` in every ASL definition resolves through chalicelib.resources, the local stack and the
CDK stack resolve the same placeholders, every Lambda function a definition names is a function of the
Chalice app, and every function of the app has an explicit IAM entry in the CDK stack.
"""

from __future__ import annotations

import json

import pytest

from chalicelib import resources
from infra.stacks import model
from local import provision

MACHINES = pytest.mark.parametrize("spec", resources.STATE_MACHINES, ids=lambda s: s.key)


@pytest.fixture(scope="module")
def app():
    return model.load_app(model.ROOT)


def test_every_definition_file_is_covered_by_the_spec():
    on_disk = {p.name for p in (model.ROOT / "step_functions").glob("*.asl.json")}
    in_spec = {spec.definition_file for spec in resources.STATE_MACHINES}
    assert on_disk == in_spec, "each step_functions/*.asl.json needs a StateMachineSpec (and vice versa)"


@MACHINES
def test_every_placeholder_resolves_through_the_spec(spec):
    text = model.definition_text(spec)
    json.loads(text)
    used = resources.placeholders(text)
    assert used, f"{spec.definition_file} uses no placeholder: Lambda ARNs must not be hard-coded"
    assert used - spec.substitutions.keys() == set(), "placeholders without a substitution"
    assert spec.substitutions.keys() - used == set(), "substitutions the definition never uses"
    for sub in spec.substitutions.values():
        assert sub.kind in model.SUBSTITUTION_KINDS


@MACHINES
def test_every_function_a_definition_names_exists_in_the_chalice_app(spec, app):
    lambda_functions = {f.name for f in app.pure_lambda_functions}
    handlers = set(app.handler_map)
    for placeholder, sub in spec.substitutions.items():
        if sub.kind != "function":
            continue
        assert sub.target in lambda_functions, (
            f"{placeholder} names {sub.target!r}; the app's @lambda_function are {sorted(lambda_functions)}"
        )
        assert sub.target in handlers
    for retired in spec.retired_functions:
        assert retired in lambda_functions, (
            f"{retired!r} is retired, not deleted, until no execution calls it"
        )
        assert retired not in {s.target for s in spec.substitutions.values()}, f"{retired!r} is in use"


@MACHINES
def test_queue_and_table_targets_exist(spec):
    queue_keys = {q.key for q in resources.QUEUES}
    for placeholder, sub in spec.substitutions.items():
        if sub.kind in ("queue_url", "queue_arn"):
            assert sub.target in queue_keys, placeholder
        if sub.kind in ("table_name", "table_arn"):
            assert sub.target == resources.TABLE.key, placeholder


@MACHINES
def test_local_stack_resolves_the_same_placeholders(spec):
    queue_urls = {}
    for queue in resources.QUEUES:
        queue_urls[queue.name] = f"http://localhost/q/{queue.name}"
        queue_urls[queue.dlq_name] = f"http://localhost/q/{queue.dlq_name}"
    values = provision.resolve_substitutions(spec, region="eu-west-1", stage="dev", queue_urls=queue_urls)
    text = model.definition_text(spec)
    assert values.keys() == resources.placeholders(text)
    assert "${" not in resources.substitute(text, values)


def test_infra_model_finds_no_problem(app):
    assert model.problems(app, "dev") == []


def test_every_chalice_function_has_an_iam_entry(app):
    names = {fn.resource_name for fn in model.chalice_functions(app)}
    assert names <= set(model.FUNCTION_ACCESS), (
        "add new handlers to infra/stacks/model.py FUNCTION_ACCESS with what they may touch"
    )


def test_logical_ids_follow_chalice_package(app):
    functions = {fn.resource_name: fn for fn in model.chalice_functions(app)}
    assert functions[resources.FUNCTION_VALIDATE_ORDER].logical_id == "ValidateOrder"
    assert functions[model.API_HANDLER].logical_id == "APIHandler"
    ingest = next(fn for fn in functions.values() if fn.queues)
    assert ingest.sqs_event_logical_id == f"{ingest.logical_id}SqsEventSource"


def test_function_names_match_the_local_stack(app):
    for fn in model.chalice_functions(app):
        if fn.kind == "lambda_function":
            arn = provision.function_arn("eu-west-1", resources.APP_NAME, "dev", fn.resource_name)
            assert arn.endswith(":function:" + fn.function_name("dev"))


def test_consumed_queues_outlast_the_function_timeout(app):
    # Lambda's advice for SQS event sources: visibility timeout ≥ 6 × the function timeout.
    by_name = {q.name: q for q in resources.QUEUES}
    for fn in model.chalice_functions(app):
        for queue in fn.queues:
            assert by_name[queue].visibility_timeout_seconds >= 6 * model.FUNCTION_TIMEOUT_SECONDS


def test_every_schedule_handler_is_found_with_its_expression(app):
    from chalice.app import ScheduledEventConfig

    handlers = {s.name: s for s in app.event_sources if isinstance(s, ScheduledEventConfig)}
    assert handlers, "the app has @schedule handlers (heartbeat)"
    found = {fn.resource_name: fn for fn in model.schedules(model.chalice_functions(app))}
    assert found.keys() == handlers.keys()
    for name, fn in found.items():
        expression = handlers[name].schedule_expression
        assert fn.schedule == (expression if isinstance(expression, str) else expression.to_string())
        assert fn.schedule.startswith(model.SCHEDULE_EXPRESSION_PREFIXES)
        assert fn.schedule_event_logical_id == f"{fn.logical_id}Event"  # `chalice package`'s rule event


def test_schedule_expressions_render_as_chalice_package_does():
    from chalice import Cron, Rate

    class Config:
        def __init__(self, expression):
            self.schedule_expression = expression

    assert model.schedule_expression(Config(Rate(1, unit=Rate.MINUTES))) == "rate(1 minute)"
    assert model.schedule_expression(Config(Rate(6, unit=Rate.HOURS))) == "rate(6 hours)"
    assert model.schedule_expression(Config(Cron(0, 3, "*", "*", "?", "*"))) == "cron(0 3 * * ? *)"
    assert model.schedule_expression(Config("rate(5 minutes)")) == "rate(5 minutes)"


def test_shopify_event_source_takes_the_name_or_its_arn():
    name = "aws.partner/shopify.com/1234567/order-hub"
    assert model.shopify_event_source(name) == name
    assert model.shopify_event_source(f"arn:aws:events:eu-west-1::event-source/{name}") == name
    assert model.shopify_event_source(None) is None
    assert model.shopify_event_source("") is None
    for wrong in ("order-hub", "aws.partner/example.com/1/x", "aws.partner/shopify.com/app/x"):
        with pytest.raises(ValueError, match=r"expected aws\.partner/shopify\.com/"):
            model.shopify_event_source(wrong)


def test_a_new_schedule_handler_is_picked_up_without_infra_changes():
    from chalice import Chalice, Cron, Rate

    scratch = Chalice(app_name="scratch")

    @scratch.schedule(Cron(0, 3, "*", "*", "?", "*"), name="nightly_report", description="Nightly.")
    def nightly(event):  # pragma: no cover - never invoked
        return None

    @scratch.schedule(Rate(5, unit=Rate.MINUTES))
    def every_five(event):  # pragma: no cover - never invoked
        return None

    found = {fn.resource_name: fn for fn in model.schedules(model.chalice_functions(scratch))}
    assert {name: fn.schedule for name, fn in found.items()} == {
        "nightly_report": "cron(0 3 * * ? *)",
        "every_five": "rate(5 minutes)",
    }
    assert found["nightly_report"].description == "Nightly."
    assert found["nightly_report"].logical_id == "NightlyReport"
