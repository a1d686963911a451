import json
from pathlib import Path

import pytest

from chalicelib import resources

ROOT = Path(__file__).resolve().parents[2]


def test_substitute__resolves_every_placeholder_or_refuses():
    assert resources.substitute('{"a": "${X}"}', {"X": "1"}) == '{"a": "1"}'
    with pytest.raises(KeyError, match="Y"):
        resources.substitute('{"a": "${X}", "b": "${Y}"}', {"X": "1"})


def test_every_state_machine_names_exactly_the_placeholders_its_spec_resolves():
    for spec in resources.STATE_MACHINES:
        text = spec.definition_path(ROOT).read_text()
        json.loads(text)
        assert resources.placeholders(text) == set(spec.substitutions)


def test_queue_names__dlqs_follow_fifo_naming():
    for spec in resources.QUEUES:
        assert spec.dlq_name.endswith(".fifo") == spec.fifo == spec.name.endswith(".fifo")
        # Lambda's advice: visibility timeout at least six times the function timeout.
        assert spec.visibility_timeout_seconds >= 6 * resources.DEFAULT_FUNCTION_TIMEOUT_SECONDS
