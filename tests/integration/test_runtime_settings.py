"""Runtime settings on the local stack: an operator changes a policy through PUT /api/settings/{name} (SSM in
moto, provisioned with the suite's seed), the next order uses it, and the change is in the audit trail."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import THREEPL
from tests.integration.test_fulfilment_lifecycle import line, order_when, place

# A warehouse rule only this test's SKUs match: a US order otherwise ships from WH-EAST (the suite's policy).
RULE = {"id": "WH-WEST", "provider": THREEPL, "skus": ["SETTINGS-*"], "priority": 0, "promise_days": 9}


def test_an_operator_changes_the_warehouse_rules_and_the_next_order_follows_them(stack, stripe, threepl):
    before = stack.api("GET", "/api/settings/fulfilment_policy")
    assert before.status_code == 200, before.text
    seeded: dict[str, Any] = before.json()["value"]
    version = before.json()["version"]
    assert version >= 1 and all(w.get("skus") != RULE["skus"] for w in seeded["warehouses"])

    changed = {**seeded, "warehouses": [*seeded["warehouses"], RULE]}
    put = stack.api(
        "PUT", "/api/settings/fulfilment_policy", json={"value": changed, "expected_version": version}
    )
    try:
        assert put.status_code == 200, put.text
        assert put.json()["version"] == version + 1
        stale = stack.api(
            "PUT", "/api/settings/fulfilment_policy", json={"value": seeded, "expected_version": version}
        )
        assert stale.status_code == 409, stale.text

        order_id, _ = place(stack, stripe, [line("1", "SETTINGS-LAMP", 1)], total=1000)
        shipped = order_when(stack, order_id, lambda o: any(s["warehouse"] for s in o["shipments"]))
        assert [s["warehouse"] for s in shipped["shipments"]] == ["WH-WEST"]

        history = stack.api("GET", "/api/settings/fulfilment_policy/history")
        assert history.status_code == 200, history.text
        newest = history.json()["versions"][0]
        assert newest["version"] == version + 1 and newest["value"] == changed
        assert newest["by"].startswith("operator:") and stack.token not in newest["by"]
        assert newest["summary"] == f"added warehouses[{len(seeded['warehouses'])}]"
    finally:
        # The suite shares one stack: put the seeded policy back (as a new version, audited like any change).
        restored = stack.api("PUT", "/api/settings/fulfilment_policy", json={"value": seeded})
        assert restored.status_code == 200, restored.text
        assert stack.api("GET", "/api/settings/fulfilment_policy").json()["value"] == seeded


def test_a_value_the_schema_refuses_is_422_and_the_policy_in_force_is_unchanged(stack):
    before = stack.api("GET", "/api/settings/fraud_policy").json()
    refused = stack.api("PUT", "/api/settings/fraud_policy", json={"value": {"review_score": 101}})
    assert refused.status_code == 422 and "review_score" in refused.json()["Message"]
    after = stack.api("GET", "/api/settings/fraud_policy").json()
    assert (after["version"], after["value"]) == (before["version"], before["value"])
