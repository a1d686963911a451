"""GIVEN the runtime settings behind /api/settings WHEN an operator reads and changes them THEN a change is
validated by its policy's own parser (422 with the reason), versioned (409 on a stale expected_version),
recorded with who and what, and in force for the next use; the SSM adapter and the audit trail behave so
against moto (the same contract as the fakes)."""

from __future__ import annotations

import json

import boto3
import pytest

from chalicelib.adapters.parameter_store import SsmSettingsStore
from chalicelib.adapters.settings_audit import DynamoSettingsAudit
from chalicelib.domain.errors import ConcurrentUpdate
from chalicelib.domain.runtime_settings import (
    FRAUD_POLICY,
    RUNTIME_SETTINGS,
    Policies,
    SettingChange,
    change_setting,
    summarise,
)
from chalicelib.entrypoints.auth import operator_label
from tests.fakes import InMemorySettingsAudit, InMemorySettingsStore
from tests.unit.api import AUTH, TOKEN


@pytest.fixture
def store(svc):
    svc.settings_store, svc.settings_audit = InMemorySettingsStore(), InMemorySettingsAudit()
    svc.policies = Policies(svc.settings_store)
    return svc.settings_store


def put(client, name, body):
    return client.http.put(f"/api/settings/{name}", headers=AUTH, body=json.dumps(body))


def test_every_setting_is_listed_with_its_default_until_stored(client, store):
    answer = client.http.get("/api/settings", headers=AUTH)
    assert answer.status_code == 200
    listed = {s["name"]: s for s in answer.json_body["settings"]}
    assert set(listed) == set(RUNTIME_SETTINGS)
    assert listed["payment_recovery"]["version"] == 0
    assert listed["payment_recovery"]["value"] == {"recovery_seconds": 172800, "max_attempts": 3}


def test_a_change_is_versioned_audited_and_in_force_for_the_next_use(client, svc, store):
    assert svc.fraud_policy.weights["high_value"] != 70
    answer = put(client, "fraud_policy", {"value": {"weights": {"high_value": 70}}, "expected_version": 0})
    assert answer.status_code == 200, answer.json_body
    assert answer.json_body["version"] == 1
    assert answer.json_body["change"]["by"] == operator_label(f"Bearer {TOKEN}")
    assert TOKEN not in json.dumps(answer.json_body)
    assert answer.json_body["change"]["summary"] == "added weights"
    assert svc.fraud_policy.weights["high_value"] == 70

    again = put(client, "fraud_policy", {"value": {"weights": {"high_value": 60}}, "expected_version": 1})
    assert again.status_code == 200 and again.json_body["version"] == 2
    history = client.http.get("/api/settings/fraud_policy/history", headers=AUTH).json_body["versions"]
    assert [(v["version"], v["summary"]) for v in history] == [
        (2, "weights.high_value: 70 → 60"),
        (1, "added weights"),
    ]
    assert client.http.get("/api/settings/fraud_policy", headers=AUTH).json_body["value"] == {
        "weights": {"high_value": 60}
    }


def test_a_stale_expected_version_is_409_and_changes_nothing(client, svc, store):
    assert put(client, "stuck_after", {"value": "PAID=30m"}).status_code == 200
    stale = put(client, "stuck_after", {"value": "PAID=10m", "expected_version": 0})
    assert stale.status_code == 409
    assert store.read("stuck_after").value == "PAID=30m"
    assert [c.version for c in svc.settings_audit.changes("stuck_after")] == [1]


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("fraud_policy", {"weights": {"nonsense": 5}}, "unknown weights"),
        ("fraud_policy", {"review_score": 90, "reject_score": 50}, "review_score"),
        ("fulfilment_policy", {"warehouses": [{"provider": "acme"}]}, "'id'"),
        ("payment_recovery", {"recovery_seconds": 0}, "at least one second"),
        ("payment_recovery", {"max_attempts": "3"}, "whole numbers"),
        ("stuck_after", "PAID=30", "needs a unit"),
        ("personal_data_retention", "amazon=30d", "default period"),
        ("returns_policy", {"restocking_fee_percent": "150"}, "between 0 and 100"),
        ("returns_policy", [], "JSON object"),
    ],
)
def test_a_value_its_schema_refuses_is_422_with_the_reason(client, store, name, value, reason):
    answer = put(client, name, {"value": value})
    assert answer.status_code == 422, answer.json_body
    assert reason in answer.json_body["Message"]
    assert store.read(name) is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"value": {}, "extra": 1},
        {"value": {}, "expected_version": "1"},
        [1],
        {"value": {}, "expected_version": -1},
    ],
)
def test_a_malformed_body_is_400(client, store, body):
    assert put(client, "fraud_policy", body).status_code == 400


