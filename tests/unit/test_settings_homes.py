"""GIVEN the deployed code (app.py, chalicelib/) WHEN its source is scanned for what it reads (environment
variables, runtime settings) THEN every read has exactly one home in chalicelib.settings.SETTINGS, and the
rule reports a deliberately unhomed read in a small fake source. The CDK side (every `stack` read is in each
function's environment, every `config` read is a provisioned parameter) is in tests/infra/test_template.py."""

from __future__ import annotations

from collections import Counter

from chalicelib.domain.runtime_settings import RUNTIME_SETTINGS
from chalicelib.settings import HOMES, SETTINGS
from tests.settings_reads import Read, deployed_reads, names, reads_in, resource_spec_values, unhomed

HOMED = {s.name: s.home for s in SETTINGS}
FAKE_SPECS = {"env_var": ["HUB_TABLE_NAME"], "dlq_env_var": []}


def test_every_setting_the_deployed_code_reads_has_a_home():
    reads = deployed_reads()
    assert unhomed(reads, HOMED) == []
    # The scan sees the reads it must (a sanity check of the scanner on the real code).
    assert {"HUB_STAGE", "HUB_SETTINGS_PATH", "HUB_LOCAL", "HUB_TABLE_NAME"} <= names(reads, kind="env")
    assert names(reads, kind="config") == set(RUNTIME_SETTINGS)


def test_each_setting_has_exactly_one_home_and_a_known_one():
    assert [name for name, n in Counter(s.name for s in SETTINGS).items() if n > 1] == []
    assert {s.home for s in SETTINGS} <= set(HOMES)


def test_no_home_is_stale_every_env_and_config_entry_is_read_by_the_code():
    reads = deployed_reads()
    read = names(reads, kind="env") | names(reads, kind="config")
    stale = {s.name for s in SETTINGS if s.home != "connection"} - read
    assert stale == set()


def test_the_rule__an_unhomed_environment_read_is_reported():
    source = 'import os\n\ndef base():\n    return os.environ.get("HUB_3PL_API_BASE")\n'
    reads = reads_in(source, "chalicelib/fake.py", FAKE_SPECS)
    assert reads == {Read("env", "HUB_3PL_API_BASE", "chalicelib/fake.py:4")}
    assert unhomed(reads, HOMED) == [
        "chalicelib/fake.py:4: HUB_3PL_API_BASE has no home in chalicelib.settings.SETTINGS"
    ]


def test_the_rule__every_spelling_of_a_read_is_seen():
    source = (
        "import os\n"
        "def f(environ, spec):\n"
        '    a = environ["HUB_A"]\n'
        '    b = "HUB_B" in os.environ\n'
        '    c = os.getenv("HUB_C")\n'
        '    d = _int_setting(environ, "HUB_D", 3)\n'
        "    e = environ.get(spec.env_var)\n"
        '    p = RuntimeSetting("fraud_policy", "", {}, parse)\n'
    )
    reads = reads_in(source, "f.py", FAKE_SPECS)
    assert names(reads, kind="env") == {"HUB_A", "HUB_B", "HUB_C", "HUB_D", "HUB_TABLE_NAME"}
    assert names(reads, kind="config") == {"fraud_policy"}


def test_the_rule__a_computed_name_or_a_policy_read_from_the_environment_is_reported():
    source = 'import os\nname = "HUB_" + "X"\nv = os.environ[name]\nw = os.environ.get("fraud_policy")\n'
    problems = unhomed(reads_in(source, "g.py", FAKE_SPECS), HOMED)
    assert problems == [
        "g.py:3: reads a setting whose name the source does not show: name",
        "g.py:4: fraud_policy is read as env but homed 'config'",
    ]


def test_resource_spec_attributes_stand_for_every_spec():
    values = resource_spec_values()
    assert "HUB_TABLE_NAME" in values["env_var"] and values["dlq_env_var"]
