"""Test-split evaluations read back from a run's evaluation/ folder, without TensorFlow.

`btseg evaluate` (btseg.evaluate) writes the folder; the dashboard, the README table and the CLI
read it through this module, so they never load a model. Every JSON file carries
``schema_version``; a folder from another version, or one with a file missing, raises a RunError
that names the file and says to run `btseg evaluate`.

Segmentation run (models/<run>/evaluation/):
    summary.json          headline numbers at the validation threshold and, labelled optimistic,
                          at the best threshold on test; 95% intervals over surrogate patients
    sweep.csv             one row per sweep threshold: pooled pixel metrics, mean Dice over
                          tumour images, share of normal images flagged, share of tumour images found
    per_image.csv         one row per test image at the validation threshold
    per_image_sweep.npz   image_ids, thresholds, tp, fp, fn, tn, has_lesion: (N, T) per image and
                          sweep threshold
    pixel_histogram.npz   positives, negatives: (65536,) int64 pixel counts per float16 bit pattern
                          of the probability, over every test pixel at original resolution
    curves.npz            pixel ROC and PR curves, at most MAX_CURVE_POINTS points each
    predictions.npz       image_ids, probabilities (N, S, S) float16 at model size (letterboxed)
Classifier run: summary.json, predictions.csv, roc.json, reliability.json.

Rules shared with btseg.metrics: a pixel is positive when ``probability >= threshold`` (compared
in float64); Dice and IoU are foreground-only; a tumour image is one whose true mask is not empty.
Scores are the float16 probabilities mapped back to the original pixels, so the histogram gives
the confusion matrix at any threshold exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from btseg import metrics
from btseg.errors import RunError

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
EVALUATION_FOLDER = "evaluation"

SUMMARY_FILE = "summary.json"
SWEEP_FILE = "sweep.csv"
PER_IMAGE_FILE = "per_image.csv"
PER_IMAGE_SWEEP_FILE = "per_image_sweep.npz"
HISTOGRAM_FILE = "pixel_histogram.npz"
CURVES_FILE = "curves.npz"
PREDICTIONS_NPZ_FILE = "predictions.npz"
PREDICTIONS_CSV_FILE = "predictions.csv"
ROC_FILE = "roc.json"
RELIABILITY_FILE = "reliability.json"
#: The image-level verdict of the whole pipeline, beside the classifier's evaluation (written by
#: btseg.evaluate when the attention U-Net is trained too).
VERDICT_FILE = "verdict.json"
VERDICT_CSV_FILE = "verdict_per_image.csv"

SEGMENTATION_FILES = (SUMMARY_FILE, SWEEP_FILE, PER_IMAGE_FILE, PER_IMAGE_SWEEP_FILE,
                      HISTOGRAM_FILE, CURVES_FILE, PREDICTIONS_NPZ_FILE)
CLASSIFIER_FILES = (SUMMARY_FILE, PREDICTIONS_CSV_FILE, ROC_FILE, RELIABILITY_FILE)

#: Points kept per curve in curves.npz (the AUC and AP in summary.json use every point).
MAX_CURVE_POINTS = 2000
#: Keys of the float16 histogram: every 16-bit pattern.
FLOAT16_KEYS = 1 << 16

OPTIMISTIC_NOTE = (
    "optimistic: this threshold was chosen by looking at the test answers; report the "
    "validation-threshold numbers"
)


# --------------------------------------------------------------------------------------------
# Histogram helpers (shared with btseg.evaluate)


@cache
def float16_key_values() -> np.ndarray:
    """(65536,) float64: the value of each float16 bit pattern (NaN where it is NaN)."""
    values = np.arange(FLOAT16_KEYS, dtype=np.uint32).astype(np.uint16).view(np.float16)
    values = values.astype(np.float64)
    values.setflags(write=False)
    return values


def confusion_from_histogram(positives: np.ndarray, negatives: np.ndarray,
                             threshold: float) -> metrics.ConfusionCounts:
    """Pooled pixel counts at `threshold` from a float16 score histogram, exactly.

    Args:
        positives, negatives: (65536,) int64 counts of tumour / background pixels per float16
            bit pattern of their probability.
        threshold: a pixel is predicted tumour when its probability >= threshold (float64).

    Returns:
        metrics.ConfusionCounts of Python ints.
    """
    threshold = float(threshold)
    if math.isnan(threshold):
        raise ValueError("threshold must be a number, got NaN.")
    selected = float16_key_values() >= threshold  # NaN patterns compare False
    tp = int(np.asarray(positives)[selected].sum())
    fp = int(np.asarray(negatives)[selected].sum())
    return metrics.ConfusionCounts(tp, fp, int(np.sum(positives)) - tp,
                                   int(np.sum(negatives)) - fp)


def curves_from_histogram(positives: np.ndarray, negatives: np.ndarray
                          ) -> tuple[metrics.RocCurve, metrics.PrCurve]:
    """Pixel ROC and PR curves (full resolution) from a float16 score histogram.

    The same computation as metrics.pixel_curves on float16 scores, so AUC and AP equal
    scikit-learn's on those pixels (btseg.metrics.float16_histogram, then
    roc_from_histogram and pr_from_histogram).
    """
    positives = np.asarray(positives, dtype=np.int64)
    negatives = np.asarray(negatives, dtype=np.int64)
    if positives.shape != (FLOAT16_KEYS,) or negatives.shape != (FLOAT16_KEYS,):
        raise ValueError(
            f"histograms must be ({FLOAT16_KEYS},) counts, got {positives.shape} and "
            f"{negatives.shape}."
        )
    histogram = metrics.float16_histogram(positives, negatives)
    return (metrics.roc_from_histogram(histogram, drop_intermediate=True),
            metrics.pr_from_histogram(histogram))


def downsample_curve(x: np.ndarray, y: np.ndarray, max_points: int = MAX_CURVE_POINTS
                     ) -> np.ndarray:
    """Indices of at most `max_points` curve points to draw, first and last included.

    Half are spread evenly along the curve's length in (x, y) (where it bends on screen), half
    evenly over the point index (where the thresholds are dense).
    """
    count = len(x)
    if count <= max_points:
        return np.arange(count)
    xs = np.nan_to_num(np.asarray(x, dtype=np.float64))
    ys = np.nan_to_num(np.asarray(y, dtype=np.float64))
    length = np.r_[0.0, np.cumsum(np.abs(np.diff(xs)) + np.abs(np.diff(ys)))]
    half = max_points // 2
    by_index = np.round(np.linspace(0, count - 1, half)).astype(np.int64)
    if length[-1] > 0:
        by_length = np.searchsorted(length, np.linspace(0.0, length[-1], max_points - half))
        by_length = np.clip(by_length, 0, count - 1)
    else:
        by_length = by_index
    chosen = np.unique(np.r_[0, by_index, by_length, count - 1])
    if chosen.size > max_points:  # overlap is rare; trim evenly, keeping both ends
        chosen = chosen[np.round(np.linspace(0, chosen.size - 1, max_points)).astype(np.int64)]
    return chosen


def nearest_threshold_index(thresholds: np.ndarray, threshold: float) -> int:
    """Index of the value of `thresholds` nearest `threshold` on a log scale (ties: lower)."""
    values = np.asarray(thresholds, dtype=np.float64)
    exact = np.flatnonzero(values == float(threshold))
    if exact.size:
        return int(exact[0])
    floor = 1e-12
    distance = np.abs(np.log10(np.clip(values, floor, None))
                      - math.log10(max(float(threshold), floor)))
    return int(np.argmin(distance))


# --------------------------------------------------------------------------------------------
# Reading


def evaluation_dir(run_dir: str | Path) -> Path:
    """models/<run>/evaluation."""
    return Path(run_dir) / EVALUATION_FOLDER


def _run_folder(path: str | Path) -> Path:
    """The run folder of `path`, which may be the run folder or its evaluation/ folder."""
    path = Path(path)
    if path.name == EVALUATION_FOLDER and not (path / EVALUATION_FOLDER).is_dir():
        return path.parent
    return path


def evaluate_command(run_dir: str | Path, data_dir: str | None = None) -> str:
    """The command that (re)writes a run's evaluation, e.g. `btseg evaluate --models attention`."""
    from btseg.runs import RUN_NAMES

    name = Path(run_dir).name
    key = next((key for key, run in RUN_NAMES.items() if run == name), name)
    command = f"btseg evaluate --models {key}"
    if data_dir:
        command += f" --data {data_dir}"
    return command


