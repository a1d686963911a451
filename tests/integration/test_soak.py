"""The soak's smaller run (bench/soak.py): a few hundred orders across the four channels with the faults
mixed and one SIGKILL of the handler process, checked from the data. It boots its own stack (moto apart,
so the handler side can die while the AWS state survives), not the session's."""

from __future__ import annotations

import pytest

from bench.soak import run
from tests.integration.conftest import ARTIFACTS

ORDERS = 100
# Traffic (about 10 s at 10 orders a second), one restart, then settling; the run stops itself here.
CAP_SECONDS = 120.0


@pytest.mark.xfail(
    strict=True,
    reason="a lifecycle execution in flight when the handler process dies FAILS: locally the gateway that "
    "plays the Lambda service dies with the handlers and moto's Step Functions client does not retry a "
    "refused Invoke (issue 17, soak; see bench/RESULTS.md)",
)
def test_a_few_hundred_orders_with_faults_and_a_kill_end_exactly_once():
    ARTIFACTS.mkdir(exist_ok=True)
    report = run(ORDERS, 1, CAP_SECONDS, 10.0, 17, ARTIFACTS / "soak-stack.log", log=lambda _: None)
    assert report["faults"]["kills"] == 1
    assert report["orders_placed"] == ORDERS
    assert report["lost"] == 0 and report["doubled"] == 0
    assert report["stripe"]["captured_twice"] == 0
    assert report["stripe"]["refund_above_capture"] == 0
    assert report["problems"] == [], report["problems"]
