"""btseg.viz as a package: every name callers use is importable from btseg.viz itself, and
importing it loads neither TensorFlow nor Streamlit (the Dataset page's import path)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from btseg import viz

ROOT = Path(__file__).resolve().parents[1]


def test_every_exported_name_comes_from_a_family_module():
    for name in viz.__all__:
        value = getattr(viz, name)
        module = getattr(value, "__module__", None)
        if module is not None and callable(value):
            assert module.startswith("btseg.viz."), name
    assert len(viz.__all__) == len(set(viz.__all__))


def test_every_viz_name_used_in_the_project_is_importable_from_btseg_viz():
    files = [ROOT / "app.py"]
    for folder in ("btseg", "btseg_app", "pages", "tests", "bench"):
        files += sorted((ROOT / folder).rglob("*.py"))
    used = set()
    for path in files:
        if path.is_file():
            used |= set(re.findall(r"\bviz\.([A-Za-z_]\w*)", path.read_text(encoding="utf-8")))
    assert {"segmentation_overlay", "probability_heatmap", "roc_figure"} <= used
    missing = sorted(name for name in used if not hasattr(viz, name))
    assert missing == []


def test_importing_viz_loads_neither_tensorflow_nor_streamlit():
    code = "import sys, btseg.viz; print('tensorflow' in sys.modules, 'streamlit' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.split() == ["False", "False"]
