"""GIVEN the whole integration run (this module runs last: conftest's `pytest_collection_modifyitems`)
WHEN every line the stack, the simulators and the browser logged is scanned THEN none holds a secret the
run used (operator token, webhook and API secrets, Stripe keys, LWA tokens) or personal data (card numbers,
e-mail addresses, phone numbers, the fixtures' and simulators' street addresses). A failure names the file,
the line and the kind, never what was found."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.integration import conftest
from tests.log_scan import Finding, fixture_personal_data, scan

# Streets the integration tests' own orders ship to (the warehouses' addresses are the hub's, not personal).
TEST_STREETS = ("1 Harbour St",)  # the soak's (bench/soak.py) as well
SECRET_NAME_PARTS = ("SECRET", "TOKEN", "_KEY", "PASSWORD")
SHOWN = 40


def run_secrets(stack: Any, woo_store: Any, shopify_store: Any) -> dict[str, str]:
    """Every secret the run handed the hub or a simulator: value → what it is."""
    secrets = {
        stack.token: "operator token",
        conftest.AMAZON_CREDENTIALS["lwa_client_secret"]: "LWA client secret",
        conftest.AMAZON_CREDENTIALS["refresh_token"]: "LWA refresh token",
        woo_store.consumer_key: "WooCommerce consumer key",
        woo_store.consumer_secret: "WooCommerce consumer secret",
        shopify_store.access_token: "Shopify access token",
    }
    # The module-level secrets of every integration test module of this run (conftest's included).
    for name, module in list(sys.modules.items()):
        if not name.startswith("tests.integration"):
            continue
        for constant, value in vars(module).items():
            named = constant.isupper() and any(part in constant for part in SECRET_NAME_PARTS)
            if named and isinstance(value, str) and len(value) >= 6:
                secrets.setdefault(value, f"secret {constant}")
    return secrets


def logs_of_the_run(stack: Any) -> list[Path]:
    browser = sorted((conftest.ARTIFACTS / "browser").glob("*/console.log"))
    # The soak's own stack (tests/integration/test_soak.py): its handler process, killed and restarted.
    soak = conftest.ARTIFACTS / "soak-stack.log"
    return [stack.log_path, conftest.TEST_PROCESS_LOG, *browser, soak]


def test_no_log_line_of_the_run_holds_a_secret_or_personal_data(
    stack, woo_store, shopify_store, test_process_log
):
    stack.stop()  # its buffered output is flushed; the stack fixture's teardown finds it stopped
    test_process_log.flush()
    secrets = run_secrets(stack, woo_store, shopify_store)
    personal = fixture_personal_data(TEST_STREETS)
    assert len(secrets) >= 12 and len(personal) >= 20  # the scan knows what it looks for

    findings: list[Finding] = []
    scanned = 0
    for path in logs_of_the_run(stack):
        if path.exists():
            scanned += 1
            findings += scan(path, secrets, personal, name=str(path.relative_to(conftest.ROOT)))

    assert scanned >= 2 and stack.log_path.stat().st_size > 0
    shown = "\n".join(str(finding) for finding in findings[:SHOWN])
    more = f"\n… and {len(findings) - SHOWN} more" if len(findings) > SHOWN else ""
    assert not findings, f"{len(findings)} log line(s) hold what must not be logged:\n{shown}{more}"
