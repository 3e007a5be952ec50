"""AppTest of the Thresholds page: tiny trained and evaluated models, and missing ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import model_fixtures
import pandas as pd
import pytest
from page_checks import assert_asks_for_models, assert_page_runs_without_tensorflow
from streamlit.testing.v1 import AppTest

from btseg import evaluation

# Fixtures of model_fixtures.py (pytest finds them as names of this module).
trained_models = model_fixtures.trained_models
models_env = model_fixtures.models_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/3_Thresholds.py"


def run_page() -> AppTest:
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    return app.switch_page(PAGE).run()


def chart(app: AppTest, key: str) -> dict:
    """The Plotly JSON of the chart drawn with `key`."""
    for element in app.get("plotly_chart"):
        if element.proto.id.endswith(key) or key in element.proto.id:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart with key {key!r}")


def metric_values(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def table(app: AppTest, first_column: str) -> pd.DataFrame:
    """The st.dataframe whose first column is `first_column` (tables carry no id)."""
    for frame in app.dataframe:
        if list(frame.value.columns[:1]) == [first_column]:
            return frame.value
    raise AssertionError(f"no table starting with column {first_column!r}")


def codes(app: AppTest) -> str:
    return "\n".join(block.value for block in app.code)


def assert_clean(app: AppTest) -> None:
    assert not app.exception, [item.value for item in app.exception]
    assert not app.error, [item.value for item in app.error]


def test_without_models_the_page_gives_the_commands(app_env):
    app = run_page()
    assert_asks_for_models(
        app,
        untrained=["Attention U-Net", "Classifier"],
        commands=["btseg train --model attention", "btseg evaluate --models attention",
                  "btseg train --model classifier"],
    )  # fmt: skip
    assert len(app.get("plotly_chart")) == 0


def test_the_basic_model_is_selectable_and_named_in_its_command(app_env):
    app = run_page()
    app.get("segmented_control")[0].set_value("basic_unet").run()
    assert not app.exception
    assert "btseg train --model basic" in codes(app)


@pytest.mark.slow
def test_the_page_shows_the_evaluation_at_the_validation_threshold(models_env):
    app = run_page()
    assert_clean(app)
    segmentation = evaluation.load_segmentation_evaluation(models_env.models_dir / "attention_unet")
    validation = segmentation.validation_threshold
    slider = app.select_slider(key="thresholds_threshold_attention_unet")
    assert slider.value == validation

    shown = metric_values(app)
    assert shown["Validation threshold"] == f"{validation:.4g}"
    assert shown["Pixel ROC AUC"] == f"{segmentation.summary['pixel_auc']:.3f}"
    counts = segmentation.confusion_at(validation)
    captions = "\n".join(item.value for item in app.caption)
    assert f"TP {counts.tp:,} · FP {counts.fp:,} · FN {counts.fn:,} · TN {counts.tn:,}" in captions

    matrix = chart(app, "thresholds_pixel_confusion")["data"][0]["customdata"]
    assert matrix == [[counts.tn, counts.fp], [counts.fn, counts.tp]]
    for key in ("thresholds_curves", "thresholds_normal_fp", "thresholds_size_buckets",
                "thresholds_roc", "thresholds_pr", "thresholds_class_roc",
                "thresholds_class_confusion", "thresholds_reliability"):
        chart(app, key)

    study = table(app, "threshold")
    assert study["threshold"].tolist() == [
        "0.5", "0.1", "0.01", "0.001", "0.0001", f"{validation:.4g} (validation)"]
    expected = segmentation.metrics_at(0.001)
    row = study[study["threshold"] == "0.001"].iloc[0]
    assert row["Pooled Dice"] == pytest.approx(expected["dice"], nan_ok=True)
    assert row["Sensitivity"] == pytest.approx(expected["sensitivity"], nan_ok=True)
    sweep = segmentation.sweep.set_index("threshold")
    assert row["Mean Dice"] == pytest.approx(sweep.loc[0.001, "mean_dice"])
    assert row["Normals flagged"] == pytest.approx(sweep.loc[0.001, "normal_fp_rate"])


@pytest.mark.slow
def test_moving_the_threshold_updates_the_confusion_matrix_and_the_table(models_env):
    app = run_page()
    segmentation = evaluation.load_segmentation_evaluation(models_env.models_dir / "attention_unet")
    for threshold in (0.5, 0.0001):
        app.select_slider(key="thresholds_threshold_attention_unet").set_value(threshold).run()
        assert_clean(app)
        counts = segmentation.confusion_at(threshold)
        matrix = chart(app, "thresholds_pixel_confusion")["data"][0]["customdata"]
        assert matrix == [[counts.tn, counts.fp], [counts.fn, counts.tp]]
        metrics_table = table(app, "metric").set_index("metric")
        column = f"at {threshold:.4g}"
        expected = segmentation.metrics_at(threshold)
        assert metrics_table.loc["Specificity", column] == pytest.approx(expected["specificity"])
        assert metrics_table.loc["Sensitivity (recall)", column] == pytest.approx(
            expected["sensitivity"], nan_ok=True)
        per_image = segmentation.per_image_at(threshold)
        tumour = per_image[per_image["tumour"].astype(bool)]
        assert metrics_table.loc["Mean Dice (tumour images)", column] == pytest.approx(
            tumour["dice"].mean())
    # Predicting at a lower threshold can only add tumour pixels.
    assert segmentation.confusion_at(0.0001).tp >= segmentation.confusion_at(0.5).tp


@pytest.mark.slow
def test_the_quick_buttons_set_the_threshold(models_env):
    app = run_page()
    app.button(key="thresholds_set_half_attention_unet").click().run()
    assert_clean(app)
    assert app.select_slider(key="thresholds_threshold_attention_unet").value == 0.5
    validation = evaluation.load_segmentation_evaluation(
        models_env.models_dir / "attention_unet").validation_threshold
    app.button(key="thresholds_set_validation_attention_unet").click().run()
    assert app.select_slider(key="thresholds_threshold_attention_unet").value == validation


@pytest.mark.slow
def test_the_classifier_section_shows_its_evaluation(models_env):
    app = run_page()
    assert_clean(app)
    classifier = evaluation.load_classifier_evaluation(models_env.models_dir / "classifier")
    shown = metric_values(app)
    assert shown["Balanced accuracy"] == f"{classifier.summary['balanced_accuracy']:.3f}"
    matrix = chart(app, "thresholds_class_confusion")["data"][0]["customdata"]
    assert matrix == classifier.confusion_matrix().tolist()
    roc = chart(app, "thresholds_class_roc")
    assert [trace["name"].split(" vs rest")[0] for trace in roc["data"][:3]] == [
        "normal", "benign", "malignant"]
    per_class = table(app, "class")
    assert per_class["class"].tolist() == ["normal", "benign", "malignant"]
    # The demo recipe's classifier was tested on regions, and the page says so.
    assert classifier.summary["input_mode"] == "region"
    assert any("tested on regions" in caption.value for caption in app.caption)


@pytest.mark.slow
def test_a_run_without_evaluation_or_with_a_broken_one_gives_the_command(
        models_env, tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(models_env.models_dir / "attention_unet", models / "attention_unet",
                    ignore=shutil.ignore_patterns("evaluation"))
    shutil.copytree(models_env.models_dir / "classifier", models / "classifier")
    (models / "classifier" / "evaluation" / "summary.json").write_text("{not json")
    monkeypatch.setenv("BTSEG_MODELS_DIR", str(models))
    app = run_page()
    assert not app.exception, [item.value for item in app.exception]
    assert any("has not been evaluated" in item.value for item in app.info)
    assert len(app.error) == 1 and "summary.json" in app.error[0].value
    assert "btseg evaluate --models attention" in codes(app)
    assert "btseg evaluate --models classifier" in codes(app)


@pytest.mark.slow
def test_the_page_does_not_import_tensorflow(models_env):
    assert_page_runs_without_tensorflow(PAGE, 'len(app.get("plotly_chart")) >= 8', 180)


@pytest.mark.slow
def test_an_evaluation_of_another_dataset_or_an_older_model_is_flagged(
        models_env, tmp_path, monkeypatch):
    models = tmp_path / "models"
    for run in ("attention_unet", "classifier"):
        shutil.copytree(models_env.models_dir / run, models / run)
    monkeypatch.setenv("BTSEG_MODELS_DIR", str(models))
    app = run_page()
    assert_clean(app)
    assert not app.warning

    with open(models / "attention_unet" / "model.keras", "ab") as model:
        model.write(b"retrained")  # another model file than the one evaluated
    monkeypatch.setenv("BTSEG_DATA_DIR", str(tmp_path / "another_dataset"))
    app = run_page()
    assert not app.exception, [item.value for item in app.exception]
    warnings = [item.value for item in app.warning]
    attention = next(text for text in warnings if "Attention U-Net" in text)
    assert "trained again" in attention and "another_dataset" in attention
    assert "btseg evaluate --models attention" in attention
    classifier = next(text for text in warnings if "Classifier" in text)
    assert "trained again" not in classifier
    assert len(app.get("plotly_chart")) >= 8  # the evaluation is still shown
