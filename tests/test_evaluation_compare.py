"""btseg.evaluation.compare and SegmentationEvaluation.results_at: what the Thresholds and
Compare pages draw, on the hand-written artifacts of tests/test_evaluation.py (no Streamlit).

At the validation threshold 0.5 the ten test pixels give TP 3, FP 1, FN 0, TN 6 (image A: the
three tumour pixels; image B, normal: the 0.7 pixel); at 0.6, TP 2, FP 1, FN 1, TN 6.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_evaluation import write_segmentation

from btseg import evaluation

MODELS = ("basic_unet", "attention_unet")


def write_run(models_dir: Path, name: str = "attention_unet") -> Path:
    """A hand-written evaluation with the per-image columns the pages use, in a run folder with
    a model file whose fingerprint, data and settings the summary records."""
    run_dir = write_segmentation(models_dir / name, model=name)
    folder = run_dir / "evaluation"
    per_image = pd.read_csv(folder / "per_image.csv", dtype={"image_id": str})
    per_image["tumour"] = [True, False]
    per_image["subtype"] = ["osteochondroma", ""]
    per_image["size_bucket"] = ["5-10%", ""]
    per_image["true_area_percent"] = [50.0, 0.0]
    per_image["predicted_lesion"] = [True, True]
    per_image.to_csv(folder / "per_image.csv", index=False)
    (run_dir / "model.keras").write_bytes(b"weights")
    summary = json.loads((folder / "summary.json").read_text())
    summary.update(
        data_dir="/data/btxrd", data_fingerprint="0123456789abcdef", split_id="s1",
        model_fingerprint=evaluation.model_fingerprint(run_dir),
        settings={"split_seed": 0, "bootstrap_resamples": 50, "bootstrap_seed": 0},
    )
    (folder / "summary.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture
def evaluations(tmp_path) -> dict:
    return {name: evaluation.load_segmentation_evaluation(write_run(tmp_path / "models", name))
            for name in MODELS}


# --- one model at a threshold ------------------------------------------------------------------


def test_results_at_adds_counts_and_per_image_numbers_to_the_exact_pixel_metrics(evaluations):
    loaded = evaluations["attention_unet"]
    at_half = loaded.results_at(0.5)
    assert {key: at_half[key] for key in ("tp", "fp", "fn", "tn")} == {
        "tp": 3, "fp": 1, "fn": 0, "tn": 6}
    assert at_half["dice"] == pytest.approx(6 / 7, abs=1e-15)
    assert at_half["mean_dice"] == at_half["mean_iou"] == 1.0    # the tumour image, A
    assert at_half["normal_fp_rate"] == at_half["tumour_detection_rate"] == 1.0
    at_six = loaded.results_at(0.6)
    assert at_six["mean_dice"] == pytest.approx(0.8, abs=1e-15)
    assert at_six["normal_fp_rate"] == 0.0                        # B holds no lesion at 0.6
    assert {key: at_six[key] for key in loaded.metrics_at(0.6)} == loaded.metrics_at(0.6)


def test_curve_points_put_the_operating_point_on_the_roc_and_pr_curves(evaluations):
    points = evaluation.curve_points(evaluations["attention_unet"])   # validation threshold 0.5
    assert points.roc == pytest.approx((1 / 7, 1.0), abs=1e-15)
    assert points.pr == pytest.approx((1.0, 3 / 4), abs=1e-15)
    assert points.prevalence == pytest.approx(3 / 10, abs=1e-15)
    assert evaluation.curve_points(evaluations["attention_unet"], 0.6).roc == pytest.approx(
        (1 / 7, 2 / 3), abs=1e-15)


# --- two models on the same test images -------------------------------------------------------


def test_the_comparison_table_gives_each_model_with_its_interval_and_the_difference(evaluations):
    table = evaluation.comparison_table(evaluations).set_index("metric")
    row = table.loc["Mean Dice, tumour images"]
    assert row["Basic U-Net"] == row["Attention U-Net"] == "1.000  [1.000, 1.000]"
    assert row["difference"] == "+0.000"
    assert table.loc["Pooled Dice (all pixels)", "Attention U-Net"] == "0.857"
    assert table.loc["Precision (pixels)", "Attention U-Net"] == "–"    # not in the summary
    assert table.loc["Precision (pixels)", "difference"] == "–"
    assert table.loc["Pixel ROC AUC", "Attention U-Net"] == "0.905"     # 19 / 21
    assert table.loc["Validation threshold (operating point)", "Basic U-Net"] == "0.5"
    assert table.loc["Mean Dice at the best threshold on test (optimistic)",
                     "Attention U-Net"] == "1.000 at 0.5"


def test_paired_per_image_joins_the_models_by_image(evaluations):
    paired = evaluation.paired_per_image(evaluations)
    assert paired["image_id"].tolist() == ["IMG000001.jpeg", "IMG000002.jpeg"]
    assert paired["dice_basic_unet"].tolist() == paired["dice_attention_unet"].tolist() == [1.0, 0.0]
    assert paired["flagged_attention_unet"].tolist() == [True, True]
    assert paired["subtype"].tolist() == ["osteochondroma", ""]
    assert evaluation.paired_per_image({}).empty


def test_split_mismatch_warns_only_when_splits_or_data_differ(evaluations):
    assert evaluation.split_mismatch(evaluations) is None
    evaluations["basic_unet"].summary["split_id"] = "s2"
    assert "different test splits" in evaluation.split_mismatch(evaluations)
    evaluations["basic_unet"].summary["split_id"] = "s1"
    evaluations["basic_unet"].summary["data_fingerprint"] = "fedcba9876543210"
    assert "different dataset versions" in evaluation.split_mismatch(evaluations)


def paired_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d", "n"],
            "tumour": [True, True, True, True, False],
            "dice_basic_unet": [0.5, 0.1, 0.2, 0.9, np.nan],
            "dice_attention_unet": [0.6, 0.8, 0.2, 0.1, np.nan],
        }
    )


def test_gallery_ids_rank_tumour_images_and_random_includes_normal_ones():
    paired = paired_table()
    assert evaluation.gallery_ids(paired, "Best", 3) == ["b", "a", "c"]
    assert evaluation.gallery_ids(paired, "Worst", 2) == ["d", "c"]
    # |attention - basic|: d 0.8, b 0.7, a 0.1, c 0.0
    assert evaluation.gallery_ids(paired, "Biggest differences", 4) == ["d", "b", "a", "c"]
    drawn = evaluation.gallery_ids(paired, "Random", 5, seed=3)
    assert sorted(drawn) == ["a", "b", "c", "d", "n"]
    assert evaluation.gallery_ids(paired, "Random", 5, seed=3) == drawn
    assert evaluation.gallery_ids(paired.iloc[:0], "Best", 3) == []


def test_the_pixel_accuracy_explanation_counts_the_test_pixels(evaluations):
    explanation = evaluation.pixel_accuracy_explanation(evaluations)
    empty = explanation["empty"]
    assert empty["pixel_accuracy"] == pytest.approx(0.7) and empty["dice"] == 0.0
    assert empty["keras_mean_iou"] == pytest.approx(0.35)
    model = explanation["models"]["attention_unet"]
    assert model == {"accuracy": pytest.approx(0.9), "dice": pytest.approx(6 / 7),
                     "threshold": 0.5, "predicted_pixels": 4}
    assert "all 10 pixels" in explanation["text"]
    assert ("**Attention U-Net** at its validation threshold 0.5: pixel accuracy 90.00% "
            "(+20.00 points against predicting nothing), pooled Dice 0.857.") in explanation["text"]


# --- is an evaluation current? ----------------------------------------------------------------


def test_an_evaluation_is_current_for_the_same_model_and_data_wherever_the_data_lies(evaluations):
    loaded = evaluations["attention_unet"]
    assert evaluation.staleness(loaded, "/data/btxrd", "0123456789abcdef") == []
    assert evaluation.staleness(loaded, "/moved/btxrd", "0123456789abcdef") == []


def test_another_dataset_or_model_makes_an_evaluation_stale(evaluations):
    loaded = evaluations["attention_unet"]
    assert evaluation.staleness(loaded, "/other", None) == [
        "it was made on the dataset at `/data/btxrd`, not on the one loaded now (`/other`)"]
    assert evaluation.staleness(loaded, "/data/btxrd", "fedcba9876543210") == [
        "the dataset at `/data/btxrd` has changed since it was made"]
    (loaded.run_dir / "model.keras").write_bytes(b"other weights")
    assert evaluation.staleness(loaded, "/data/btxrd", "0123456789abcdef") == [
        "the model was trained again after it"]


def test_staleness_follows_the_rule_btseg_evaluate_skips_by(evaluations):
    loaded = evaluations["attention_unet"]
    run_dir = loaded.run_dir
    config = json.loads((run_dir / "config.json").read_text())
    inputs = evaluation.evaluation_inputs(run_dir, config, "0123456789abcdef", n_resamples=50)
    assert inputs.task == "segmentation"
    assert evaluation.out_of_date_reasons(run_dir, inputs) == []
    # Other bootstrap settings redo the evaluation, but do not make the pages call it stale.
    other = evaluation.evaluation_inputs(run_dir, config, "0123456789abcdef")
    assert evaluation.out_of_date_reasons(run_dir, other) == [
        "it was made with other settings (bootstrap_resamples)"]
    (run_dir / "evaluation" / "curves.npz").unlink()
    assert evaluation.out_of_date_reasons(run_dir, inputs) == [
        "its folder lacks curves.npz"]
    assert evaluation.out_of_date_reasons(run_dir.parent / "basic_unet" / "missing", inputs) == [
        "there is no readable evaluation"]
