"""Finding Debian's chromium for the browser tests (tests/app/test_browser*.py, test_report.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def chromium_path() -> str:
    """The chromium executable; skips the test without it, or fails when
    BTSEG_REQUIRE_BROWSER=1 (as .ci/run sets)."""
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("BTSEG_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{message}, and BTSEG_REQUIRE_BROWSER=1 requires the browser tests to run")
        pytest.skip(message)
    return path
