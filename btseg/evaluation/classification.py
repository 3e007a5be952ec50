"""The classifier on the test split: the writer (classifies every test image as it is served and
writes predictions.csv, roc.json, reliability.json) beside their reader, ClassifierEvaluation.

Reading needs no TensorFlow; the writer imports it (through btseg.infer) only when it runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from btseg import metrics
from btseg.calibration import CALIBRATION_FILE
from btseg.config import CLASS_NAMES
from btseg.errors import RunError
from btseg.evaluation import files
from btseg.evaluation.files import (
    PREDICTIONS_CSV_FILE,
    RELIABILITY_FILE,
    ROC_FILE,
    Progress,
    as_float,
    check_task,
    load_csv,
    load_json,
    read_summary,
    run_folder,
)
from btseg.evaluation.verdict import read_verdict
from btseg.runs import MODEL_FILE, atomic_write_csv, atomic_write_json, train_command

if TYPE_CHECKING:
    import pandas as pd

    from btseg.evaluation.runner import TestData

# --------------------------------------------------------------------------------------------
# Writing: scoring the classifier


def _classification_statistic(key: str, n_classes: int) -> Callable[[np.ndarray], float]:
    def statistic(rows: np.ndarray) -> float:
        report = metrics.classification_report(
            rows[:, 0].astype(np.int64), rows[:, 1:], CLASS_NAMES[:n_classes]
        )
        value = report[key]
        return math.nan if value is None else float(value)

    return statistic


def _classifier_probabilities(
    classifier: Any, data: TestData, progress: Progress | None
) -> np.ndarray:
    """(N, n_classes) float64: the classifier on each test image as it is served, from the
    original file: the whole image, or (region mode) the crop `Classifier.predict` makes of the
    largest annotated lesion's box (a region sampled on the bone of a normal image, seeded by
    the run's region seed and the image id)."""
    from btseg.data.regions import image_rng, lesion_boxes, region_of

    stage = f"{classifier.name}: classifying"
    count = len(data.image_ids)
    probabilities = np.zeros((count, len(classifier.class_names)), dtype=np.float64)
    for index, image_id in enumerate(data.image_ids):
        decoded, truth = data.image(index)
        box = None
        if data.region is not None:
            rng = image_rng(int(data.region["seed"]), image_id)
            sides = tuple(data.region["side_range"])
            box = region_of(decoded.pixels, lesion_boxes(truth), sides, rng, jitter=False)
        predicted = classifier.predict(decoded, box=box, calibrated=False)
        probabilities[index] = [predicted[name] for name in classifier.class_names]
        if progress is not None:
            progress(stage, index + 1, count)
    return probabilities


def evaluate_classifier(
    run: Any, data: TestData, out: Path, n_resamples: int, progress: Progress | None
) -> dict[str, Any]:
    from btseg.infer import Classifier

    classifier = Classifier(run)
    probabilities = files.check_probabilities(
        _classifier_probabilities(classifier, data, progress), run
    )
    names = list(CLASS_NAMES)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(names):
        raise RunError(
            f"the classifier outputs shape {probabilities.shape[1:]}, not {len(names)} class "
            "probabilities",
            where=str(run.path / MODEL_FILE),
            fix=f"train the classifier again: {train_command('classifier')}",
        )
    labels = data.labels
    report = metrics.classification_report(labels, probabilities, names)
    predicted = probabilities.argmax(axis=1)
    rows = []
    for index, image_id in enumerate(data.image_ids):
        row = data.rows.loc[image_id]
        entry = {"image_id": image_id, "label": names[labels[index]]}
        entry.update(
            {f"prob_{name}": float(probabilities[index, k]) for k, name in enumerate(names)}
        )
        entry.update(
            {
                "predicted": names[predicted[index]],
                "correct": bool(predicted[index] == labels[index]),
                "center": int(row["center"]) if files.text(row.get("center")) else "",
                "subtype": files.text(row.get("subtype")),
                "group": int(data.groups[index]),
            }
        )
        rows.append(entry)
    atomic_write_csv(out / files.PREDICTIONS_CSV_FILE, rows, list(rows[0]))

    stacked = np.column_stack([labels.astype(np.float64), probabilities])
    ci95 = {
        key: files.bootstrap_interval(
            stacked, data.groups, n_resamples, _classification_statistic(key, len(names))
        )
        for key in ("macro_auc", "balanced_accuracy", "accuracy")
    }
    centers = np.array([str(row["center"]) for row in rows], dtype=object)
    by_center = {}
    for center in sorted(set(centers), key=lambda value: (len(value), value)):
        members = centers == center
        part = metrics.classification_report(labels[members], probabilities[members], names)
        by_center[center] = {
            key: part[key] for key in ("n_samples", "accuracy", "balanced_accuracy", "macro_auc")
        }

    roc_classes = {}
    for k, name in enumerate(names):
        roc = metrics.roc_curve_points(labels == k, probabilities[:, k])
        pr = metrics.pr_curve_points(labels == k, probabilities[:, k])
        roc_classes[name] = {
            "fpr": roc.fpr,
            "tpr": roc.tpr,
            "thresholds": roc.thresholds,
            "auc": roc.auc,
            "precision": pr.precision,
            "recall": pr.recall,
            "pr_thresholds": pr.thresholds,
            "average_precision": pr.average_precision,
            "support": int((labels == k).sum()),
        }
    tumour = labels != names.index("normal")
    tumour_score = 1.0 - probabilities[:, names.index("normal")]
    binary = metrics.roc_curve_points(tumour, tumour_score)
    atomic_write_json(
        out / files.ROC_FILE,
        files.plain(
            {
                "schema_version": files.SCHEMA_VERSION,
                "classes": roc_classes,
                "normal_vs_tumour": {
                    "fpr": binary.fpr,
                    "tpr": binary.tpr,
                    "thresholds": binary.thresholds,
                    "auc": binary.auc,
                    "score": "1 - prob_normal",
                },
                "note": "one-vs-rest curves; a threshold of null stands for +infinity",
            }
        ),
    )
    curve = metrics.reliability_curve(labels, probabilities)
    ece = metrics.expected_calibration_error(labels, probabilities)
    atomic_write_json(
        out / files.RELIABILITY_FILE,
        files.plain(
            {
                "schema_version": files.SCHEMA_VERSION,
                "confidence": curve.confidence,
                "accuracy": curve.accuracy,
                "count": curve.count,
                "edges": curve.edges,
                "ece": ece,
                "n_bins": len(curve.count),
                "note": "top-class probability in equal-width bins (edges[k], edges[k+1]]",
            }
        ),
    )
    calibration = _calibrate(classifier, data, labels, probabilities, out, progress)
    summary = dict(report)
    summary.update(
        {
            "ece": ece,
            "ci95": ci95,
            "by_center": by_center,
            "input_size": run.input_size,
            "calibration": calibration,
        }
    )
    return summary


