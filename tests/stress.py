"""`make test-stress`: run tests with CPU hogs beside them, as on a busy laptop or a shared runner.

    python -m tests.stress [--hogs 2] [--repeat 1] [--max-hog-seconds 3600] [pytest args ...]

Starts `--hogs` processes that spin on the CPU, runs pytest (default: the integration suite) `--repeat`
times, stops at the first failing run, and prints each run's result and duration. The hogs stop when
the runs end, and each stops by itself after `--max-hog-seconds` whatever happens to this process.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time


def _spin(max_seconds: float) -> None:
    """Busy work until the deadline (monotonic, so a clock change cannot extend it)."""
    deadline = time.monotonic() + max_seconds
    n = 0
    while time.monotonic() < deadline:
        for _ in range(100_000):
            n = (n * 31 + 7) % 1_000_003


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.stress", description=__doc__.splitlines()[0], allow_abbrev=False
    )
    parser.add_argument("--hogs", type=int, default=2, help="busy processes beside the tests (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of pytest, stopping at a failure")
    parser.add_argument("--max-hog-seconds", type=float, default=3600.0, help="each hog's own deadline")
    args, pytest_args = parser.parse_known_args(argv)
    if args.hogs < 0 or args.repeat < 1:
        parser.error("--hogs must be >= 0 and --repeat >= 1")
    pytest_args = pytest_args or ["tests/integration"]

    hogs = [
        multiprocessing.Process(target=_spin, args=(args.max_hog_seconds,), daemon=True, name=f"hog-{i}")
        for i in range(args.hogs)
    ]
    for hog in hogs:
        hog.start()
    cores = os.cpu_count()
    print(f"stress: {args.hogs} CPU hogs on {cores} cores; {args.repeat} run(s) of pytest {pytest_args}")
    results: list[tuple[int, float]] = []
    try:
        for run in range(1, args.repeat + 1):
            started = time.monotonic()
            code = subprocess.call([sys.executable, "-m", "pytest", *pytest_args])
            results.append((code, time.monotonic() - started))
            print(
                f"stress: run {run}/{args.repeat}: {'passed' if code == 0 else f'FAILED ({code})'} "
                f"in {results[-1][1]:.0f} s",
                flush=True,
            )
            if code != 0:
                break
    finally:
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            hog.join(timeout=5)
    passed = sum(1 for code, _ in results if code == 0)
    print(f"stress: {passed} of {len(results)} run(s) passed with {args.hogs} hogs beside them")
    return 0 if passed == len(results) == args.repeat else 1


if __name__ == "__main__":
    sys.exit(main())
