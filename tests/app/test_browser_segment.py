"""The Segment page in a real browser (Debian's chromium through Playwright) with tiny trained
models: upload a JPEG X-ray, move the threshold with the keyboard, draw a box on the canvas, and
download the mask. Screenshots go to test-artifacts/screenshots/segment_*.png.

The browser, page and helpers come from test_browser.py and the server start from
browser_support.py; only the server's folders differ (the trained models of model_fixtures.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser_support import chromium_path, dashboard_env, running_dashboard
from model_fixtures import trained_models  # noqa: F401  (a pytest fixture)
from test_browser import (  # noqa: F401  (browser and page are pytest fixtures)
    PAGE_LOAD_MS,
    assert_no_exception,
    browser,
    page,
    screenshot,
    wait_until_idle,
)

from btseg.data.btxrd import open_dataset
from btseg.data.splits import split_for
from btseg_app.segment_ui import rows_of_test_split

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(request, tmp_path_factory) -> Iterator[str]:
    """`streamlit run app.py` on the tiny dataset and the tiny trained models."""
    chromium_path()
    models = request.getfixturevalue("trained_models")
    env = dashboard_env(models.data_dir, models.cache_dir, models.models_dir)
    log = tmp_path_factory.mktemp("segment_server") / "streamlit.log"
    with running_dashboard(env, log) as running:
        yield running.url


@pytest.fixture(scope="module")
def xray(request) -> Path:
    """A JPEG radiograph of the tiny dataset's test split (with a tumour)."""
    models = request.getfixturevalue("trained_models")
    table = open_dataset(models.data_dir).table
    split = split_for(table, cache_dir=models.cache_dir)
    rows = rows_of_test_split(table, split.assignment)
    return Path(rows[rows["label"] != "normal"].iloc[0]["image_path"])


def findings_header(tab) -> str:
    return tab.locator("h5", has_text="Findings").first.inner_text()


def open_segment_page(tab, server: str) -> None:
    tab.goto(f"{server}/Segment")
    tab.wait_for_selector("canvas.upper-canvas", timeout=PAGE_LOAD_MS)
    tab.wait_for_selector('[data-testid="stImage"] img')
    wait_until_idle(tab)


def test_a_test_split_image_with_its_ground_truth(server, page):  # noqa: F811
    open_segment_page(page, server)
    assert_no_exception(page)
    text = page.inner_text("body")
    for expected in ("Findings", "Classifier", "Ground truth", "Dice", "Research use only"):
        assert expected in text, expected
    # The demo classifier classifies the most probable lesion, when the threshold leaves one
    # (test_segment_page.py checks which one the page shows).
    assert "Most likely" in text or "no lesion at this threshold to classify" in text
    screenshot(page, "segment_test_split")