def _data_dir_of(run_dir: Path) -> str | None:
    """The dataset a run was trained on (config.json's data.dir), for the fix of an error."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        value = (config.get("data") or {}).get("dir")
        return str(value) if value else None
    except (OSError, ValueError, AttributeError):
        return None


def _fix(run_dir: Path) -> str:
    return f"evaluate the model on the test split: `{evaluate_command(run_dir, _data_dir_of(run_dir))}`"


def _missing(run_dir: Path, path: Path, what: str) -> RunError:
    return RunError(f"{what} is missing, so the run has no complete evaluation",
                    where=str(path), fix=_fix(run_dir))


def _unreadable(run_dir: Path, path: Path, error: Exception) -> RunError:
    detail = f"{type(error).__name__}: {str(error)[:200]}"
    return RunError(f"{path.name} cannot be read ({detail})", where=str(path), fix=_fix(run_dir))


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """evaluation/summary.json of a run, checked for its schema version.

    Raises:
        RunError: the folder or file is missing, unreadable, or from another schema version.
    """
    run_dir = _run_folder(run_dir)
    folder = evaluation_dir(run_dir)
    path = folder / SUMMARY_FILE
    if not folder.is_dir():
        raise _missing(run_dir, folder, "the evaluation folder")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _missing(run_dir, path, SUMMARY_FILE) from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise _unreadable(run_dir, path, error) from None
    if not isinstance(summary, dict):
        raise _unreadable(run_dir, path, ValueError("not a JSON object"))
    version = summary.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RunError(
            f"{SUMMARY_FILE} has schema_version {version!r}, but this btseg reads version "
            f"{SCHEMA_VERSION}",
            where=str(path),
            fix=_fix(run_dir),
        )
    return summary


def _check_task(run_dir: Path, summary: dict[str, Any], task: str) -> None:
    if summary.get("task") != task:
        raise RunError(
            f"the evaluation is of a {summary.get('task', 'unknown')} model, not a {task} model",
            where=str(evaluation_dir(run_dir) / SUMMARY_FILE),
            fix="choose the right run folder, or " + _fix(run_dir),
        )


def _load_npz(run_dir: Path, name: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
    path = evaluation_dir(run_dir) / name
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise ValueError(f"no array {', '.join(missing)}")
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise _missing(run_dir, path, name) from None
    except (OSError, ValueError, EOFError) as error:
        raise _unreadable(run_dir, path, error) from None


def _load_csv(run_dir: Path, name: str, columns: Iterable[str]) -> pd.DataFrame:
    import pandas as pd

    path = evaluation_dir(run_dir) / name
    try:
        table = pd.read_csv(path, keep_default_na=True, na_values=[""],
                            dtype={"image_id": str, "site": str, "subtype": str})
    except FileNotFoundError:
        raise _missing(run_dir, path, name) from None
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise _unreadable(run_dir, path, error) from None
    absent = [column for column in columns if column not in table.columns]
    if absent:
        raise _unreadable(run_dir, path, ValueError(f"no column {', '.join(absent)}"))
    return table


def _load_json(run_dir: Path, name: str) -> dict[str, Any]:
    path = evaluation_dir(run_dir) / name
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _missing(run_dir, path, name) from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise _unreadable(run_dir, path, error) from None
    if not isinstance(value, dict) or value.get("schema_version") != SCHEMA_VERSION:
        raise RunError(f"{name} is not a schema_version {SCHEMA_VERSION} evaluation file",
                       where=str(path), fix=_fix(run_dir))
    return value


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass
class SegmentationEvaluation:
    """A segmenter's test-split evaluation (see the module docstring for the files).

    Attributes:
        summary: summary.json.
        sweep: sweep.csv, one row per threshold ascending.
        per_image: per_image.csv, one row per test image at the validation threshold.
        curves: curves.npz arrays (roc_fpr, roc_tpr, roc_thresholds, pr_precision, pr_recall,
            pr_thresholds), downsampled for drawing.
        histogram: (positives, negatives), each (65536,) int64 pixel counts per float16 pattern.
        run_dir: the run folder.
        per_image_sweep: per_image_sweep.npz arrays: image_ids (N,), thresholds (T,), tp, fp,
            fn, tn (N, T) int64, has_lesion (N, T) bool.
    """

    summary: dict[str, Any]
    sweep: pd.DataFrame
    per_image: pd.DataFrame
    curves: dict[str, np.ndarray]
    histogram: tuple[np.ndarray, np.ndarray]
    run_dir: Path
    per_image_sweep: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return str(self.summary.get("model", self.run_dir.name))

    @property
    def validation_threshold(self) -> float:
        return float(self.summary["validation_threshold"])

    @property
    def best_threshold(self) -> float | None:
        """The best threshold on test (optimistic), or None."""
        value = (self.summary.get("best_on_test") or {}).get("threshold")
        return None if value is None else float(value)

    @property
    def thresholds(self) -> np.ndarray:
        """(T,) float64 sweep thresholds, ascending."""
        return np.asarray(self.per_image_sweep["thresholds"], dtype=np.float64)

    def confusion_at(self, threshold: float) -> metrics.ConfusionCounts:
        """Pooled pixel counts over the test split at any threshold, exactly (no model)."""
        return confusion_from_histogram(*self.histogram, threshold)

    def metrics_at(self, threshold: float) -> dict[str, float]:
        """Pooled pixel dice, iou, sensitivity, specificity, precision, f1, accuracy, exactly."""
        return {name: float(value) for name, value in
                metrics.metrics_from_counts(self.confusion_at(threshold)).items()}

    def nearest_sweep_threshold(self, threshold: float) -> float:
        """The sweep threshold nearest `threshold` on a log scale."""
        return float(self.thresholds[nearest_threshold_index(self.thresholds, threshold)])

    def per_image_at(self, threshold: float) -> pd.DataFrame:
        """Per-image results at the sweep threshold nearest `threshold` (log scale).

        Returns:
            per_image's image columns plus threshold (the sweep threshold used), tp, fp, fn, tn,
            pred_area_px, dice, iou (metrics' empty policy: NaN when truth and prediction are
            both empty) and predicted_lesion (a lesion of at least the minimum area found).
            hd95 is kept only at the validation threshold (NaN elsewhere).
        """
        index = nearest_threshold_index(self.thresholds, threshold)
        chosen = float(self.thresholds[index])
        data = self.per_image_sweep
        order = _positions(self.per_image["image_id"].astype(str).tolist(),
                           [str(value) for value in data["image_ids"]])
        counts = metrics.ConfusionCounts(*(np.asarray(data[key])[order, index]
                                           for key in ("tp", "fp", "fn", "tn")))
        table = self.per_image.copy()
        table["threshold"] = chosen
        table["tp"], table["fp"], table["fn"], table["tn"] = counts
        table["pred_area_px"] = counts.tp + counts.fp
        table["dice"] = metrics.dice_from_counts(counts)
        table["iou"] = metrics.iou_from_counts(counts)
        table["predicted_lesion"] = np.asarray(data["has_lesion"])[order, index].astype(bool)
        if chosen != self.validation_threshold and "hd95" in table.columns:
            table["hd95"] = math.nan
            if "hd95_mm" in table.columns:
                table["hd95_mm"] = math.nan
        return table

    def probabilities(self) -> tuple[list[str], np.ndarray]:
        """(image ids, (N, S, S) float16 letterboxed probabilities) from predictions.npz.

        Read on demand: the array is the largest file of the evaluation.
        """
        arrays = _load_npz(self.run_dir, PREDICTIONS_NPZ_FILE, ("image_ids", "probabilities"))
        return [str(value) for value in arrays["image_ids"]], arrays["probabilities"]


def _positions(wanted: list[str], available: list[str]) -> np.ndarray:
    where = {image_id: position for position, image_id in enumerate(available)}
    missing = [image_id for image_id in wanted if image_id not in where]
    if missing:
        raise ValueError(f"per_image_sweep.npz has no row for {', '.join(missing[:3])}")
    return np.array([where[image_id] for image_id in wanted], dtype=np.int64)


def load_segmentation_evaluation(run_dir: str | Path) -> SegmentationEvaluation:
    """Read a segmenter's evaluation/ folder (no TensorFlow, no model).

    predictions.npz is checked for presence only and read by `probabilities()` on demand.

    Raises:
        RunError: a file is missing, unreadable or from another schema version (the message
            names the file and the `btseg evaluate` command that rewrites it).
    """
    run_dir = _run_folder(run_dir)
    summary = read_summary(run_dir)
    _check_task(run_dir, summary, "segmentation")
    predictions = evaluation_dir(run_dir) / PREDICTIONS_NPZ_FILE
    if not predictions.is_file():
        raise _missing(run_dir, predictions, PREDICTIONS_NPZ_FILE)
    sweep = _load_csv(run_dir, SWEEP_FILE, ("threshold", "dice", "mean_dice", "normal_fp_rate"))
    per_image = _load_csv(run_dir, PER_IMAGE_FILE, ("image_id", "label", "dice", "group"))
    curves = _load_npz(run_dir, CURVES_FILE, ("roc_fpr", "roc_tpr", "pr_precision", "pr_recall"))
    histogram = _load_npz(run_dir, HISTOGRAM_FILE, ("positives", "negatives"))
    per_image_sweep = _load_npz(run_dir, PER_IMAGE_SWEEP_FILE,
                                ("image_ids", "thresholds", "tp", "fp", "fn", "tn", "has_lesion"))
    for name, arrays in ((CURVES_FILE, curves), (HISTOGRAM_FILE, histogram),
                         (PER_IMAGE_SWEEP_FILE, per_image_sweep)):
        version = arrays.pop("schema_version", None)
        if version is None or int(version) != SCHEMA_VERSION:
            raise RunError(f"{name} is not a schema_version {SCHEMA_VERSION} evaluation file",
                           where=str(evaluation_dir(run_dir) / name), fix=_fix(run_dir))
    positives = np.asarray(histogram["positives"], dtype=np.int64)
    negatives = np.asarray(histogram["negatives"], dtype=np.int64)
    if positives.shape != (FLOAT16_KEYS,) or negatives.shape != (FLOAT16_KEYS,):
        raise _unreadable(run_dir, evaluation_dir(run_dir) / HISTOGRAM_FILE,
                          ValueError(f"histograms are not ({FLOAT16_KEYS},)"))
    evaluation = SegmentationEvaluation(
        summary=summary, sweep=sweep, per_image=per_image, curves=curves,
        histogram=(positives, negatives), run_dir=run_dir, per_image_sweep=per_image_sweep,
    )
    try:
        _positions(per_image["image_id"].astype(str).tolist(),
                   [str(value) for value in per_image_sweep["image_ids"]])
    except ValueError as error:
        raise _unreadable(run_dir, evaluation_dir(run_dir) / PER_IMAGE_SWEEP_FILE, error) from None
    return evaluation


@dataclass
class ClassifierEvaluation:
    """The classifier's test-split evaluation.

    Attributes:
        summary: summary.json (metrics.classification_report keys, ece, ci95, by_center ...).
        predictions: predictions.csv: image_id, label, prob_<class> per class, predicted,
            correct, center, group.
        roc: roc.json: {"classes": {name: {fpr, tpr, thresholds, auc, precision, recall,
            average_precision}}, "normal_vs_tumour": {...}}.
        reliability: reliability.json: confidence, accuracy, count, edges, ece, n_bins.
        run_dir: the run folder.
        verdict: verdict.json (balanced_accuracy, recall by class, confusion, ci95, rule,
            operating_point ...) or None when it was not evaluated.
    """

    summary: dict[str, Any]
    predictions: pd.DataFrame
    roc: dict[str, Any]
    reliability: dict[str, Any]
    run_dir: Path
    verdict: dict[str, Any] | None = None

    @property
    def class_names(self) -> list[str]:
        return list(self.summary.get("class_names") or [])

    def probabilities(self) -> np.ndarray:
        """(N, C) float64 class probabilities in class_names order."""
        columns = [f"prob_{name}" for name in self.class_names]
        return self.predictions[columns].to_numpy(dtype=np.float64)

    def labels(self) -> np.ndarray:
        """(N,) int64 true class indices."""
        names = self.class_names
        return self.predictions["label"].map(names.index).to_numpy(dtype=np.int64)

    def confusion_matrix(self) -> np.ndarray:
        """(C, C) int64, rows true class, columns predicted class."""
        return np.asarray(self.summary["confusion_matrix"], dtype=np.int64)

    def class_roc_curves(self) -> dict[str, dict[str, Any]]:
        """{class: {"fpr", "tpr", "thresholds" (arrays; the first threshold is +inf), "auc"}}."""
        curves = {}
        for name, curve in (self.roc.get("classes") or {}).items():
            thresholds = np.array([math.inf if value is None else value
                                   for value in curve.get("thresholds", [])], dtype=np.float64)
            curves[name] = {
                "fpr": np.asarray(curve["fpr"], dtype=np.float64),
                "tpr": np.asarray(curve["tpr"], dtype=np.float64),
                "thresholds": thresholds,
                "auc": _float(curve.get("auc")),
            }
        return curves

    def reliability_curve(self) -> dict[str, np.ndarray]:
        """{"confidence", "accuracy" (NaN for empty bins), "count", "edges"} as arrays."""
        return {key: np.array([math.nan if value is None else value
                               for value in self.reliability[key]], dtype=np.float64)
                for key in ("confidence", "accuracy", "count", "edges")}

    def per_class_table(self) -> pd.DataFrame:
        """One row per class: class, precision, recall, f1, auc, average_precision, support."""
        import pandas as pd

        rows = []
        for name, values in (self.summary.get("per_class") or {}).items():
            rows.append({
                "class": name,
                "precision": _float(values.get("precision")),
                "recall": _float(values.get("recall")),
                "f1": _float(values.get("f1")),
                "auc": _float(values.get("roc_auc")),
                "average_precision": _float(values.get("average_precision")),
                "support": int(values.get("support") or 0),
            })
        return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "auc",
                                           "average_precision", "support"])


def load_classifier_evaluation(run_dir: str | Path) -> ClassifierEvaluation:
    """Read the classifier's evaluation/ folder (no TensorFlow).

    Raises:
        RunError: a file is missing, unreadable or from another schema version.
    """
    run_dir = _run_folder(run_dir)
    summary = read_summary(run_dir)
    _check_task(run_dir, summary, "classification")
    names = list(summary.get("class_names") or [])
    predictions = _load_csv(run_dir, PREDICTIONS_CSV_FILE,
                            ["image_id", "label", "predicted", "group"]
                            + [f"prob_{name}" for name in names])
    roc = _load_json(run_dir, ROC_FILE)
    reliability = _load_json(run_dir, RELIABILITY_FILE)
    verdict = None
    if (evaluation_dir(run_dir) / VERDICT_FILE).is_file():
        verdict = _load_json(run_dir, VERDICT_FILE)
    return ClassifierEvaluation(summary=summary, predictions=predictions, roc=roc,
                                reliability=reliability, run_dir=run_dir, verdict=verdict)


def load_evaluation(run_dir: str | Path) -> SegmentationEvaluation | ClassifierEvaluation:
    """The evaluation of any run, by the task its summary.json names."""
    summary = read_summary(run_dir)
    if summary.get("task") == "classification":
        return load_classifier_evaluation(run_dir)
    return load_segmentation_evaluation(run_dir)


def is_evaluated(run_dir: str | Path) -> bool:
    """True when the run has a readable summary.json of the current schema (cheap check)."""
    try:
        read_summary(run_dir)
    except RunError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Tables and text for the README, the CLI and the Compare page

METRIC_TABLE_COLUMNS = (
    "model", "operating_point", "threshold", "n_tumour_images", "n_normal_images",
    "mean_dice_tumour", "mean_dice_ci_low", "mean_dice_ci_high", "pooled_dice",
    "mean_iou_tumour", "sensitivity", "specificity", "normal_fp_rate", "pixel_auc",
    "average_precision",
)


def _interval(block: Mapping[str, Any], key: str) -> tuple[float, float]:
    interval = (block.get("ci95") or {}).get(key)
    if not interval:
        return math.nan, math.nan
    return _float(interval[0]), _float(interval[1])


def metric_table(evaluations: Mapping[str, SegmentationEvaluation],
                 include_best: bool = True) -> pd.DataFrame:
    """The segmenters' test metrics, one row per model and operating point.

    Args:
        evaluations: model name (run name) -> SegmentationEvaluation.
        include_best: add a row per model at the best threshold on test, labelled
            "best on test (optimistic)".

    Returns:
        DataFrame with METRIC_TABLE_COLUMNS: operating_point is "validation" or "best on test
        (optimistic)"; mean_dice_ci_low/high is the 95% interval (bootstrap over surrogate
        patients); sensitivity, specificity, pooled Dice and IoU are pooled over every test pixel
        at the original resolution; normal_fp_rate is the share of normal images with a predicted
        lesion; pixel_auc and average_precision do not depend on the threshold.
    """
    import pandas as pd

    rows = []
    for name, evaluation in evaluations.items():
        summary = evaluation.summary
        blocks = [("validation", summary.get("at_validation_threshold") or {})]
        if include_best and summary.get("best_on_test"):
            blocks.append(("best on test (optimistic)", summary["best_on_test"]))
        for label, block in blocks:
            low, high = _interval(block, "mean_dice_tumour")
            rows.append({
                "model": name,
                "operating_point": label,
                "threshold": _float(block.get("threshold")),
                "n_tumour_images": summary.get("n_tumour_images"),
                "n_normal_images": summary.get("n_normal_images"),
                "mean_dice_tumour": _float(block.get("mean_dice_tumour")),
                "mean_dice_ci_low": low,
                "mean_dice_ci_high": high,
                "pooled_dice": _float(block.get("pooled_dice")),
                "mean_iou_tumour": _float(block.get("mean_iou_tumour")),
                "sensitivity": _float(block.get("sensitivity")),
                "specificity": _float(block.get("specificity")),
                "normal_fp_rate": _float(block.get("normal_fp_rate")),
                "pixel_auc": _float(summary.get("pixel_auc")),
                "average_precision": _float(summary.get("average_precision")),
            })
    return pd.DataFrame(rows, columns=list(METRIC_TABLE_COLUMNS))


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def _threshold_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.4g}"


def _label(name: str) -> str:
    from btseg.registry import title_of

    return title_of(name)


def format_metric_table(table: pd.DataFrame) -> str:
    """metric_table's rows as a Markdown table (3 decimals; the 95% CI in brackets)."""
    lines = [
        "| Model | Operating point | Threshold | Mean Dice, tumour images [95% CI] | Pooled Dice "
        "| Mean IoU | Sensitivity | Specificity | Normal images flagged | Pixel AUC | AP |",
        "|" + "---|" * 11,
    ]
    for row in table.to_dict("records"):
        interval = ""
        if not math.isnan(row["mean_dice_ci_low"]):
            interval = (f" [{_number(row['mean_dice_ci_low'])}, "
                        f"{_number(row['mean_dice_ci_high'])}]")
        flagged = row["normal_fp_rate"]
        flagged_text = "–" if math.isnan(flagged) else f"{100 * flagged:.1f}%"
        lines.append(
            f"| {_label(str(row['model']))} | {row['operating_point']} | "
            f"{_threshold_text(row['threshold'])} | "
            f"{_number(row['mean_dice_tumour'])}{interval} | {_number(row['pooled_dice'])} | "
            f"{_number(row['mean_iou_tumour'])} | {_number(row['sensitivity'])} | "
            f"{_number(row['specificity'])} | {flagged_text} | {_number(row['pixel_auc'])} | "
            f"{_number(row['average_precision'])} |"
        )
    return "\n".join(lines)


