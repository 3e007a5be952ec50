"""Regenerate docs/screenshots/report.png: the per-case report btseg predict writes for a
test-split image, with the trained models of the models folder.

    .venv/bin/python docs/make_report_screenshot.py [--image IMG000017] [--html report.html]

Runs what `btseg predict IMAGE --out DIR --report --uncertainty` runs (input gate, segmenter at
its operating point, classifier, verdict) on the configured dataset (BTSEG_DATA_DIR, else the
synthetic set) and photographs the HTML report in Debian's chromium through Playwright, 1240 px
wide. Needs trained models (`make run` or `btseg prepare`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from btseg import config  # noqa: E402
from btseg.data.btxrd import open_dataset  # noqa: E402
from btseg.errors import DataError  # noqa: E402
from btseg.predict import Predictor, predict_paths  # noqa: E402

OUT = ROOT / "docs" / "screenshots" / "report.png"


def report_html(image_id: str, workdir: Path) -> str:
    """The HTML report btseg predict writes for the dataset's image ``image_id`` (its file name,
    or its stem: IMG000017)."""
    dataset = open_dataset(config.data_dir())
    usable = dataset.usable
    rows = usable[(usable["image_id"].astype(str) == image_id) | (usable["stem"] == image_id.lower())]
    if rows.empty:
        raise DataError(f"no usable image {image_id}", where=str(dataset.root),
                        fix="pass --image with an image id of the dataset")  # fmt: skip
    predictor, notes = Predictor.from_models_dir(config.models_dir())
    for note in notes:
        print(note)
    summary = predict_paths(
        [rows.iloc[0]["image_path"]], workdir, predictor, report=True, uncertainty=True
    )
    return (workdir / summary.iloc[0]["report_file"]).read_text(encoding="utf-8")


def screenshot(document: str, path: Path, width: int = 1240) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.set_content(document, wait_until="load")
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="IMG000017", help="image id of the dataset")
    parser.add_argument("--out", type=Path, default=OUT, help="the PNG to write")
    parser.add_argument("--html", type=Path, help="also write the report's HTML here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        document = report_html(args.image, Path(folder))
    if args.html:
        args.html.write_text(document, encoding="utf-8")
    screenshot(document, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
