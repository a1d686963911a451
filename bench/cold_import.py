"""Benchmark: cold import of every Lambda function's handler, each in fresh interpreters, and what it costs.

Run: .venv/bin/python bench/cold_import.py [runs] [--top N] [--no-bytecode]

For every function the Chalice app packages (the REST API's "api_handler", each @lambda_function,
@on_sqs_message and @schedule), Lambda imports the module named by the function's Handler and reads the
handler from it: `app.app` for the API; for a blueprint's handler, the blueprint's own module
(`chalicelib.entrypoints.workflow_tasks.validate_order`: Chalice's handler string is the blueprint's import
name plus the function's name, so app.py is not imported at all). This bench does exactly that in a fresh
interpreter `runs` times per module (9 by default; functions of one module share its figures), timing
import + getattr with time.perf_counter (interpreter start-up not included), and prints per function the
median and max and the modules loaded, and, from one `-X importtime` run per module, the largest costs: by
top-level package (self time summed) and the heaviest modules.

The children get the environment a deployed function has that matters to imports (LAMBDA_IMPORT_ENVIRONMENT
below) and nothing of this shell's HUB_* settings: nothing may read the environment at import time.
--no-bytecode: no cached bytecode (a fresh, empty PYTHONPYCACHEPREFIX and -B), as in a Lambda zip built by
`chalice package`, which ships sources only, on a read-only file system.
Target (issue #19): every function <= 150 ms.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from infra.stacks.model import load_app  # noqa: E402

TARGET_MS = 150.0
# What a deployed function's environment holds that changes what an import costs (infra sets nothing else
# that imports read).
LAMBDA_IMPORT_ENVIRONMENT: dict[str, str] = {}

CHILD = """
import importlib, json, sys, time
started = time.perf_counter()
module = importlib.import_module(sys.argv[1])
handler = getattr(module, sys.argv[2])
elapsed = time.perf_counter() - started
assert callable(handler)
print(json.dumps({"ms": elapsed * 1000, "modules": len(sys.modules)}))
"""


@dataclass(frozen=True)
class Function:
    name: str
    module: str
    attribute: str


def functions() -> list[Function]:
    """Every function `chalice package` generates, with the module and attribute its Handler names."""
    app = load_app(ROOT)
    found: list[Function] = []
    if app.routes:
        found.append(Function("api_handler", "app", "app"))
    for fn in [*app.pure_lambda_functions, *app.event_sources]:
        module, attribute = fn.handler_string.rsplit(".", 1)
        found.append(Function(fn.name, module, attribute))
    return found


def child_environment(pycache: str | None) -> dict[str, str]:
    environ = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **LAMBDA_IMPORT_ENVIRONMENT}
    if pycache is not None:
        environ["PYTHONPYCACHEPREFIX"] = pycache
        environ["PYTHONDONTWRITEBYTECODE"] = "1"
    return environ


def run_child(module: str, attribute: str, *, importtime: bool, pycache: str | None) -> tuple[dict, str]:
    flags = ["-X", "importtime"] if importtime else []
    done = subprocess.run(
        [sys.executable, *flags, "-c", CHILD, module, attribute],
        cwd=ROOT,
        env=child_environment(pycache),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"importing {module}.{attribute} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """(module, self µs, cumulative µs, depth) from `-X importtime` output."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_part, cumulative, name = line[len("import time:") :].split("|")
        # Top-level imports are indented by one space, each level below by two more.
        rows.append((name.strip(), int(self_part), int(cumulative), (len(name) - len(name.lstrip())) // 2))
    return rows


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "chalicelib" and len(parts) > 2:
        return ".".join(parts[:3])
    return parts[0]


def describe(rows: list[tuple[str, int, int, int]], top: int) -> list[str]:
    by_package: dict[str, int] = defaultdict(int)
    for name, self_us, _, _ in rows:
        by_package[package_of(name)] += self_us
    packages = sorted(by_package.items(), key=lambda item: -item[1])[:top]
    heaviest = sorted(rows, key=lambda row: -row[1])[:top]
    return [
        "    by package (self): " + ", ".join(f"{name} {us / 1000:.0f}" for name, us in packages),
        "    heaviest modules (self): " + ", ".join(f"{name} {us / 1000:.0f}" for name, us, _, _ in heaviest),
    ]


def interpreter_start_ms(runs: int, pycache: str | None) -> float:
    import time

    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=child_environment(pycache), check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    args = sys.argv[1:]
    no_bytecode = "--no-bytecode" in args
    top = 8
    if "--top" in args:
        top = int(args[args.index("--top") + 1])
        del args[args.index("--top") : args.index("--top") + 2]
    numbers = [a for a in args if a.isdigit()]
    runs = int(numbers[0]) if numbers else 9
    pycache = tempfile.mkdtemp(prefix="cold-import-pycache-") if no_bytecode else None

    found = functions()
    by_module: dict[tuple[str, str], list[float]] = {}
    loaded: dict[tuple[str, str], int] = {}
    costs: dict[str, list[tuple[str, int, int, int]]] = {}
    first: dict[str, tuple[str, str]] = {}
    for fn in found:
        key = (fn.module, fn.attribute)
        if fn.module in costs:  # functions of one module import the same thing: measured once
            by_module[key], loaded[key] = by_module[first[fn.module]], loaded[first[fn.module]]
            continue
        first[fn.module] = key
        samples = []
        for _ in range(runs):
            result, _ = run_child(fn.module, fn.attribute, importtime=False, pycache=pycache)
            samples.append(result["ms"])
            loaded[key] = result["modules"]
        by_module[key] = samples
        _, stderr = run_child(fn.module, fn.attribute, importtime=True, pycache=pycache)
        costs[fn.module] = parse_importtime(stderr)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"environment: {LAMBDA_IMPORT_ENVIRONMENT}; bytecode cache: {'none' if no_bytecode else 'warm'}")
    print(
        "interpreter start-up alone (python -c pass, not included below): "
        f"{interpreter_start_ms(5, pycache):.0f} ms"
    )
    print(f"{runs} fresh processes per function; import + resolve the handler, ms")
    print(f"{'function':<24} {'handler':<58} {'median':>7} {'max':>7} {'modules':>8}")
    worst = 0.0
    for fn in found:
        samples = by_module[(fn.module, fn.attribute)]
        median = statistics.median(samples)
        worst = max(worst, median)
        flag = "" if median <= TARGET_MS else "  > target"
        handler = f"{fn.module}.{fn.attribute}"
        print(
            f"{fn.name:<24} {handler:<58} {median:7.0f} {max(samples):7.0f} "
            f"{loaded[(fn.module, fn.attribute)]:8d}{flag}"
        )
    print("\nlargest import costs per handler module (ms, one -X importtime run):")
    for module, rows in costs.items():
        total = sum(cumulative for _, _, cumulative, depth in rows if depth == 0)
        print(f"  {module} ({total / 1000:.0f} ms in all under -X importtime, interpreter start-up included)")
        for line in describe(rows, top):
            print(line)
    verdict = "met" if worst <= TARGET_MS else "NOT met"
    print(f"\ntarget <= {TARGET_MS:.0f} ms per function: {verdict} (slowest median {worst:.0f} ms)")


if __name__ == "__main__":
    main()