def format_classifier_summary(evaluation: ClassifierEvaluation) -> str:
    """A few lines on the classifier's test results (accuracy, balanced accuracy, macro AUC
    with its 95% interval, per-class recall, calibration)."""
    summary = evaluation.summary
    ci = summary.get("ci95") or {}

    def with_ci(key: str) -> str:
        interval = ci.get(key)
        text = _number(summary.get(key))
        if interval and interval[0] is not None:
            text += f" [{_number(interval[0])}, {_number(interval[1])}]"
        return text

    recalls = ", ".join(
        f"{name} {_number((values or {}).get('recall'))}"
        for name, values in (summary.get("per_class") or {}).items()
    )
    binary = summary.get("normal_vs_tumour") or {}
    return "\n".join([
        f"Classifier on {summary.get('n_test_images')} test images: accuracy "
        f"{_number(summary.get('accuracy'))}, balanced accuracy {with_ci('balanced_accuracy')}, "
        f"macro AUC {with_ci('macro_auc')} (95% CI over surrogate patients).",
        f"Recall per class: {recalls}. Normal vs tumour AUC {_number(binary.get('auc'))}; "
        f"calibration error (ECE) {_number(summary.get('ece'))}.",
    ])


def format_verdict_summary(verdict: Mapping[str, Any]) -> str:
    """Two lines on the image-level verdict (balanced accuracy with its interval, recall by
    class)."""
    interval = (verdict.get("ci95") or {}).get("balanced_accuracy")
    text = _number(verdict.get("balanced_accuracy"))
    if interval and interval[0] is not None:
        text += f" [{_number(interval[0])}, {_number(interval[1])}]"
    recalls = ", ".join(f"{name} {_number(value)}"
                        for name, value in (verdict.get("recall") or {}).items())
    return (
        f"Verdict on {verdict.get('n_images')} whole test images ({_label(verdict.get('segmentation_run', '?'))} "
        f"+ classifier, as served): balanced accuracy {text} (chance "
        f"{_number(verdict.get('chance_balanced_accuracy'))}); recall {recalls}."
    )


