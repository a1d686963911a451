"""Headless Chromium for browser tests: Debian's `chromium` driven by Playwright (sync API).

Playwright's own browser download does not work on the project's machines, so the tests launch the
system browser (`make browser` installs it; `HUB_CHROMIUM` names another binary).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Headless, no sandbox (root), and none of Chromium's own calls home: on a closed network those are
# refused or fail to resolve at every start. Playwright adds a fresh --user-data-dir per launch.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Debian's launcher adds this only when it can read /dev/shm's free space; a small /dev/shm
    # (containers) otherwise crashes renderers.
    "--disable-dev-shm-usage",
)
# A step that waits longer than this is broken, not slow (the local stack answers in milliseconds; the
# margin is for a machine busy with other work).
STEP_TIMEOUT_MS = 30_000


def chromium_path() -> str:
    path = os.environ.get("HUB_CHROMIUM") or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"no Chromium at {path}: run `make browser` (or set HUB_CHROMIUM=/path/to/chromium)")
    return path


def launch(playwright: Any) -> Any:
    """A headless Chromium (Playwright `Browser`) on the system binary."""
    return playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS)
    )


class Screenshots:
    """Full-page screenshots of one test, numbered in the order taken: `<dir>/<test>/01-login.png`."""

    def __init__(self, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        self.directory = directory
        self.taken = 0

    def __call__(self, page: Any, name: str) -> Path:
        self.taken += 1
        path = self.directory / f"{self.taken:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
