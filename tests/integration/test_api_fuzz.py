"""schemathesis against the live local stack (issue #17): every operation of the hub's own `/openapi.json`
fuzzed with valid and invalid requests and the operator's token; no answer is a 5xx, and every answer's
status code, content type and body are ones the document gives for that operation.

Bounded: a few examples per operation and generation mode (positive, negative), derandomised so a failure
replays, no example database, and a timeout on the whole test. schemathesis' Python API drives it
(`as_strategy` per operation under a hypothesis `given`): its pytest plugin reads a private attribute that
pytest 9 removed.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# Per operation and generation mode: about 40 operations, so a run is a few hundred requests.
MAX_EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Operations whose side effects would disturb the tests that share the stack, each with its reason. Each
# is covered by its own integration tests.
EXCLUDED = {
    # A valid body registers or re-registers a connection: for the Stripe, EasyPost and 3PL connections
    # (one per hub, or the integration 3PL's name) that rotates the secrets the simulators sign with.
    "POST /api/connections": "rotates the shared simulators' secrets",
    # Moves every dead-lettered message back to its queue: the tests that look for a message in a DLQ
    # would find it gone.
    "POST /api/dlq/{queue}/redrive": "empties the DLQs other tests inspect",
    # Reads every channel connection and backfills what it finds: orders other tests did not make.
    "POST /api/reconciliation/run": "backfills orders other tests count",
}


def _failures(operation: Any, mode: GenerationMode, stack: Any) -> list[str]:
    """The distinct failures of `operation`'s bounded run in `mode` (empty when it held)."""
    found: list[str] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            case.call_and_validate(base_url=stack.hub_url, headers=stack.auth, checks=CHECKS, timeout=30)
        except FailureGroup as exc:
            found.append(f"{operation.label} [{mode.value}]: {exc}")

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to break: no parameter, no body
    return found[:1]  # the first example is enough to act on


@pytest.mark.timeout(600)
def test_every_operation_answers_as_its_document_says_and_never_5xx(stack):
    schema = schemathesis.openapi.from_url(f"{stack.hub_url}/openapi.json", timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    tested = [op for op in operations if op.label not in EXCLUDED]
    assert len(tested) == len(operations) - len(EXCLUDED) >= 30, [op.label for op in operations]
    failures = [
        failure
        for operation in tested
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for failure in _failures(operation, mode, stack)
    ]
    assert not failures, "\n\n".join(failures)
