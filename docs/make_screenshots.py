"""Screenshots of every dashboard page for the README, from a running server.

    make run &                                  # or: streamlit run app.py
    .venv/bin/python docs/make_screenshots.py --url http://localhost:8501

Debian's chromium through Playwright, 1440 px wide; the Segment page shows its default test-split
image at the operating point; the Reading room gets four test-split images of the configured
dataset, three named as views of one study. Writes docs/screenshots/<page>.png.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
TIMEOUT_MS = 240_000


def idle(page) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS
    )
    page.wait_for_timeout(2500)


def shoot(page, name: str) -> None:
    height = page.evaluate(
        "() => Math.max(...['stMain', 'stSidebarContent'].map(id => "
        'document.querySelector(`[data-testid="${id}"]`)?.scrollHeight || 0))'
    )
    page.set_viewport_size({"width": 1440, "height": max(int(height), 900)})
    page.wait_for_timeout(2000)
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})
    print(f"{name}: {OUT / f'{name}.png'}")


def study_files(folder: Path) -> list[str]:
    """Four test-split images of the configured dataset, three named as one study's views."""
    from btseg import config
    from btseg.data.btxrd import open_dataset
    from btseg.data.splits import split_for

    dataset = open_dataset(config.data_dir())
    split = split_for(dataset, cache_dir=config.cache_dir())
    usable = dataset.usable.set_index("image_id")
    tumour = [i for i in split.ids("test") if i in usable.index and usable.loc[i, "label"] != "normal"]
    names = ["knee_ap", "knee_lateral", "knee_oblique", "hip_ap"]
    files = []
    for image_id, name in zip(tumour[:4], names, strict=False):
        source = Path(usable.loc[image_id, "image_path"])
        target = folder / f"{name}{source.suffix}"
        shutil.copy(source, target)
        files.append(str(target))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:8501")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as temporary:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        pages = (("home", "", "text=Models"), ("dataset", "Dataset", ".js-plotly-plot"),
                 ("segment", "Segment", "text=Most likely"), ("thresholds", "Thresholds", "text=Verdict"),
                 ("compare", "Compare", ".js-plotly-plot"))  # fmt: skip
        for name, path, ready in pages:
            page.goto(f"{args.url}/{path}", timeout=TIMEOUT_MS)
            page.wait_for_selector(ready, timeout=TIMEOUT_MS)  # the page's main content
            idle(page)
            shoot(page, name)
        page.goto(f"{args.url}/Reading_room", timeout=TIMEOUT_MS)
        idle(page)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
            study_files(Path(temporary))
        )
        page.wait_for_selector("text=Study verdict", timeout=TIMEOUT_MS)
        idle(page)
        shoot(page, "reading_room")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
