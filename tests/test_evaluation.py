"""btseg.evaluation: reading evaluation folders without TensorFlow, on hand-written artifacts.

Two test images, scores stored as float16 (the values in comments are the float16 roundings):
    image A (tumour)  scores [[0.9, 0.6, 0.2], [0.5, 0.1, 0.0]]   truth [[1, 1, 0], [1, 0, 0]]
    image B (normal)  scores [[0.7, 0.05], [0.3, 0.0]]            truth all 0
float16(0.6) = 0.60009765625 >= 0.6, but float16(0.2) = 0.199951171875 < 0.2 and
float16(0.1) = 0.0999755859375 < 0.1: the rule is ``score >= threshold`` compared in float64.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from btseg import evaluation
from btseg.errors import RunError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SCORES_A = np.array([[0.9, 0.6, 0.2], [0.5, 0.1, 0.0]], dtype=np.float16)
TRUTH_A = np.array([[1, 1, 0], [1, 0, 0]], dtype=np.uint8)
SCORES_B = np.array([[0.7, 0.05], [0.3, 0.0]], dtype=np.float16)
TRUTH_B = np.zeros((2, 2), dtype=np.uint8)
SWEEP_THRESHOLDS = np.array([0.1, 0.5, 0.6])
# Per image (A, B) and sweep threshold (0.1, 0.5, 0.6): tp, fp, fn, tn, counted by hand.
TP = np.array([[3, 3, 2], [0, 0, 0]])
FP = np.array([[1, 0, 0], [2, 1, 1]])
FN = np.array([[0, 0, 1], [0, 0, 0]])
TN = np.array([[2, 3, 3], [2, 3, 3]])


def histogram() -> tuple[np.ndarray, np.ndarray]:
    keys = np.r_[SCORES_A.ravel(), SCORES_B.ravel()].view(np.uint16)
    truth = np.r_[TRUTH_A.ravel(), TRUTH_B.ravel()].astype(bool)
    totals = np.bincount(keys, minlength=1 << 16)
    positives = np.bincount(keys[truth], minlength=1 << 16)
    return positives.astype(np.int64), (totals - positives).astype(np.int64)


def summary_block(threshold: float, mean_dice: float, pooled_dice: float, flagged: float,
                  interval: list[float] | None) -> dict:
    return {
        "threshold": threshold, "mean_dice_tumour": mean_dice, "pooled_dice": pooled_dice,
        "mean_iou_tumour": mean_dice, "sensitivity": 1.0, "specificity": 6 / 7,
        "normal_fp_rate": flagged, "ci95": {"mean_dice_tumour": interval},
    }


def write_segmentation(run_dir: Path, model: str = "attention_unet") -> Path:
    """A complete hand-written evaluation folder for the two images above."""
    folder = run_dir / "evaluation"
    folder.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"data": {"dir": "/data/btxrd"}}))
    summary = {
        "schema_version": 1, "task": "segmentation", "model": model,
        "n_test_images": 2, "n_tumour_images": 1, "n_normal_images": 1,
        "validation_threshold": 0.5,
        "at_validation_threshold": summary_block(0.5, 1.0, 6 / 7, 1.0, [1.0, 1.0]),
        "best_on_test": {"optimistic": True, **summary_block(0.5, 1.0, 6 / 7, 1.0, None)},
        "pixel_auc": 19 / 21, "average_precision": 1.0,
        "warnings": ["the dataset differs from the one the model was trained on"],
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    pd.DataFrame({"threshold": SWEEP_THRESHOLDS, "dice": [6 / 9, 6 / 7, 4 / 6],
                  "mean_dice": [6 / 7, 1.0, 0.8], "normal_fp_rate": [1.0, 1.0, 1.0]}
                 ).to_csv(folder / "sweep.csv", index=False)
    pd.DataFrame({"image_id": ["IMG000001.jpeg", "IMG000002.jpeg"], "label": ["benign", "normal"],
                  "group": [0, 1], "dice": [1.0, 0.0], "hd95": [0.0, math.nan],
                  "pred_area_px": [3, 1]}).to_csv(folder / "per_image.csv", index=False)
    # The sweep arrays are stored in the opposite image order: rows are matched by image id.
    np.savez(folder / "per_image_sweep.npz",
             image_ids=np.array(["IMG000002.jpeg", "IMG000001.jpeg"]),
             thresholds=SWEEP_THRESHOLDS, tp=TP[::-1], fp=FP[::-1], fn=FN[::-1], tn=TN[::-1],
             has_lesion=np.array([[True, True, False], [True, True, True]]),
             schema_version=np.int64(1))
    positives, negatives = histogram()
    np.savez(folder / "pixel_histogram.npz", positives=positives, negatives=negatives,
             schema_version=np.int64(1))
    np.savez(folder / "curves.npz", roc_fpr=np.array([0.0, 1.0]), roc_tpr=np.array([0.0, 1.0]),
             roc_thresholds=np.array([np.inf, 0.0]), pr_precision=np.array([0.3, 1.0]),
             pr_recall=np.array([1.0, 0.0]), pr_thresholds=np.array([0.0, np.nan]),
             schema_version=np.int64(1))
    np.savez(folder / "predictions.npz", image_ids=np.array(["IMG000001.jpeg", "IMG000002.jpeg"]),
             probabilities=np.zeros((2, 4, 4), dtype=np.float16), schema_version=np.int64(1))
    return run_dir


def write_classifier(run_dir: Path) -> Path:
    folder = run_dir / "evaluation"
    folder.mkdir(parents=True)
    summary = {
        "schema_version": 1, "task": "classification", "model": "classifier",
        "class_names": ["normal", "benign", "malignant"], "n_test_images": 4,
        "accuracy": 0.75, "balanced_accuracy": 2 / 3, "macro_auc": 0.75, "ece": 0.1,
        "confusion_matrix": [[2, 0, 0], [1, 1, 0], [0, 0, 0]],
        "per_class": {
            "normal": {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2,
                       "roc_auc": 0.75, "average_precision": 0.8},
            "benign": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2,
                       "roc_auc": 0.75, "average_precision": 0.8},
            "malignant": {"precision": None, "recall": None, "f1": None, "support": 0,
                          "roc_auc": None, "average_precision": None},
        },
        "normal_vs_tumour": {"auc": 0.75},
        "ci95": {"macro_auc": [0.5, 1.0], "balanced_accuracy": [0.5, 1.0]},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    pd.DataFrame({
        "image_id": ["a", "b", "c", "d"], "label": ["normal", "normal", "benign", "benign"],
        "prob_normal": [0.8, 0.6, 0.7, 0.1], "prob_benign": [0.1, 0.3, 0.2, 0.8],
        "prob_malignant": [0.1, 0.1, 0.1, 0.1],
        "predicted": ["normal", "normal", "normal", "benign"], "group": [0, 0, 1, 2],
    }).to_csv(folder / "predictions.csv", index=False)
    curve = {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 1.0, 1.0], "thresholds": [None, 0.7, 0.1],
             "auc": 0.75}
    (folder / "roc.json").write_text(json.dumps(
        {"schema_version": 1, "classes": {"normal": curve, "benign": curve}}))
    (folder / "reliability.json").write_text(json.dumps(
        {"schema_version": 1, "confidence": [None, 0.75], "accuracy": [None, 0.75],
         "count": [0, 4], "edges": [0.0, 0.5, 1.0], "ece": 0.1, "n_bins": 2}))
    return run_dir


@pytest.fixture
def segmentation_run(tmp_path: Path) -> Path:
    return write_segmentation(tmp_path / "attention_unet")


# --- exact confusion counts from the histogram ------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.5, (3, 1, 0, 6)),    # A: 0.9 0.6 0.5 are tumour; B: 0.7 is a false positive
        (0.6, (2, 1, 1, 6)),    # float16(0.6) is just above 0.6, so it still counts
        (0.2, (3, 2, 0, 5)),    # float16(0.2) is just below 0.2; B's 0.3 becomes positive
        (0.0, (3, 7, 0, 0)),    # everything is predicted tumour
        (0.95, (0, 0, 3, 7)),   # nothing is
    ],
)
def test_confusion_at_counts_pixels_with_score_at_least_the_threshold(segmentation_run, threshold,
                                                                      expected):
    loaded = evaluation.load_segmentation_evaluation(segmentation_run)
    assert tuple(loaded.confusion_at(threshold)) == expected


def test_metrics_at_uses_the_exact_counts(segmentation_run):
    values = evaluation.load_segmentation_evaluation(segmentation_run).metrics_at(0.6)
    assert values["dice"] == pytest.approx(4 / 6, abs=1e-15)     # 2 TP, 1 FP, 1 FN
    assert values["sensitivity"] == pytest.approx(2 / 3, abs=1e-15)
    assert values["specificity"] == pytest.approx(6 / 7, abs=1e-15)


def test_curves_from_the_histogram_equal_scikit_learn_on_the_same_pixels():
    roc, pr = evaluation.curves_from_histogram(*histogram())
    truth = np.r_[TRUTH_A.ravel(), TRUTH_B.ravel()]
    scores = np.r_[SCORES_A.ravel(), SCORES_B.ravel()]
    # Each tumour score beats 7, 6 and 6 of the 7 background scores.
    assert roc.auc == pytest.approx(19 / 21, abs=1e-15)
    assert roc.auc == pytest.approx(roc_auc_score(truth, scores), abs=1e-15)
    assert pr.average_precision == pytest.approx(average_precision_score(truth, scores),
                                                 abs=1e-15)


# --- per-image results at a sweep threshold ---------------------------------------------------


def test_per_image_at_takes_the_nearest_sweep_threshold_on_a_log_scale(segmentation_run):
    loaded = evaluation.load_segmentation_evaluation(segmentation_run)
    at_half = loaded.per_image_at(0.45)   # log distance to 0.5: 0.046, to 0.6: 0.125
    assert at_half["threshold"].tolist() == [0.5, 0.5]
    assert at_half["image_id"].tolist() == ["IMG000001.jpeg", "IMG000002.jpeg"]
    assert at_half["dice"].tolist() == [1.0, 0.0]
    assert at_half["pred_area_px"].tolist() == [3, 1]
    assert at_half["hd95"].tolist()[0] == 0.0        # kept at the validation threshold
    at_six = loaded.per_image_at(0.58)
    assert at_six["threshold"].tolist() == [0.6, 0.6]
    assert at_six["tp"].tolist() == [2, 0]
    assert at_six["dice"].tolist() == pytest.approx([0.8, 0.0], abs=1e-15)  # 4 / (4 + 1)
    assert at_six["predicted_lesion"].tolist() == [True, False]
    assert math.isnan(at_six["hd95"].iloc[0])       # only known at the validation threshold
    at_low = loaded.per_image_at(0.01)
    assert at_low["threshold"].iloc[0] == 0.1
    assert at_low["iou"].tolist() == pytest.approx([3 / 4, 0.0], abs=1e-15)
    # The log midpoint of 0.5 and 0.6 is 0.5477.
    assert (loaded.nearest_sweep_threshold(0.54), loaded.nearest_sweep_threshold(0.55)) == (0.5, 0.6)


def test_thresholds_and_operating_points(segmentation_run):
    loaded = evaluation.load_segmentation_evaluation(segmentation_run)
    assert loaded.thresholds.tolist() == [0.1, 0.5, 0.6]
    assert loaded.validation_threshold == 0.5
    assert loaded.best_threshold == 0.5
    image_ids, probabilities = loaded.probabilities()
    assert image_ids == ["IMG000001.jpeg", "IMG000002.jpeg"]
    assert probabilities.shape == (2, 4, 4) and probabilities.dtype == np.float16


# --- tables and text ---------------------------------------------------------------------------


def test_metric_table_has_a_validation_row_and_an_optimistic_row(segmentation_run):
    loaded = evaluation.load_segmentation_evaluation(segmentation_run)
    table = evaluation.metric_table({"attention_unet": loaded})
    assert list(table.columns) == list(evaluation.METRIC_TABLE_COLUMNS)
    assert table["operating_point"].tolist() == ["validation", "best on test (optimistic)"]
    first = table.iloc[0]
    assert (first["mean_dice_tumour"], first["mean_dice_ci_low"], first["mean_dice_ci_high"]) == (
        1.0, 1.0, 1.0)
    assert first["pooled_dice"] == pytest.approx(6 / 7)
    assert first["pixel_auc"] == pytest.approx(19 / 21)
    assert math.isnan(table.iloc[1]["mean_dice_ci_low"])
    text = evaluation.format_metric_table(table)
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[2] == ("| Attention U-Net | validation | 0.5 | 1.000 [1.000, 1.000] | 0.857 | "
                        "1.000 | 1.000 | 0.857 | 100.0% | 0.905 | 1.000 |")
    assert lines[3].startswith("| Attention U-Net | best on test (optimistic) | 0.5 | 1.000 |")
    assert len(evaluation.metric_table({"attention_unet": loaded}, include_best=False)) == 1


def test_report_combines_segmenters_classifier_and_warnings(tmp_path):
    segmenter = write_segmentation(tmp_path / "attention_unet")
    classifier = write_classifier(tmp_path / "classifier")
    report = evaluation.format_evaluation_report(
        {"attention_unet": segmenter / "evaluation", "classifier": classifier})
    assert "2 images: 1 with a tumour, 1 normal" in report
    assert "| Attention U-Net | validation |" in report
    assert "macro AUC 0.750 [0.500, 1.000]" in report
    assert "Recall per class: normal 1.000, benign 0.500, malignant –." in report
    assert "Warning (Attention U-Net): the dataset differs" in report
    assert evaluation.format_evaluation_report([]) == "No evaluation to report."


# --- classifier --------------------------------------------------------------------------------


def test_classifier_evaluation_loads_curves_tables_and_arrays(tmp_path):
    run_dir = write_classifier(tmp_path / "classifier")
    loaded = evaluation.load_evaluation(run_dir)
    assert isinstance(loaded, evaluation.ClassifierEvaluation)
    assert loaded.class_names == ["normal", "benign", "malignant"]
    assert loaded.labels().tolist() == [0, 0, 1, 1]
    assert loaded.probabilities()[:, 1].tolist() == [0.1, 0.3, 0.2, 0.8]
    assert loaded.confusion_matrix().tolist() == [[2, 0, 0], [1, 1, 0], [0, 0, 0]]
    curves = loaded.class_roc_curves()
    assert set(curves) == {"normal", "benign"}
    assert curves["normal"]["thresholds"][0] == math.inf      # stored as null in JSON
    assert curves["normal"]["auc"] == 0.75
    table = loaded.per_class_table()
    assert table["class"].tolist() == ["normal", "benign", "malignant"]
    assert table["recall"].tolist()[:2] == [1.0, 0.5]
    assert math.isnan(table["auc"].iloc[2])
    reliability = loaded.reliability_curve()
    assert math.isnan(reliability["accuracy"][0]) and reliability["count"].tolist() == [0, 4]


# --- errors ------------------------------------------------------------------------------------


def test_a_run_without_evaluation_says_to_run_btseg_evaluate(tmp_path):
    run_dir = tmp_path / "attention_unet"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"data": {"dir": "/data/btxrd"}}))
    with pytest.raises(RunError) as error:
        evaluation.load_segmentation_evaluation(run_dir)
    message = str(error.value)
    assert "evaluation" in message and "missing" in message
    assert "`btseg evaluate --models attention --data /data/btxrd`" in message
    assert not evaluation.is_evaluated(run_dir)


@pytest.mark.parametrize("name", ["sweep.csv", "per_image.csv", "pixel_histogram.npz",
                                  "per_image_sweep.npz", "curves.npz", "predictions.npz"])
def test_a_missing_file_is_named(segmentation_run, name):
    (segmentation_run / "evaluation" / name).unlink()
    with pytest.raises(RunError) as error:
        evaluation.load_segmentation_evaluation(segmentation_run)
    assert error.value.where == str(segmentation_run / "evaluation" / name)
    assert name in str(error.value) and "btseg evaluate" in str(error.value)


def test_another_schema_version_is_refused(segmentation_run):
    path = segmentation_run / "evaluation" / "summary.json"
    summary = json.loads(path.read_text())
    summary["schema_version"] = 2
    path.write_text(json.dumps(summary))
    with pytest.raises(RunError, match="schema_version 2.*btseg evaluate"):
        evaluation.load_segmentation_evaluation(segmentation_run)


def test_a_corrupt_file_and_the_wrong_task_are_run_errors(segmentation_run):
    (segmentation_run / "evaluation" / "curves.npz").write_bytes(b"not an archive")
    with pytest.raises(RunError, match="curves.npz cannot be read"):
        evaluation.load_segmentation_evaluation(segmentation_run)
    with pytest.raises(RunError, match="not a classification model"):
        evaluation.load_classifier_evaluation(segmentation_run)


# --- helpers ------------------------------------------------------------------------------------


def test_downsample_curve_keeps_both_ends_and_at_most_the_limit():
    x = np.linspace(0.0, 1.0, 10_001) ** 4
    kept = evaluation.downsample_curve(x, np.sqrt(x), max_points=100)
    assert kept[0] == 0 and kept[-1] == 10_000
    assert len(kept) <= 100 and np.all(np.diff(kept) > 0)
    assert evaluation.downsample_curve(x[:50], x[:50], max_points=100).tolist() == list(range(50))


def test_reading_an_evaluation_or_importing_the_evaluator_never_imports_tensorflow(tmp_path):
    run_dir = write_segmentation(tmp_path / "attention_unet")
    classifier = write_classifier(tmp_path / "classifier")
    code = (
        "import sys\n"
        "from btseg import evaluation\n"
        f"segmentation = evaluation.load_segmentation_evaluation({str(run_dir)!r})\n"
        f"evaluation.load_classifier_evaluation({str(classifier)!r})\n"
        "segmentation.confusion_at(0.5); segmentation.per_image_at(0.5)\n"
        "evaluation.format_evaluation_report([segmentation.run_dir])\n"
        "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