def test_an_unknown_setting_is_404(client, store):
    assert client.http.get("/api/settings/nope", headers=AUTH).status_code == 404
    assert put(client, "nope", {"value": {}}).status_code == 404
    assert client.http.get("/api/settings/nope/history", headers=AUTH).status_code == 404


def test_a_value_too_large_for_a_standard_parameter_is_422(client, store):
    value = {"warehouses": [{"id": f"w{i}", "provider": "p", "skus": ["X" * 40]} for i in range(80)]}
    answer = put(client, "fulfilment_policy", {"value": value})
    assert answer.status_code == 422 and "at most 4096" in answer.json_body["Message"]


def test_an_unusable_stored_value_keeps_the_last_good_policy_and_is_reported():
    store, reported = InMemorySettingsStore({"fraud_policy": {"weights": {"high_value": 50}}}), []
    policies = Policies(store, unusable=lambda name, reason: reported.append(name))
    assert policies.get(FRAUD_POLICY).weights["high_value"] == 50
    store.write("fraud_policy", json.dumps({"weights": {"bogus": 1}}))  # written around the API
    assert policies.get(FRAUD_POLICY).weights["high_value"] == 50
    assert reported == ["fraud_policy"]


def test_a_summary_names_the_paths_that_changed():
    assert summarise({"a": 1, "b": [1]}, {"a": 2, "b": [1, 2], "c": True}) == "a: 1 → 2; added b[1]; added c"
    assert summarise("x", "x") == "no change"


# --- the adapters against moto: the same contract as the fakes --------------------------------------------


@pytest.fixture
def ssm(table):
    return boto3.client("ssm", region_name="us-east-1")


def test_ssm_store__versions_history_and_the_cached_current_values(ssm):
    store = SsmSettingsStore(ssm, "/order-hub/test/settings", max_age=60)
    assert store.read("fraud_policy") is None and store.versions("fraud_policy") == []
    assert store.current() == {}
    assert store.write("fraud_policy", '{"weights":{"high_value":50}}') == 1
    assert store.current() == {"fraud_policy": {"weights": {"high_value": 50}}}
    assert store.write("fraud_policy", '{"weights":{"high_value":55}}') == 2
    # The write cleared this process's cache: the next read sees it at once.
    assert store.current()["fraud_policy"] == {"weights": {"high_value": 55}}
    assert [(s.version, s.value) for s in store.versions("fraud_policy")] == [
        (1, {"weights": {"high_value": 50}}),
        (2, {"weights": {"high_value": 55}}),
    ]
    read = store.read("fraud_policy")
    assert read is not None and read.version == 2 and read.modified_at is not None


def test_dynamo_audit__a_version_is_claimed_once(ssm):
    from datetime import UTC, datetime

    audit = DynamoSettingsAudit()
    change = SettingChange("stuck_after", 1, datetime(2026, 11, 23, tzinfo=UTC), "operator:abc", "added")
    audit.claim(change)
    with pytest.raises(ConcurrentUpdate):
        audit.claim(change)
    assert audit.changes("stuck_after") == [change]
    audit.release("stuck_after", 1)
    assert audit.changes("stuck_after") == []


def test_the_use_case_through_the_real_adapters(ssm):
    from datetime import UTC, datetime

    store, audit = SsmSettingsStore(ssm, "/order-hub/test/settings", max_age=60), DynamoSettingsAudit()
    now = lambda: datetime(2026, 11, 23, tzinfo=UTC)  # noqa: E731
    done = change_setting("stuck_after", {"value": "PAID=30m"}, store=store, audit=audit, by="op", now=now)
    assert done["version"] == 1 and done["value"] == "PAID=30m"
    with pytest.raises(ConcurrentUpdate):
        change_setting(
            "stuck_after",
            {"value": "PAID=9m", "expected_version": 0},
            store=store,
            audit=audit,
            by="op",
            now=now,
        )
    assert Policies(store).get(RUNTIME_SETTINGS["stuck_after"])
