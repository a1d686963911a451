"""The architecture checker itself: each rule reports a deliberately wrong import in a small tree."""

from __future__ import annotations

from pathlib import Path

from tests.architecture.imports import (
    Tree,
    cycles,
    domain_violations,
    entrypoint_violations,
    private_violations,
)


def tree(tmp_path: Path, files: dict[str, str]) -> Tree:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in ("chalicelib", "chalicelib/domain", "chalicelib/entrypoints", "chalicelib/adapters"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    return Tree.read(tmp_path, ("chalicelib", "local"))


def test_a_domain_module_importing_an_adapter_inside_a_function_is_reported(tmp_path):
    found = domain_violations(
        tree(
            tmp_path,
            {
                "chalicelib/domain/order.py": "import json\nfrom pydantic import BaseModel\n"
                "from chalicelib.domain import money\n",
                "chalicelib/domain/money.py": "from decimal import Decimal\n",
                "chalicelib/domain/ingest.py": "def f():\n    from chalicelib.adapters.models import M\n",
                "chalicelib/adapters/models.py": "M = 1\n",
            },
        )
    )
    assert [str(f) for f in found] == ["chalicelib.domain.ingest:2 imports chalicelib.adapters.models.M"]


def test_a_domain_module_importing_boto3_or_requests_is_reported(tmp_path):
    found = domain_violations(tree(tmp_path, {"chalicelib/domain/x.py": "import boto3\nimport requests\n"}))
    assert [f.target for f in found] == ["boto3", "requests"]


def test_an_entrypoint_importing_an_adapter_or_boto3_is_reported_the_composition_root_is_not(tmp_path):
    found = entrypoint_violations(
        tree(
            tmp_path,
            {
                "chalicelib/composition.py": "",
                "chalicelib/entrypoints/api.py": "from chalice import Blueprint\n"
                "from chalicelib.composition import services\n"
                "from ..adapters import aws\n"
                "import botocore.exceptions\n",
                "chalicelib/adapters/aws.py": "",
            },
        )
    )
    assert [f.target for f in found] == ["chalicelib.adapters.aws", "botocore.exceptions"]
    excused = entrypoint_violations(
        tree(tmp_path, {}),
        exceptions=[
            ("chalicelib.entrypoints.api", "chalicelib.adapters"),
            ("chalicelib.entrypoints.api", "botocore"),
        ],
    )
    assert excused == []


def test_private_names_of_another_module_are_reported_by_import_and_by_attribute(tmp_path):
    found = private_violations(
        tree(
            tmp_path,
            {
                "chalicelib/adapters/stats.py": "def _pk(): ...\ndef _own(): ...\nx = _own()\n",
                "local/bench.py": "from chalicelib.adapters.stats import _pk\n"
                "from chalicelib.adapters import stats\n"
                "import chalicelib.adapters.stats as s\n"
                "stats._pk()\ns._pk()\nstats.__name__\n",
            },
        )
    )
    assert [str(f) for f in found] == [
        "local.bench:1 uses private chalicelib.adapters.stats._pk",
        "local.bench:4 uses private chalicelib.adapters.stats._pk",
        "local.bench:5 uses private chalicelib.adapters.stats._pk",
    ]


def test_a_cycle_through_a_function_level_import_is_reported(tmp_path):
    found = cycles(
        tree(
            tmp_path,
            {
                "chalicelib/domain/a.py": "from chalicelib.domain import b\n",
                "chalicelib/domain/b.py": "def f():\n    from chalicelib.domain.c import g\n",
                "chalicelib/domain/c.py": "import chalicelib.domain.a\ndef g(): ...\n",
                "chalicelib/domain/d.py": "from chalicelib.domain import a\n",
            },
        )
    )
    assert found == [["chalicelib.domain.a", "chalicelib.domain.b", "chalicelib.domain.c"]]
