"""The dashboard in a real browser: Debian's chromium driven by Playwright against `streamlit run`.

Screenshots go to test-artifacts/screenshots/. Without chromium these tests skip, unless
BTSEG_REQUIRE_BROWSER=1 (as in .ci/run), where a missing browser is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import (
    CHROMIUM_ARGS,
    PROJECT_ROOT,
    chromium_path,
    dashboard_env,
    running_dashboard,
)

SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
PAGE_LOAD_MS = 120_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlit run app.py` on the tiny dataset; yields the base URL."""
    chromium_path()
    work = tmp_path_factory.mktemp("server")
    env = dashboard_env(tiny_dataset, work / "cache", work / "models")
    with running_dashboard(env, work / "streamlit.log") as running:
        yield running.url


@pytest.fixture(scope="module")
def browser(server: str):
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
    opened = context.new_page()
    opened.set_default_timeout(PAGE_LOAD_MS)
    try:
        yield opened
    finally:
        context.close()


def wait_until_idle(page) -> None:
    """Wait until Streamlit has finished the script run (no 'running' status widget)."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=PAGE_LOAD_MS,
    )


def screenshot(page, name: str) -> Path:
    """Full-page screenshot. Streamlit scrolls inside its main element, not the document, so the
    viewport is first made as tall as that element's content."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = page.evaluate(
        "() => Math.max(...['stMain', 'stSidebarContent'].map(id => "
        'document.querySelector(`[data-testid="${id}"]`)?.scrollHeight || 0))'
    )
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": max(int(height), 800)})
    page.wait_for_timeout(1500)  # Plotly redraws after the resize
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_no_exception(page) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()


def test_home_page_in_the_browser(server, page):
    page.goto(server)
    page.wait_for_selector("text=Bone tumour segmentation and classification")
    page.wait_for_selector('[data-testid="stMetric"]')
    wait_until_idle(page)
    assert_no_exception(page)
    text = page.inner_text("body")
    assert "Synthetic" in text
    assert "Research use only" in text
    assert page.locator('[data-testid="stPageLink"]').count() >= 1
    assert screenshot(page, "home").stat().st_size > 10_000


def test_dataset_page_in_the_browser(server, page):
    page.goto(f"{server}/Dataset")
    page.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot').length >= 9", timeout=PAGE_LOAD_MS
    )
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stImage\"] img').length >= 8",
        timeout=PAGE_LOAD_MS,
    )
    wait_until_idle(page)
    assert_no_exception(page)
    assert "Synthetic" in page.inner_text("body")
    images = page.locator("text=Images").count()
    assert images >= 1
    assert screenshot(page, "dataset").stat().st_size > 50_000


def test_a_sidebar_filter_updates_the_page_in_the_browser(server, page):
    page.goto(f"{server}/Dataset")
    page.wait_for_selector('[data-testid="stMetric"]')
    wait_until_idle(page)
    before = page.locator('[data-testid="stMetricValue"]').first.inner_text()
    class_filter = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first
    class_filter.click()
    page.get_by_role("option", name="malignant").click()
    page.keyboard.press("Escape")
    page.wait_for_selector("text=Filters active")
    wait_until_idle(page)
    assert_no_exception(page)
    after = page.locator('[data-testid="stMetricValue"]').first.inner_text()
    assert int(after.replace(",", "")) < int(before.replace(",", ""))
    screenshot(page, "dataset_filtered")
