"""AppTest of the Compare page (tiny trained and evaluated models, and missing ones), and its
drawing helpers in btseg_app.evaluation_ui. The tables it draws are tested without Streamlit in
tests/test_evaluation_compare.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import model_fixtures
import numpy as np
import pandas as pd
import pytest
from page_checks import assert_asks_for_models, assert_page_runs_without_tensorflow
from streamlit.testing.v1 import AppTest

from btseg import evaluation
from btseg_app import evaluation_ui

# Fixtures of model_fixtures.py (pytest finds them as names of this module).
trained_models = model_fixtures.trained_models
models_env = model_fixtures.models_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/4_Compare.py"
MODELS = ("basic_unet", "attention_unet")


def run_page() -> AppTest:
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    return app.switch_page(PAGE).run()


def chart(app: AppTest, key: str) -> dict:
    for element in app.get("plotly_chart"):
        if key in element.proto.id:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart with key {key!r}")


def table(app: AppTest, first_column: str) -> pd.DataFrame:
    """The st.dataframe whose first column is `first_column` (tables carry no id)."""
    for frame in app.dataframe:
        if list(frame.value.columns[:1]) == [first_column]:
            return frame.value
    raise AssertionError(f"no table starting with column {first_column!r}")


def image_captions(app: AppTest) -> list[str]:
    captions = []
    for element in app.get("image"):
        captions.extend(image.caption for image in element.proto.imgs)
    return captions


def assert_clean(app: AppTest) -> None:
    assert not app.exception, [item.value for item in app.exception]
    assert not app.error, [item.value for item in app.error]


def load(models_dir: Path) -> dict:
    return {name: evaluation.load_segmentation_evaluation(models_dir / name) for name in MODELS}


# --------------------------------------------------------------------------------------------
# Drawing helpers


def test_side_by_side_joins_panels_with_a_white_gap():
    left = np.zeros((4, 3, 3), dtype=np.uint8)
    right = np.full((4, 2, 3), 7, dtype=np.uint8)
    joined = evaluation_ui.side_by_side([left, right], gap=2)
    assert joined.shape == (4, 7, 3)
    assert (joined[:, 3:5] == 255).all() and (joined[:, 5:] == 7).all()


# --------------------------------------------------------------------------------------------
# The page


def test_without_models_the_page_gives_the_commands(app_env):
    assert_asks_for_models(
        run_page(),
        untrained=["Basic U-Net", "Attention U-Net"],
        commands=["btseg train --model basic", "btseg train --model attention",
                  "btseg evaluate --models basic"],
    )  # fmt: skip


@pytest.mark.slow
def test_the_page_compares_both_models(models_env):
    app = run_page()
    assert_clean(app)
    evaluations = load(models_env.models_dir)

    metrics = table(app, "metric").set_index("metric")
    row = metrics.loc["Mean Dice, tumour images"]
    values = {}
    for name in MODELS:
        block = evaluations[name].summary["at_validation_threshold"]
        values[name] = block["mean_dice_tumour"]
        low, high = block["ci95"]["mean_dice_tumour"]
        label = "Basic U-Net" if name == "basic_unet" else "Attention U-Net"
        assert row[label] == f"{values[name]:.3f}  [{low:.3f}, {high:.3f}]"
    assert row["difference"] == f"{values['attention_unet'] - values['basic_unet']:+.3f}"
    assert metrics.loc["Validation threshold (operating point)", "Attention U-Net"] == (
        f"{evaluations['attention_unet'].validation_threshold:.4g}")

    roc = chart(app, "compare_roc")
    names = [trace["name"] for trace in roc["data"]]
    assert names[0] == f"Basic U-Net · AUC {evaluations['basic_unet'].summary['pixel_auc']:.3f}"
    assert names[1].startswith("Attention U-Net · AUC")
    chart(app, "compare_pr")
    history = chart(app, "compare_history")
    assert {trace["name"] for trace in history["data"]} >= {
        "Basic U-Net · training", "Attention U-Net · validation"}

    scatter = chart(app, "compare_scatter")
    plotted = sorted(point[0] for trace in scatter["data"] if "customdata" in trace
                     for point in trace["customdata"])
    per_image = evaluations["attention_unet"].per_image
    assert plotted == sorted(per_image.loc[per_image["tumour"].astype(bool), "image_id"])


@pytest.mark.slow
def test_choosing_an_image_shows_it_with_both_predictions(models_env):
    app = run_page()
    per_image = load(models_env.models_dir)["attention_unet"].per_image
    tumours = per_image.loc[per_image["tumour"].astype(bool), "image_id"].tolist()
    chosen = tumours[-1]
    app.selectbox(key="compare_image").set_value(chosen).run()
    assert_clean(app)
    captions = image_captions(app)
    assert any(caption.startswith(f"**{chosen}**") for caption in captions), captions
    assert sum("Dice" in caption and "at " in caption for caption in captions) >= 2
    ringed = [trace for trace in chart(app, "compare_scatter")["data"]
              if trace["name"].startswith("shown:")]
    assert ringed and ringed[0]["name"] == f"shown: {chosen}"


@pytest.mark.slow
def test_the_gallery_follows_the_chosen_order(models_env):
    app = run_page()
    evaluations = load(models_env.models_dir)
    paired = evaluation.paired_per_image(evaluations)
    app.segmented_control(key="compare_gallery_mode").set_value("Worst").run()
    assert_clean(app)
    expected = evaluation.gallery_ids(paired, "Worst", 6)
    captions = image_captions(app)
    shown = [caption.split("**")[1] for caption in captions if "attention" in caption
             and caption.startswith("**") and "·" in caption and "Dice basic" in caption]
    assert shown == expected
    app.segmented_control(key="compare_gallery_mode").set_value("Random").run()
    assert_clean(app)
    app.button(key="compare_gallery_shuffle").click().run()
    assert_clean(app)


@pytest.mark.slow
def test_the_pixel_accuracy_explanation_is_computed_from_the_test_pixels(models_env):
    app = run_page()
    folder = models_env.models_dir / "attention_unet" / "evaluation"
    with np.load(folder / "pixel_histogram.npz") as histogram:
        tumour, background = int(histogram["positives"].sum()), int(histogram["negatives"].sum())
    shown = {metric.label: metric.value for metric in app.metric}
    assert shown["Pixel accuracy"] == f"{100 * background / (tumour + background):.2f}%"
    assert shown["Tumour pixels"] == f"{100 * tumour / (tumour + background):.2f}%"
    assert shown["Keras MeanIoU"] == f"{background / (tumour + background) / 2:.3f}"
    text = "\n".join(item.value for item in app.markdown)
    assert f"all {tumour + background:,} pixels" in text


@pytest.mark.slow
def test_with_one_model_missing_the_page_says_what_to_run(models_env, tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(models_env.models_dir / "attention_unet", models / "attention_unet")
    monkeypatch.setenv("BTSEG_MODELS_DIR", str(models))
    app = run_page()
    assert not app.exception, [item.value for item in app.exception]
    assert any("Basic U-Net is not trained yet" in item.value for item in app.info)
    assert "btseg train --model basic" in "\n".join(block.value for block in app.code)
    history = chart(app, "compare_history")
    assert {trace["name"].split(" · ")[0] for trace in history["data"]} == {"Attention U-Net"}


@pytest.mark.slow
def test_the_page_does_not_import_tensorflow(models_env):
    assert_page_runs_without_tensorflow(PAGE, 'len(app.get("image")) > 0', 180)
