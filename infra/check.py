"""Offline checks of the deployment: everything short of talking to AWS.

    infra/.venv/bin/python infra/check.py [--stage dev] [--outdir DIR]

1. spec       the resource spec, the ASL placeholders and the Chalice app agree (infra/stacks/model.py)
2. asl        statelint on every step_functions/*.asl.json
3. synth      infra/app.py's build() (offline; cdk-nag AwsSolutions runs as a validation plugin)
4. synth-eb   build() again, with the optional Shopify EventBridge rule (context shopify_event_source set
              to SAMPLE_SHOPIFY_EVENT_SOURCE; cdk-nag included), into <outdir>/cdk.out.shopify-events
5. expand     aws-sam-translator expands Chalice's AWS::Serverless::* resources
6. nag-sam    cdk-nag AwsSolutions on what the SAM expansion generated
7. cfn-lint   on the synthesized, the expanded and the synth-eb template (errors fail; W3005 is ignored)

Prints one line per step and exits non-zero when any step fails. Needs no credentials and no network once
Chalice's Lambda wheels are cached in .chalice/deployments/ (the first synth downloads them from PyPI).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
# `import app` must find the project's Chalice app, never infra/app.py.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != INFRA]
sys.path.insert(0, str(ROOT))

# cfn-lint: CDK adds DependsOn on roles that a GetAtt already implies; harmless.
CFN_LINT_IGNORED = ("W3005",)
# statelint: URI because definitions hold ${Placeholder}s (floats are written 2.0, as statelint wants).
STATELINT_IGNORED = "URI"
DEFAULT_REGION = "us-east-1"
# What the second synth passes as context shopify_event_source (any well-formed partner source name), and
# where its assembly goes, next to the main one (tests/infra/test_template.py reads it from there).
SAMPLE_SHOPIFY_EVENT_SOURCE = "aws.partner/shopify.com/1234567/order-hub"
SHOPIFY_EVENTS_ASSEMBLY = "cdk.out.shopify-events"


@dataclass
class Step:
    name: str
    ok: bool = False
    seconds: float = 0.0
    summary: str = ""
    details: list[str] = field(default_factory=list)


class Checks:
    def __init__(self, stage: str, outdir: Path) -> None:
        self.stage = stage
        self.outdir = outdir
        self.assembly = outdir / "cdk.out"
        self.events_assembly = outdir / SHOPIFY_EVENTS_ASSEMBLY
        self.steps: list[Step] = []
        self._synths: dict[str, dict[str, Any]] = {}  # what the synth worker reported, per step
        self._synth_output = ""

    def run(self, name: str, body: Callable[[Step], None]) -> Step:
        step = Step(name)
        started = time.monotonic()
        try:
            body(step)
        except Exception as exc:  # a check reports every failure instead of stopping at the first
            step.ok = False
            step.summary = step.summary or f"{type(exc).__name__}: {exc}"
        step.seconds = step.seconds or time.monotonic() - started  # a step may time its own part
        self.steps.append(step)
        mark = "PASS" if step.ok else "FAIL"
        print(f"[{mark}] {name:<9} {step.seconds:6.1f}s  {step.summary}", flush=True)
        for line in step.details:
            print(f"         {line}", flush=True)
        return step

    # ----------------------------------------------------------------------------------------- steps

    def spec(self, step: Step) -> None:
        from chalicelib import resources
        from infra.stacks import model

        app = model.load_app(ROOT)
        problems = model.problems(app, self.stage, ROOT)
        functions = model.chalice_functions(app)
        step.details = problems
        step.ok = not problems
        step.summary = (
            f"{len(functions)} functions, {len(resources.QUEUES)} queues, "
            f"{len(resources.STATE_MACHINES)} state machines"
            + ("" if step.ok else f"; {len(problems)} problems")
        )

    def asl(self, step: Step) -> None:
        files = sorted((ROOT / "step_functions").glob("*.asl.json"))
        statelint = str(Path(sys.executable).parent / "statelint")
        failed = 0
        for path in files:
            result = _run(
                [statelint, f"--ignore={STATELINT_IGNORED}", str(path)],
            )
            if result.returncode != 0:
                failed += 1
                step.details.append(f"{path.name}:")
                step.details.extend("  " + line for line in (result.stdout + result.stderr).splitlines())
        step.ok = bool(files) and not failed
        step.summary = f"statelint --ignore={STATELINT_IGNORED}: {len(files) - failed}/{len(files)} valid"

    def synth(self, step: Step) -> None:
        # Both synths in one child process: the second reuses the loaded jsii runtime and Chalice's
        # packaging (seconds, where a second process takes as long as the first), and the child keeps the
        # jsii runtime's noise out of this output.
        result_file = self.outdir / "synth-result.json"
        result_file.unlink(missing_ok=True)
        for assembly in (self.assembly, self.events_assembly):
            (assembly / "validation-report.json").unlink(missing_ok=True)
        started = time.monotonic()
        result = _run(
            [sys.executable, __file__, "--stage", self.stage, "--outdir", str(self.outdir), "--synth-worker"],
            cwd=ROOT,
        )
        self._synth_output = result.stdout + result.stderr
        self._synths = json.loads(result_file.read_text()) if result_file.is_file() else {}
        self._judge_synth(step, "synth", self.assembly)
        # This step's share of the child's time: all of it but the second synth.
        step.seconds = time.monotonic() - started - self._synths.get("synth-eb", {}).get("seconds", 0.0)

    def synth_events(self, step: Step) -> None:
        self._judge_synth(step, "synth-eb", self.events_assembly)
        step.seconds = self._synths.get("synth-eb", {}).get("seconds", 0.0)
        if not step.ok:
            return
        template = json.loads(self.events_template_path().read_text())
        buses = [
            r["Properties"].get("EventSourceName")
            for r in template["Resources"].values()
            if r["Type"] == "AWS::Events::EventBus"
        ]
        if buses != [SAMPLE_SHOPIFY_EVENT_SOURCE]:
            step.ok = False
            step.summary = f"expected one partner event bus for {SAMPLE_SHOPIFY_EVENT_SOURCE}, found {buses}"
            return
        step.summary = f"-c shopify_event_source=<sample>: {step.summary}"

    def synth_worker(self) -> None:
        """In the child process: build() the default stack, then the one with the Shopify rule."""
        from infra import app as cdk_app

        os.environ.pop("HUB_SHOPIFY_EVENT_SOURCE", None)  # the default stack, whatever the shell says
        results: dict[str, dict[str, Any]] = {}
        for name, assembly, source in (
            ("synth", self.assembly, None),
            ("synth-eb", self.events_assembly, SAMPLE_SHOPIFY_EVENT_SOURCE),
        ):
            started = time.monotonic()
            error = ""
            try:
                cdk_app.build(outdir=str(assembly), stage=self.stage, shopify_event_source=source)
            except (Exception, SystemExit) as exc:  # cdk-nag's ValidationFailed, a bad context value, ...
                error = f"{type(exc).__name__}: {exc}"
            results[name] = {"error": error, "seconds": time.monotonic() - started}
        (self.outdir / "synth-result.json").write_text(json.dumps(results))

    def _judge_synth(self, step: Step, name: str, assembly: Path) -> None:
        found = self._synths.get(name)
        report = assembly / "validation-report.json"
        violations = _nag_violations(report) if report.is_file() else []
        if found is None and name != "synth":
            step.summary = "not built: the synth worker failed (see synth)"
            return
        if found is None or found["error"]:
            step.details = violations or ([found["error"]] if found else _tail(self._synth_output))
            step.summary = f"synth failed ({len(violations)} unacknowledged cdk-nag findings)"
            return
        template = assembly / f"{self.stage}.template.json"
        resources = json.loads(template.read_text())["Resources"]
        step.ok = True
        step.summary = f"{template.name}: {len(resources)} resources; cdk-nag AwsSolutions: no findings left"
        step.details = violations  # warnings only, when any

    def expand(self, step: Step) -> None:
        template = json.loads(self.template_path().read_text())
        expanded = expand_template(template)
        self.expanded_path().write_text(json.dumps(expanded, indent=1))
        serverless = [
            k for k, v in template["Resources"].items() if v["Type"].startswith("AWS::Serverless::")
        ]
        step.ok = True
        step.summary = (
            f"{len(serverless)} AWS::Serverless resources → {len(expanded['Resources'])} resources in "
            f"{self.expanded_path().name}"
        )

    def cfn_lint(self, step: Step) -> None:
        files = [self.template_path(), self.expanded_path(), self.events_template_path()]
        files = [f for f in files if f.is_file()]
        if not files:
            step.summary = "no template to lint"
            return
        cfn_lint = str(Path(sys.executable).parent / "cfn-lint")
        region = os.environ["AWS_DEFAULT_REGION"]
        result = _run(
            [
                cfn_lint,
                "--format",
                "parseable",
                "--regions",
                region,
                "--ignore-checks",
                *CFN_LINT_IGNORED,
                "--",
            ]
            + [str(f) for f in files],
        )
        findings = [line for line in result.stdout.splitlines() if line.strip()]
        errors = [f for f in findings if _cfn_lint_rule(f).startswith("E")]
        warnings = [f for f in findings if not _cfn_lint_rule(f).startswith("E")]
        crashed = result.returncode != 0 and not findings
        step.details = [*errors, *warnings] + ([result.stderr.strip()] if crashed else [])
        step.ok = not errors and not crashed
        ignored = ",".join(CFN_LINT_IGNORED)
        step.summary = (
            f"{len(files)} templates: {len(errors)} errors, {len(warnings)} warnings (ignoring {ignored})"
        )

    def nag_sam(self, step: Step) -> None:
        # In a child process: the jsii runtime prints every finding of the whole scratch app to stderr,
        # including those on CDK-defined resources that the main synth has already judged.
        result_file = self.outdir / "nag-sam-result.json"
        result_file.unlink(missing_ok=True)
        result = _run(
            [
                sys.executable,
                __file__,
                "--stage",
                self.stage,
                "--outdir",
                str(self.outdir),
                "--nag-sam-worker",
            ],
        )
        if result.returncode != 0 or not result_file.is_file():
            step.details = _tail(result.stdout + result.stderr)
            step.summary = "the cdk-nag run on the expanded template crashed"
            return
        found = json.loads(result_file.read_text())
        errors, warnings = found["errors"], found["warnings"]
        step.details = [*errors, *warnings]
        step.ok = not errors
        step.summary = (
            f"{found['generated']} generated resources: {len(errors)} errors, "
            f"{len(warnings)} warnings unacknowledged"
        )

    def nag_sam_worker(self) -> None:
        import aws_cdk as cdk
        from aws_cdk import cloudformation_include as cfn_include
        from cdk_nag import AwsSolutionsChecks

        from infra.stacks.generated import acknowledge_generated, generated_resources

        synthesized = json.loads(self.template_path().read_text())
        expanded = json.loads(self.expanded_path().read_text())
        generated = generated_resources(synthesized, expanded)
        # The CDK-only bootstrap parameter and rule would collide with the scratch stack's own.
        expanded.get("Parameters", {}).pop("BootstrapVersion", None)
        expanded.get("Rules", {}).pop("CheckBootstrapVersion", None)
        included = self.outdir / "nag-sam-input.json"
        included.write_text(json.dumps(expanded))

        outdir = self.outdir / "nag-sam.out"
        app = cdk.App(outdir=str(outdir))
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
        stack = cdk.Stack(app, "expanded")
        template = cfn_include.CfnInclude(stack, "Template", template_file=str(included))
        acknowledge_generated(template, generated)
        try:
            app.synth()
        except RuntimeError as exc:
            if "ValidationFailed" not in str(exc):
                raise
        prefix = "expanded/Template/"
        found: dict[str, Any] = {"generated": len(generated), "errors": [], "warnings": []}
        for violation in _violations(outdir / "validation-report.json"):
            for construct in violation["violatingConstructs"]:
                logical_id = construct["constructPath"].removeprefix(prefix).split("/")[0]
                if logical_id not in generated:
                    continue  # defined by the CDK code: checked (and acknowledged) by the main synth
                line = f"{violation['ruleName']} {logical_id}: {violation['description']}"
                found["errors" if violation["severity"] == "error" else "warnings"].append(line)
        (self.outdir / "nag-sam-result.json").write_text(json.dumps(found))

    # --------------------------------------------------------------------------------------- helpers

    def template_path(self) -> Path:
        return self.assembly / f"{self.stage}.template.json"

    def expanded_path(self) -> Path:
        return self.outdir / f"{self.stage}.expanded.json"

    def events_template_path(self) -> Path:
        return self.events_assembly / f"{self.stage}.template.json"


def expand_template(template: dict[str, Any]) -> dict[str, Any]:
    """The template with its AWS::Serverless::* resources expanded, as CloudFormation's transform would."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        """Every role is defined in the stack; SAM never has to look a managed policy up."""

        def load(self) -> dict[str, str]:
            return {}

    expanded: dict[str, Any] = transform(copy.deepcopy(template), {}, NoManagedPolicies())
    return expanded


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    # Only this venv's own tools and scripts, with paths this script computed: no shell, no user input.
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # noqa: S603


