"""Synthesised templates, one per stage, shared by the template tests (each stage synthesised once).

Imports nothing of the CDK at module level: the main venv runs tests/infra/test_bindings.py without it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Template = dict[str, Any]


@pytest.fixture(scope="session")
def stage_template(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Template]:
    """stage → its synthesised template: read from $HUB_INFRA_ASSEMBLY (the cdk.out `infra/check.py
    --outdir` leaves) when that holds the stage, else synthesised offline, once per session."""
    synthesised: dict[str, Template] = {}

    def template(stage: str) -> Template:
        if stage not in synthesised:
            existing = os.environ.get("HUB_INFRA_ASSEMBLY")
            path = Path(existing) / f"{stage}.template.json" if existing else None
            if path is None or not path.is_file():
                from infra import app as cdk_app

                os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
                outdir = tmp_path_factory.mktemp(f"cdk.out.{stage}")
                cdk_app.build(outdir=str(outdir), stage=stage)
                path = outdir / f"{stage}.template.json"
            synthesised[stage] = json.loads(path.read_text())
        return synthesised[stage]

    return template