def _calibrate(
    classifier: Any,
    data: TestData,
    labels: np.ndarray,
    probabilities: np.ndarray,
    out: Path,
    progress: Progress | None,
) -> dict[str, Any] | None:
    """Fit a temperature on the validation images (served as the test ones), score it on test,
    and write calibration.json (the temperature Classifier.predict then applies) with the
    reliability curve after scaling. None when the split has no validation image."""
    from btseg.calibration import (
        CALIBRATION_FILE,
        apply_temperature,
        fit_temperature,
        negative_log_likelihood,
    )

    validation = data.for_part("val")
    if not validation.image_ids:
        return None
    held = _classifier_probabilities(classifier, validation, progress)
    temperature = fit_temperature(held, validation.labels)
    scaled = apply_temperature(probabilities, temperature)
    curve = metrics.reliability_curve(labels, scaled)
    payload = {
        "schema_version": files.SCHEMA_VERSION,
        "method": "temperature scaling of the log-probabilities (Guo et al. 2017), fitted on "
        "the validation images by negative log-likelihood",
        "temperature": temperature,
        "validation_images": len(validation.image_ids),
        "validation_nll_before": negative_log_likelihood(held, validation.labels),
        "validation_nll_after": negative_log_likelihood(
            apply_temperature(held, temperature), validation.labels
        ),
        "test_ece_before": metrics.expected_calibration_error(labels, probabilities),
        "test_ece_after": metrics.expected_calibration_error(labels, scaled),
        "test_nll_before": negative_log_likelihood(probabilities, labels),
        "test_nll_after": negative_log_likelihood(scaled, labels),
        "reliability_after": {
            "confidence": curve.confidence,
            "accuracy": curve.accuracy,
            "count": curve.count,
            "edges": curve.edges,
        },
    }
    atomic_write_json(out / CALIBRATION_FILE, files.plain(payload))
    return {key: value for key, value in payload.items() if key != "reliability_after"}


# --------------------------------------------------------------------------------------------
# Reading


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
    calibration: dict[str, Any] | None = None  # calibration.json: temperature, ECE before/after

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
                "auc": as_float(curve.get("auc")),
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

        # column -> key of the summary's per-class block
        scores = {"precision": "precision", "recall": "recall", "f1": "f1", "auc": "roc_auc",
                  "average_precision": "average_precision"}
        rows = [
            {"class": name, **{column: as_float(values.get(key)) for column, key in scores.items()},
             "support": int(values.get("support") or 0)}
            for name, values in (self.summary.get("per_class") or {}).items()
        ]
        return pd.DataFrame(rows, columns=["class", *scores, "support"])


def load_classifier_evaluation(run_dir: str | Path) -> ClassifierEvaluation:
    """Read the classifier's evaluation/ folder (no TensorFlow).

    Raises:
        RunError: a file is missing, unreadable or from another schema version.
    """
    run_dir = run_folder(run_dir)
    summary = read_summary(run_dir)
    check_task(run_dir, summary, "classification")
    names = list(summary.get("class_names") or [])
    predictions = load_csv(run_dir, PREDICTIONS_CSV_FILE,
                            ["image_id", "label", "predicted", "group"]
                            + [f"prob_{name}" for name in names])
    roc = load_json(run_dir, ROC_FILE)
    reliability = load_json(run_dir, RELIABILITY_FILE)
    verdict = read_verdict(run_dir)
    calibration = None
    if (files.evaluation_dir(run_dir) / CALIBRATION_FILE).is_file():
        calibration = load_json(run_dir, CALIBRATION_FILE)
    return ClassifierEvaluation(summary=summary, predictions=predictions, roc=roc,
                                reliability=reliability, run_dir=run_dir, verdict=verdict,
                                calibration=calibration)