def _violations(report: Path) -> list[dict[str, Any]]:
    if not report.is_file():
        return []
    data = json.loads(report.read_text())
    return [v for plugin in data.get("pluginReports", []) for v in plugin.get("violations", [])]


def _nag_violations(report: Path) -> list[str]:
    return [
        f"{v['ruleName']} ({v['severity']}) {c['constructPath']}: {v['description']}"
        for v in _violations(report)
        for c in v["violatingConstructs"]
    ]


def _tail(output: str, lines: int = 25) -> list[str]:
    # Without the jsii runtime's boxed banner (b'!! ... !!') about the Node.js version.
    kept = [line for line in output.strip().splitlines() if not line.startswith("b'!!")]
    return kept[-lines:]


def _cfn_lint_rule(line: str) -> str:
    # parseable: file:line:column:end line:end column:rule:message
    parts = line.split(":")
    return parts[5] if len(parts) > 6 else "E?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stage", default=os.environ.get("HUB_STAGE", "dev"))
    parser.add_argument("--outdir", type=Path, help="keep the assembly and expanded template here")
    parser.add_argument("--nag-sam-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--synth-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        os.environ["AWS_DEFAULT_REGION"] = DEFAULT_REGION  # any region: the template is region-agnostic
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", DEFAULT_REGION))

    if args.nag_sam_worker:
        Checks(args.stage, args.outdir.resolve()).nag_sam_worker()
        return 0
    if args.synth_worker:
        Checks(args.stage, args.outdir.resolve()).synth_worker()
        return 0

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hub-infra-check-") as scratch:
        outdir = (args.outdir or Path(scratch)).resolve()
        outdir.mkdir(parents=True, exist_ok=True)
        checks = Checks(args.stage, outdir)
        print(f"order-hub infra checks: stage {args.stage}, output in {outdir}", flush=True)
        checks.run("spec", checks.spec)
        checks.run("asl", checks.asl)
        synth = checks.run("synth", checks.synth)
        checks.run("synth-eb", checks.synth_events)  # built by the same child process as synth
        if synth.ok:
            expand = checks.run("expand", checks.expand)
            if expand.ok:
                checks.run("nag-sam", checks.nag_sam)
            checks.run("cfn-lint", checks.cfn_lint)
    failed = [s.name for s in checks.steps if not s.ok]
    total = time.monotonic() - started
    if failed or not synth.ok:
        print(f"infra checks FAILED ({', '.join(failed)}) in {total:.1f}s")
        return 1
    print(f"infra checks passed in {total:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
