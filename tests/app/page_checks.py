"""Checks shared by the AppTest page tests (test_dataset_page.py, test_thresholds_page.py,
test_compare_page.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from streamlit.testing.v1 import AppTest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def assert_page_runs_without_tensorflow(page: str, shown: str, default_timeout: int) -> None:
    """`page` (e.g. "pages/1_Dataset.py"), run by AppTest in a fresh Python with this process's
    environment, raises no exception, passes `assert <shown>` (Python over `app`), and has
    imported neither TensorFlow nor Keras."""
    script = "\n".join(
        [
            "import sys",
            f"sys.path.insert(0, {str(PROJECT_ROOT)!r})",
            "from streamlit.testing.v1 import AppTest",
            f"app = AppTest.from_file({str(PROJECT_ROOT / 'app.py')!r}, "
            f"default_timeout={default_timeout}).run()",
            f"app.switch_page({page!r}).run()",
            "assert not app.exception, [item.value for item in app.exception]",
            f"assert {shown}",
            'heavy = [name for name in ("tensorflow", "keras") if name in sys.modules]',
            'print("HEAVY", sorted(heavy))',
        ]
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=dict(os.environ),
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY []" in result.stdout, result.stdout


def assert_asks_for_models(
    app: AppTest, untrained: Sequence[str], commands: Sequence[str]
) -> None:
    """The page ran without an exception or error, says each of `untrained` ("Basic U-Net" ...)
    "is not trained yet" in an info box, and shows each of `commands` in a code block."""
    assert not app.exception, [item.value for item in app.exception]
    assert not app.error, [item.value for item in app.error]
    text = "\n".join(item.value for item in app.info)
    for name in untrained:
        assert f"{name} is not trained yet" in text, text
    shown = "\n".join(block.value for block in app.code)
    for command in commands:
        assert command in shown, shown
