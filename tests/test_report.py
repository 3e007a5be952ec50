"""btseg.report: the self-contained HTML report of one X-ray and of a study."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from browser_support import chromium_path

from btseg.data.images import DecodedImage
from btseg.decisions import OperatingPoint, Verdict, decide, most_probable_lesion, verdict_for
from btseg.gate import GateResult
from btseg.report import (
    REPORT_MAX_SIDE,
    RESEARCH_NOTICE,
    ReportCase,
    StudySummary,
    dataset_summary,
    html_report,
    run_summary,
    study_report,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CRITERION = "max mean Dice over validation tumour images with at most 10% of normals flagged"
PROBABILITIES = {"normal": 0.1, "benign": 0.25, "malignant": 0.65}


class _Collector(HTMLParser):
    """Tags, their attributes and the visible text of a document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("style", "script"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


def parse(document: str) -> _Collector:
    collector = _Collector()
    collector.feed(document)
    collector.close()
    return collector


def synthetic_arrays(height: int = 300, width: int = 240, seed: int = 0):
    """An X-ray-like gradient with a bright 'bone' and a probability map with two blobs."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = 40 + 30 * ys / height + rng.normal(0, 4, (height, width))
    image[:, int(width * 0.4) : int(width * 0.6)] += 120
    image = np.clip(image, 0, 255).astype(np.uint8)
    probability = np.zeros((height, width), dtype=np.float32)
    for cy, cx, radius, peak in ((0.3, 0.5, 0.08, 0.95), (0.75, 0.35, 0.05, 0.8)):
        distance2 = (ys - cy * height) ** 2 + (xs - cx * width) ** 2
        probability += peak * np.exp(-distance2 / (2 * (radius * max(height, width)) ** 2))
    return image, np.clip(probability, 0, 1).astype(np.float32)


def make_case(height: int = 300, width: int = 240, **changes) -> ReportCase:
    image, probability = synthetic_arrays(height, width)
    point = OperatingPoint(0.5, 1e-3, CRITERION)
    mask, lesions = decide(probability, point)
    lesion = most_probable_lesion(lesions)
    verdict = verdict_for(lesions, PROBABILITIES, lesion)
    fields = dict(
        file_name="knee-frontal.png",
        image=image,
        mask=mask,
        probability_map=probability,
        verdict_label=verdict.label,
        verdict_reason=verdict.reason,
        lesions=lesions,
        class_probabilities=PROBABILITIES,
        operating_point=point,
        runs={"segmentation": {"run": "attention_unet", "data_fingerprint": "feedc0ffee123456"},
              "classifier": {"run": "classifier"}},  # fmt: skip
        dataset={"name": "synthetic", "fingerprint": "feedc0ffee123456", "synthetic": True},
        notes=("EXIF orientation 6: turned upright", "appearance distance 2.1 (limit 6.0)"),
        verdict_lesion_index=verdict.lesion_index,
    )
    fields.update(changes)
    return ReportCase(**fields)


def data_uri_pngs(document: str) -> list[np.ndarray]:
    images = []
    for attrs in parse(document).all("img"):
        source = attrs["src"] or ""
        assert source.startswith("data:image/png;base64,"), source[:40]
        payload = base64.b64decode(source.split(",", 1)[1], validate=True)
        assert payload[:8] == b"\x89PNG\r\n\x1a\n"
        images.append(cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED))
    return images


# ------------------------------------------------------------------------------------------------
# One case


def test_the_report_parses_and_refers_to_nothing_outside_itself():
    document = html_report(make_case(uncertainty_map=np.full((300, 240), 0.2, np.float32)))
    collector = parse(document)
    assert collector.all("html") and collector.all("style")
    lowered = document.lower()
    assert "http" not in lowered
    assert 'src="/' not in lowered and "src='/" not in lowered
    assert "<link" not in lowered
    assert "<script" not in lowered
    assert "@import" not in lowered and "url(" not in lowered
    assert all((attrs.get("src") or "").startswith("data:") for attrs in collector.all("img"))


def test_images_are_embedded_pngs_downscaled_to_the_report_size():
    case = make_case(1200, 1000)
    images = data_uri_pngs(html_report(case))
    assert len(images) == 3  # X-ray, overlay, heatmap
    expected = (REPORT_MAX_SIDE, round(1000 * REPORT_MAX_SIDE / 1200))
    assert [image.shape[:2] for image in images] == [expected] * 3
    assert images[0].ndim == 2  # the X-ray as it is, in grey
    assert images[1].shape[2] == 3 and images[2].shape[2] == 3

    small = data_uri_pngs(html_report(make_case()))
    assert [image.shape[:2] for image in small] == [(300, 240)] * 3  # never enlarged


def test_the_overlay_shows_the_mask_and_the_heatmap_the_map():
    case = make_case()
    xray, overlay, heatmap = data_uri_pngs(html_report(case))
    gray = cv2.cvtColor(xray, cv2.COLOR_GRAY2BGR).astype(int)
    changed = np.abs(overlay.astype(int) - gray).sum(axis=2) > 0
    inside = case.mask.astype(bool)
    assert changed[inside].mean() > 0.9  # tinted inside the mask
    assert changed[~inside].mean() < 0.1  # outline and numbered boxes only outside
    assert not np.array_equal(heatmap, gray)


def test_an_uncertainty_map_is_a_fourth_panel():
    uncertainty = np.linspace(0, 1, 300 * 240, dtype=np.float32).reshape(300, 240)
    document = html_report(make_case(uncertainty_map=uncertainty))
    assert len(data_uri_pngs(document)) == 4
    assert "Uncertainty" in parse(document).visible


def test_the_report_shows_verdict_threshold_lesions_and_provenance():
    case = make_case()
    assert len(case.lesions) == 2
    document = html_report(case)
    collector = parse(document)
    text = collector.visible
    assert RESEARCH_NOTICE in text
    assert "knee-frontal.png" in text
    assert "malignant" in text and case.verdict_reason in text
    assert "65.0 %" in text and "25.0 %" in text  # class probabilities
    assert "0.5 (a pixel is lesion" in text and CRITERION in text
    assert "0.1 % of the image" in text  # min lesion fraction 1e-3
    assert "EXIF orientation 6: turned upright" in text and "appearance distance 2.1" in text
    assert "attention_unet" in text and "feedc0ffee123456" in text
    assert "trained on synthetic" in text  # the synthetic-data warning
    assert "UTC" in text and case.btseg_version in text
    rows = re.findall(r"<tr[^>]*>\s*<td>(\d+)", document.split('class="lesions"')[1])
    assert rows == ["1", "2"]
    first = case.lesions[0]
    x0, y0, x1, y1 = first.box
    assert f"{first.area_px:,}" in text and f"{x0}, {y0} – {x1}, {y1}" in text
    assert "classified" in text  # the lesion the classifier was given is marked
    assert "mm²" not in text  # no pixel spacing: no mm² column


def test_areas_in_mm2_when_the_pixel_spacing_is_known():
    _, probability = synthetic_arrays()
    _, lesions = decide(probability, OperatingPoint(0.5, 1e-3), pixel_spacing_mm=(0.2, 0.2))
    case = make_case(pixel_spacing_mm=(0.2, 0.2), lesions=lesions)
    text = parse(html_report(case)).visible
    assert "mm²" in text and f"{lesions[0].area_mm2:,.1f}" in text
    assert "0.2 × 0.2 mm" in text


def test_calibrated_probabilities_and_their_note_are_shown():
    case = make_case(
        calibrated_probabilities={"normal": 0.2, "benign": 0.3, "malignant": 0.5},
        calibration_note="temperature 1.7 on validation",
    )
    text = parse(html_report(case)).visible
    assert "calibrated" in text and "50.0 %" in text and "temperature 1.7 on validation" in text


def test_user_strings_are_escaped():
    case = make_case(
        file_name="<script>alert(1)</script>.png",
        notes=("<img src=x onerror=alert(2)>",),
        runs={"segmentation": {"run": 'a"b&<c>'}},
        verdict_reason="<b>bold</b>",
    )
    document = html_report(case)
    collector = parse(document)
    assert not collector.all("script") and not collector.all("b")
    assert all((attrs.get("src") or "").startswith("data:") for attrs in collector.all("img"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in document
    assert "<script>" not in document and "<img src=x" not in document
    assert "a&quot;b&amp;&lt;c&gt;" in document
    assert "<script>alert(1)</script>.png" in collector.visible  # shown as text


def test_lesions_may_be_given_as_dicts():
    case = make_case(
        lesions=[{"index": 2, "area_px": 120, "box": (10, 20, 30, 40)},
                 {"index": 1, "area_px": 600, "box": [50, 60, 80, 90], "mean_probability": 0.7}],
        pixel_spacing_mm=(0.5, 0.5),
    )  # fmt: skip
    first, second = case.lesions
    assert (first.index, first.area_px, first.box, second.index) == (1, 600, (50, 60, 80, 90), 2)
    assert second.area_percent == pytest.approx(100 * 120 / (300 * 240))
    assert second.area_mm2 == pytest.approx(30.0) and np.isnan(second.mean_probability)
    numbered = make_case(lesions=[{"area_px": 9, "box": (0, 0, 3, 3)}] * 2)
    assert [lesion.index for lesion in numbered.lesions] == [1, 2]
    with pytest.raises(ValueError, match="box"):
        make_case(lesions=[{"area_px": 5}])
    with pytest.raises(ValueError, match="indices"):
        make_case(lesions=[{"index": 1, "area_px": 9, "box": (0, 0, 3, 3)}] * 2)


def test_a_normal_image_has_an_empty_lesion_table():
    image, _ = synthetic_arrays()
    zeros = np.zeros(image.shape, np.float32)
    case = make_case(
        probability_map=zeros, mask=zeros.astype(np.uint8), lesions=[],
        verdict_label="normal", verdict_reason="no lesion found at the operating point",
    )  # fmt: skip
    text = parse(html_report(case)).visible
    assert "No lesion at the operating point." in text and "normal" in text
    assert len(data_uri_pngs(html_report(case))) == 3


def test_bad_arrays_are_refused_naming_the_shapes():
    image, probability = synthetic_arrays()
    with pytest.raises(ValueError, match=r"\(300, 240\)"):
        make_case(mask=np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="probability_map"):
        make_case(probability_map=probability * 2)
    with pytest.raises(ValueError, match="uint8"):
        make_case(image=image.astype(np.float32))
    with pytest.raises(ValueError, match="uncertainty_map"):
        make_case(uncertainty_map=np.zeros((5, 5), np.float32))


# ------------------------------------------------------------------------------------------------
# From a Prediction


ACCEPTED = GateResult(True, notes=("gate ok",))


def _prediction(image: DecodedImage, gate: GateResult = ACCEPTED):
    """btseg predict's Prediction of `image` with the synthetic probability map, through
    Predictor.finish; the region classifier always answers PROBABILITIES."""
    from btseg.predict import Predictor

    _, probability = synthetic_arrays()
    segmenter = SimpleNamespace(name="attention_unet")
    classifier = SimpleNamespace(
        name="classifier", classifies_regions=True, predict=lambda image, box: PROBABILITIES
    )
    point = OperatingPoint(0.4, 2e-3, CRITERION)
    return Predictor(segmenter, classifier).finish(image, probability, point, gate)


def test_from_prediction_carries_everything_the_report_needs():
    pixels, _ = synthetic_arrays()
    image = DecodedImage(pixels, "x.dcm", "DICOM", 12, (0.1, 0.1), "MONOCHROME2",
                         ("mapped to 8 bits by the DICOM window",), "DX")  # fmt: skip
    prediction = _prediction(image)
    config = {
        "run": "attention_unet", "model": "attention", "created_utc": "2026-01-02T03:04:05+00:00",
        "data": {"dir": "/data/btxrd", "synthetic": False, "fingerprint": "abc123",
                 "split_id": "s1", "train_images": 100, "validation_images": 20},
        "versions": {"btseg": "0.1.0"},
    }  # fmt: skip
    case = ReportCase.from_prediction(
        prediction, image, "x.dcm", {"segmentation": run_summary(config)}, dataset_summary(config)
    )
    assert case.image is pixels or np.array_equal(case.image, pixels)
    assert case.verdict_label == prediction.verdict.label == "malignant"
    assert case.verdict_lesion_index == prediction.verdict.lesion_index
    assert case.operating_point == {"threshold": 0.4, "min_lesion_fraction": 2e-3,
                                    "criterion": CRITERION}  # fmt: skip
    assert case.lesions == tuple(prediction.lesions) and case.pixel_spacing_mm == (0.1, 0.1)
    assert case.runs["segmentation"]["created_utc"] == "2026-01-02T03:04:05+00:00"
    assert case.runs["segmentation"]["data_fingerprint"] == "abc123"
    assert case.runs["classifier"] == {"run": "classifier"}
    assert case.dataset == {"name": "btxrd", "fingerprint": "abc123", "synthetic": False,
                            "train_images": 100, "validation_images": 20}  # fmt: skip
    assert case.notes == ("mapped to 8 bits by the DICOM window", "gate ok")
    text = parse(html_report(case)).visible
    assert "no: real radiographs" in text and "trained on synthetic" not in text
    assert "mm²" in text and "/data/btxrd" not in text  # the folder's name, not its path


def test_a_refused_image_shows_the_xray_and_why_no_model_ran():
    from btseg.predict import Prediction

    pixels, _ = synthetic_arrays()
    image = DecodedImage(pixels, "ct.dcm", "DICOM", 16, None, "MONOCHROME2", (), "CT")
    gate = GateResult(False, "is a CT image, not a radiograph", "pass an X-ray")
    refused = Prediction(
        probability_map=np.zeros(pixels.shape, np.float32),
        point=OperatingPoint(0.5),
        mask=np.zeros(pixels.shape, np.uint8),
        lesions=[],
        class_probabilities=None,
        classified_lesion=None,
        verdict=Verdict("inconclusive", f"the image {gate.reason}; {gate.fix}"),
        notes=(),
        segmentation_run="attention_unet",
        classifier_run="",
        gate=gate,
    )
    case = ReportCase.from_prediction(refused, image, "ct.dcm")
    assert not case.models_run and set(case.runs) == {"segmentation"}
    document = html_report(case)
    assert len(data_uri_pngs(document)) == 1
    text = parse(document).visible
    assert "inconclusive" in text and "is a CT image, not a radiograph" in text
    assert "No model was run on this image" in text


# ------------------------------------------------------------------------------------------------
# A study


def test_the_study_report_has_the_study_verdict_and_one_section_per_view():
    frontal = make_case(file_name="frontal.png")
    lateral = make_case(file_name="lateral.png", verdict_label="benign", verdict_reason="why")
    study = StudySummary(
        "malignant", "the frontal view is malignant",
        rule="the most severe view decides: malignant > benign > normal", title="Patient <7>",
        probabilities={"malignant": 0.6},
    )  # fmt: skip
    document = study_report([frontal, lateral], study)
    collector = parse(document)
    sections = [attrs for attrs in collector.all("section") if attrs.get("class") == "case"]
    assert len(sections) == 2
    text = collector.visible
    assert "Study verdict malignant" in text and study.rule in text
    assert "Patient <7>: 2 views" in text and "Patient &lt;7&gt;" in document
    assert text.index("Study verdict") < text.index("View 1 of 2") < text.index("View 2 of 2")
    assert "frontal.png" in text and "lateral.png" in text
    assert len(data_uri_pngs(document)) == 6
    assert "http" not in document.lower()
    with pytest.raises(ValueError):
        study_report([], study)


def test_a_study_summary_from_the_verdict_that_combines_the_views():
    verdict = Verdict("benign", "view 2 is benign (70%)", {"benign": 0.7, "normal": 0.3}, 1)
    study = StudySummary.from_verdict(verdict, "the most severe view", title="knee")
    assert study == StudySummary("benign", "view 2 is benign (70%)", "the most severe view",
                                 {"benign": 0.7, "normal": 0.3}, "knee")  # fmt: skip
    assert StudySummary.from_verdict(Verdict("normal", "none"), "rule").probabilities is None


def test_importing_the_report_needs_neither_tensorflow_nor_streamlit():
    code = (
        "import sys, btseg.report\n"
        "heavy = [name for name in ('tensorflow', 'streamlit', 'keras') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)


# ------------------------------------------------------------------------------------------------
# In a browser


def pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


@pytest.mark.slow
@pytest.mark.browser
def test_the_report_in_chromium_shows_the_verdict_first_and_prints_on_one_page():
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    uncertainty = np.linspace(0, 1, 2400 * 1900, dtype=np.float32).reshape(2400, 1900)
    case = make_case(2400, 1900, uncertainty_map=uncertainty)
    study = study_report(
        [case, make_case(file_name="lateral.png")],
        StudySummary("malignant", "view 1 is malignant", "the most severe view decides"),
    )
    screenshots = PROJECT_ROOT / "test-artifacts" / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_content(html_report(case), wait_until="load")
            page.screenshot(path=str(screenshots / "report.png"))
            verdict = page.locator(".verdict-label").first
            assert verdict.is_visible() and verdict.inner_text().strip().lower() == "malignant"
            box = verdict.bounding_box()
            assert box is not None and box["y"] + box["height"] <= 800
            overlay = page.locator('img[alt^="Overlay"]')
            assert overlay.is_visible()
            box = overlay.bounding_box()
            assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 800
            assert box["width"] > 150
            loaded = page.eval_on_selector_all(
                "img", "images => images.map(image => image.complete && image.naturalWidth)"
            )
            assert loaded == [REPORT_MAX_SIDE * 1900 // 2400] * 4

            pdf = page.pdf(prefer_css_page_size=True, print_background=True)
            assert pdf.startswith(b"%PDF") and pdf_pages(pdf) == 1

            page.set_content(study, wait_until="load")
            pdf = page.pdf(prefer_css_page_size=True, print_background=True)
            assert pdf_pages(pdf) == 3  # the study summary, then a page per view
        finally:
            browser.close()