def test_upload_threshold_canvas_and_download(server, page, xray, tmp_path):  # noqa: F811
    open_segment_page(page, server)
    page.get_by_text("Upload an X-ray", exact=True).click()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(xray))
    page.wait_for_selector(f"text={xray.name}")
    page.wait_for_selector("canvas.upper-canvas")
    wait_until_idle(page)
    assert_no_exception(page)
    assert "Ground truth" not in page.inner_text("body")  # an upload has none
    screenshot(page, "segment_upload")

    # The threshold: keyboard arrows on the log-scale slider in the sidebar.
    before = findings_header(page)
    slider = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"] input[type="range"]')
    slider.first.focus()
    for _ in range(6):
        page.keyboard.press("ArrowLeft")
    page.wait_for_function(
        "(before) => { const h = [...document.querySelectorAll('h5')]"
        ".find(e => e.innerText.includes('Findings')); return h && h.innerText !== before; }",
        arg=before,
        timeout=PAGE_LOAD_MS,
    )
    wait_until_idle(page)
    assert_no_exception(page)
    after = findings_header(page)
    numbers = [
        float(re.search(r"threshold ([0-9.e-]+)", text).group(1)) for text in (before, after)
    ]
    assert numbers[1] < numbers[0]
    screenshot(page, "segment_threshold")

    # A box drawn on the canvas: Dice and IoU of the model's mask against it.
    canvas = page.locator("canvas.upper-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    start = (box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + box["width"] * 0.2, start[1] + box["height"] * 0.15, steps=8)
    page.mouse.move(start[0] + box["width"] * 0.35, start[1] + box["height"] * 0.3, steps=8)
    page.mouse.up()
    page.wait_for_selector('[data-testid="stMetricLabel"]:has-text("IoU")', timeout=PAGE_LOAD_MS)
    page.wait_for_selector("text=Your box", timeout=PAGE_LOAD_MS)
    wait_until_idle(page)
    assert_no_exception(page)
    values = page.locator('[data-testid="stMetric"]').all_inner_texts()
    dice = [text for text in values if text.startswith("Dice")]
    assert dice and re.search(r"\d\.\d{3}|—", dice[0]), values
    screenshot(page, "segment_canvas")

    # The mask download: a PNG at the X-ray's original size.
    with page.expect_download(timeout=PAGE_LOAD_MS) as download_info:
        page.get_by_role("button", name="Mask", exact=True).click()
    saved = tmp_path / "mask.png"
    download_info.value.save_as(saved)
    mask = cv2.imread(str(saved), cv2.IMREAD_UNCHANGED)
    original = cv2.imread(str(xray), cv2.IMREAD_GRAYSCALE)
    assert mask is not None and mask.shape == original.shape
    assert set(np.unique(mask)) <= {0, 255}
    assert_no_exception(page)


def test_the_heatmap_view(server, page):  # noqa: F811
    open_segment_page(page, server)
    page.get_by_role("radio", name="Probability heatmap").click()
    page.wait_for_selector("text=Lesion probability from 0 to 1")
    wait_until_idle(page)
    assert_no_exception(page)
    screenshot(page, "segment_heatmap")
    page.get_by_text("Log scale", exact=True).click()
    page.wait_for_selector("text=Lesion probability on a log scale")
    wait_until_idle(page)
    assert_no_exception(page)
    screenshot(page, "segment_heatmap_log")


def test_the_reading_room_groups_studies_and_opens_a_row(server, page, request, tmp_path):  # noqa: F811
    """Three views of one study and one of another: four rows, two study verdicts, and a row
    opened in the Segment view."""
    import shutil

    models = request.getfixturevalue("trained_models")
    usable = open_dataset(models.data_dir).usable
    sources = [Path(path) for path in usable["image_path"].iloc[:4]]
    names = ["knee_ap", "knee_lateral", "knee_oblique", "hip_ap"]
    files = []
    for source, name in zip(sources, names, strict=True):
        target = tmp_path / f"{name}{source.suffix}"
        shutil.copy(source, target)
        files.append(str(target))
    page.goto(f"{server}/Reading_room")
    page.wait_for_selector('[data-testid="stFileUploader"]', timeout=PAGE_LOAD_MS)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(files)
    page.wait_for_selector("text=4 images in 2 studies", timeout=PAGE_LOAD_MS)
    page.wait_for_selector("text=hip · 1 view · Study verdict:", timeout=PAGE_LOAD_MS)
    wait_until_idle(page)
    assert_no_exception(page)
    text = page.inner_text("body")
    assert text.count("Study verdict:") == 2
    assert "knee · 3 views · Study verdict:" in text and "hip · 1 view · Study verdict:" in text
    screenshot(page, "reading_room")

    page.get_by_role("button", name="Open in Segment").click()
    page.wait_for_selector("text=From the reading room", timeout=PAGE_LOAD_MS)
    page.wait_for_selector("canvas.upper-canvas", timeout=PAGE_LOAD_MS)
    wait_until_idle(page)
    assert_no_exception(page)
    assert "knee_ap" in page.inner_text("body")
