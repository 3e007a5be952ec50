"""Regenerate docs/screenshots/report.png: the per-case report of a synthetic radiograph.

    .venv/bin/python docs/make_report_screenshot.py [--html report.html]

The X-ray and its lesion outline come from btseg.synthetic (no patient data); the probability
map is the blurred true mask with a faint false hotspot, cut at an operating point and given its
verdict by btseg predict's Predictor.finish, with a fixed classifier answer. No model is run.
Needs Playwright and Debian's chromium.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from btseg.data.images import DecodedImage  # noqa: E402
from btseg.decisions import OperatingPoint  # noqa: E402
from btseg.gate import GateResult  # noqa: E402
from btseg.predict import Predictor  # noqa: E402
from btseg.report import ReportCase, html_report  # noqa: E402

OUT = ROOT / "docs" / "screenshots" / "report.png"


def synthetic_case(subtype: str = "osteosarcoma", seed: int = 3) -> ReportCase:
    """A ReportCase for a synthetic radiograph with one lesion of ``subtype``."""
    from btseg.synthetic.plan import plan_dataset
    from btseg.synthetic.render import render_radiograph

    with tempfile.TemporaryDirectory() as folder:
        plan = plan_dataset(120, seed, Path(folder))
    spec = next(s for s in plan.specs if s.lesions and s.lesions[0].subtype == subtype)
    image, outlines = render_radiograph(spec)
    truth = np.zeros(image.shape, dtype=np.uint8)
    for _, polygon in outlines:
        cv2.fillPoly(truth, [np.round(polygon).astype(np.int32).reshape(-1, 1, 2)], 1)

    rng = np.random.default_rng(seed)
    side = max(image.shape)
    probability = cv2.GaussianBlur(truth.astype(np.float32), (0, 0), side * 0.012) * 0.95
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    cy, cx = image.shape[0] * 0.2, image.shape[1] * 0.7
    probability += 0.3 * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * (side * 0.03) ** 2))
    probability += rng.uniform(0, 3e-4, image.shape).astype(np.float32)
    probability = np.clip(probability, 0.0, 1.0).astype(np.float32)

    point = OperatingPoint(
        0.6, 2e-3,
        "max mean Dice over validation tumour images with at most 10% of validation normal "
        "images flagged",
    )  # fmt: skip
    # Cut, classified and given its verdict by btseg predict's own steps; the classifier's
    # answer is fixed.
    probabilities = {"normal": 0.06, "benign": 0.23, "malignant": 0.71}
    classifier = SimpleNamespace(
        name="classifier", classifies_regions=True, predict=lambda image, box: probabilities
    )
    decoded = DecodedImage(image, Path(spec.path).name, "JPEG", 8, None, "L",
                           ("the file is a JPEG despite its .png extension",))  # fmt: skip
    gate = GateResult(True, notes=("appearance distance 3.2 (limit 6.8)",))
    prediction = Predictor(SimpleNamespace(name="attention_unet"), classifier).finish(
        decoded, probability, point, gate
    )
    return ReportCase.from_prediction(
        prediction,
        decoded,
        decoded.source,
        runs={
            "segmentation": {"created_utc": "2026-12-07T01:18:22+00:00",
                             "data_fingerprint": "bb5f860cd26e6a23", "split_id": "d94d3fdceb58"},
            "classifier": {"created_utc": "2026-12-07T01:31:05+00:00",
                           "data_fingerprint": "bb5f860cd26e6a23", "split_id": "d94d3fdceb58"},
        },  # fmt: skip
        dataset={"name": "synthetic", "fingerprint": "bb5f860cd26e6a23", "synthetic": True,
                 "train_images": 1310, "validation_images": 280},  # fmt: skip
        uncertainty_map=4.0 * probability * (1.0 - probability),
        calibrated_probabilities={"normal": 0.09, "benign": 0.29, "malignant": 0.62},
        calibration_note="temperature 1.4, fitted on the validation images",
    )


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
    parser.add_argument("--out", type=Path, default=OUT, help="the PNG to write")
    parser.add_argument("--html", type=Path, help="also write the report's HTML here")
    args = parser.parse_args()
    document = html_report(synthetic_case())
    if args.html:
        args.html.write_text(document, encoding="utf-8")
    screenshot(document, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
