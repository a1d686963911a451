"""`make smoke` against the suite's local stack: the command it runs (`python -m local.smoke`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

from tests.integration.conftest import PUBLISH_WOO, PUBLISH_WOO_SECRET, ROOT, Stack

# The smoke run bounds its own waits (120 s for the order); this only stops a hung process.
PROCESS_TIMEOUT_S = 300


def smoke(stack: Stack, token: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """What `make smoke BASE_URL=<the stack> TOKEN=<token> SMOKE_ARGS=<args>` runs."""
    env = {**os.environ, "HUB_SMOKE_BASE_URL": stack.hub_url, "HUB_OPERATOR_TOKEN": token, **env}
    return subprocess.run(
        [sys.executable, "-m", "local.smoke", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        check=False,
    )


def connected_stores(stack: Stack) -> set[tuple[str, str]]:
    listed: list[dict[str, Any]] = stack.api("GET", "/api/connections").json()["connections"]
    return {(c["channel"], c["store"]) for c in listed}


def test_smoke_passes_against_the_local_stack_and_leaves_no_connection_behind(stack):
    before = connected_stores(stack)

    result = smoke(stack, stack.token)

    assert result.returncode == 0, result.stdout + result.stderr
    report = result.stdout
    assert "smoke passed: 8 of 8 checks passed" in report
    for check in ("health", "openapi", "api", "connection", "webhook", "order", "status page"):
        assert re.search(rf"^  ok    {check}: ", report, re.MULTILINE), report
    store = re.search(r"woocommerce store (https://smoke-[0-9a-f]{12}\.example/) registered", report)
    reached = re.search(r"order: (ord_[a-z0-9]+) reached COMPLETED", report)
    assert store and reached, report
    # The facts the report states hold on the stack: the order went the whole way, the store is gone.
    order = stack.order(reached.group(1))
    assert order is not None
    assert (order["channel"], order["store"], order["status"]) == ("woocommerce", store.group(1), "COMPLETED")
    assert [h["event"] for h in order["history"]][-2:] == ["nothing_to_ship", "completed"]
    assert "  ok    cleanup connection: throwaway store deleted (204)" in report
    assert connected_stores(stack) == before
    assert stack.token not in report + result.stderr


def test_smoke_with_a_wrong_token_stops_with_a_clear_message_and_registers_nothing(stack):
    before = connected_stores(stack)

    result = smoke(stack, "not-the-operator-token")

    assert result.returncode == 2
    assert "smoke: the hub refused the operator token (401 on GET /api/orders)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "connection" not in result.stdout
    assert connected_stores(stack) == before


def test_smoke_through_an_existing_store_uses_it_and_keeps_it_connected(stack):
    result = smoke(stack, stack.token, "--store", PUBLISH_WOO, HUB_SMOKE_WEBHOOK_SECRET=PUBLISH_WOO_SECRET)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"  ok    connection: existing woocommerce store {PUBLISH_WOO}\n" in result.stdout
    assert "reached COMPLETED" in result.stdout
    assert "cleanup" not in result.stdout
    assert ("woocommerce", PUBLISH_WOO) in connected_stores(stack)