def format_evaluation_report(run_dirs: Mapping[str, str | Path] | Iterable[str | Path]) -> str:
    """What `btseg evaluate` prints: the segmenters' metric table, the classifier's summary,
    how to read them, and any warning recorded during evaluation.

    Args:
        run_dirs: evaluated run folders or their evaluation/ folders (evaluate_all's result,
            or a list).

    Raises:
        RunError: an evaluation cannot be read.
    """
    folders = list(run_dirs.values()) if isinstance(run_dirs, Mapping) else list(run_dirs)
    segmenters: dict[str, SegmentationEvaluation] = {}
    classifiers: list[ClassifierEvaluation] = []
    for folder in folders:
        loaded = load_evaluation(folder)
        if isinstance(loaded, ClassifierEvaluation):
            classifiers.append(loaded)
        else:
            segmenters[loaded.model] = loaded
    parts = []
    if segmenters:
        first = next(iter(segmenters.values())).summary
        parts.append(
            f"Segmentation on the test split ({first.get('n_test_images')} images: "
            f"{first.get('n_tumour_images')} with a tumour, {first.get('n_normal_images')} "
            "normal), at the original resolution:"
        )
        parts.append(format_metric_table(metric_table(segmenters)))
        parts.append(
            "Read it so: the validation threshold is each model's operating point, chosen "
            "without the test images; the 'best on test' row is optimistic. Mean Dice averages "
            "the test images with a tumour; normal images count only in 'normal images "
            "flagged' (any predicted lesion). Pooled metrics sum every pixel, so large lesions "
            "dominate them."
        )
    for classifier in classifiers:
        parts.append(format_classifier_summary(classifier))
        if classifier.verdict is not None:
            parts.append(format_verdict_summary(classifier.verdict))
    for evaluation in [*segmenters.values(), *classifiers]:
        for warning in evaluation.summary.get("warnings") or []:
            parts.append(f"Warning ({_label(evaluation.summary.get('model', '?'))}): {warning}")
    if not parts:
        return "No evaluation to report."
    return "\n\n".join(parts)
