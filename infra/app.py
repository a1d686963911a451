"""CDK entry point: `python infra/app.py` synthesises the stack offline (no `cdk` CLI, no credentials).

Stage: context `stage` (`cdk synth -c stage=prod`), else $HUB_STAGE, else "dev". The stack id is the stage
(Chalice names its stage after the enclosing construct). Output: $CDK_OUTDIR, else infra/cdk.out.
Alarm e-mail (optional): context `alarm_email` or $HUB_ALARM_EMAIL.
Context `api_gateway_account=false`: leave the account-wide API Gateway logging role to someone else (it must
exist for the API's access and execution logs).
Shopify through EventBridge (optional): context `shopify_event_source` or $HUB_SHOPIFY_EVENT_SOURCE, the
partner event source name (aws.partner/shopify.com/<app id>/<source name>) or its ARN; adds the partner event
bus and the rule to the ingest queue.
A region must be set (AWS_REGION / AWS_DEFAULT_REGION; the cdk CLI sets CDK_DEFAULT_REGION): Chalice's
packager and the SAM translator need one, although the template itself is region-agnostic.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
# Chalice imports the module `app`: that must be the project's app.py, never this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != INFRA]
sys.path.insert(0, str(ROOT))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.stacks import model  # noqa: E402
from infra.stacks.hub_stack import HubStack  # noqa: E402

STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,15}$")


def ensure_region() -> str:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    region = region or os.environ.get("CDK_DEFAULT_REGION")
    if not region:
        raise SystemExit("set AWS_DEFAULT_REGION (e.g. eu-west-1): Chalice's packager needs a region")
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    return region


def stage_of(app: cdk.App) -> str:
    stage = app.node.try_get_context("stage") or os.environ.get("HUB_STAGE") or "dev"
    if not STAGE_PATTERN.match(stage):
        raise SystemExit(
            f"stage {stage!r}: use 1-16 lower-case letters, digits or '-', starting with a letter"
        )
    return str(stage)


def shopify_event_source_of(app: cdk.App) -> str | None:
    value = app.node.try_get_context("shopify_event_source") or os.environ.get("HUB_SHOPIFY_EVENT_SOURCE")
    try:
        return model.shopify_event_source(str(value) if value else None)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


def build(
    outdir: str | None = None, stage: str | None = None, shopify_event_source: str | None = None
) -> cdk.cx_api.CloudAssembly:
    """Synthesise the app (cdk-nag validation included) and return the cloud assembly."""
    ensure_region()
    app = cdk.App(outdir=outdir or os.environ.get("CDK_OUTDIR") or str(INFRA / "cdk.out"))
    if stage:
        app.node.set_context("stage", stage)
    if shopify_event_source:
        app.node.set_context("shopify_event_source", shopify_event_source)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    alarm_email = app.node.try_get_context("alarm_email") or os.environ.get("HUB_ALARM_EMAIL") or None
    manage_account = str(app.node.try_get_context("api_gateway_account") or "true").lower() != "false"
    # Chalice writes its packaging output (chalice.out/) to the working directory; keep it out of the repo.
    with tempfile.TemporaryDirectory(prefix="hub-chalice-") as work, contextlib.chdir(work):
        HubStack(
            app,
            stage_of(app),
            source_dir=ROOT,
            alarm_email=alarm_email,
            manage_api_gateway_account=manage_account,
            shopify_event_source=shopify_event_source_of(app),
        )
        return app.synth()


if __name__ == "__main__":
    assembly = build()
    print(f"synthesised {', '.join(s.stack_name for s in assembly.stacks)} into {assembly.directory}")
