"""The image-level verdict (normal / benign / malignant) of the whole pipeline as it is served:
the writer (the attention U-Net and the classifier through btseg.predict.Predictor on whole test
images; verdict.json and verdict_per_image.csv beside the classifier's evaluation) and its reader.

Reading needs no TensorFlow; the writer imports it (through btseg.infer) only when it runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from btseg import decisions
from btseg.config import CLASS_NAMES
from btseg.evaluation import files
from btseg.evaluation.files import (
    VERDICT_CSV_FILE,
    VERDICT_FILE,
    Progress,
    evaluation_dir,
    load_json,
    model_fingerprint,
    run_folder,
)
from btseg.runs import atomic_write_csv, atomic_write_json, is_complete, run_name_for

if TYPE_CHECKING:
    from btseg.evaluation.runner import TestData

# --------------------------------------------------------------------------------------------
# Writing


def verdict_segmenter_dir(classifier_dir: Path) -> Path | None:
    """The attention U-Net run beside the classifier, when it is complete."""
    folder = classifier_dir.parent / run_name_for("attention")
    return folder if is_complete(folder) else None


#: Verdict columns of the confusion matrix: the classes, then the images the input gate refused.
VERDICT_COLUMNS = (*decisions.VERDICT_CLASSES, "inconclusive")


def verdict_scores(rows: np.ndarray) -> dict[str, Any]:
    """rows (N, 2) int: truth (a VERDICT_CLASSES index), verdict (a VERDICT_COLUMNS index) ->
    balanced accuracy, recall by class, confusion (rows truth, columns verdict; an inconclusive
    verdict is never correct)."""
    names = decisions.VERDICT_CLASSES
    confusion = np.zeros((len(names), len(VERDICT_COLUMNS)), dtype=np.int64)
    np.add.at(confusion, (rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)), 1)
    support = confusion.sum(axis=1)
    recall = {
        name: (float(confusion[k, k] / support[k]) if support[k] else None)
        for k, name in enumerate(names)
    }
    present = [value for value in recall.values() if value is not None]
    return {
        "balanced_accuracy": float(np.mean(present)) if present else math.nan,
        "accuracy": float(np.trace(confusion) / max(1, confusion.sum())),
        "recall": recall,
        "confusion": confusion.tolist(),
        "confusion_columns": list(VERDICT_COLUMNS),
        "inconclusive": int(confusion[:, -1].sum()),
        "support": {name: int(support[k]) for k, name in enumerate(names)},
    }


def evaluate_verdict(
    segmenter_dir: Path,
    classifier_run: Any,
    data: TestData,
    out: Path,
    n_resamples: int,
    progress: Progress | None,
    temperature: float | None = None,
) -> dict[str, Any]:
    """Score the verdict of the whole pipeline (btseg.predict.Predictor with the attention U-Net
    and this classifier) on the whole test images; write verdict.json and its per-image CSV."""
    from btseg.gate import load_appearance_gate
    from btseg.infer import Classifier, Segmenter
    from btseg.predict import Predictor
    from btseg.runs import load_run

    segmenter_run = load_run(segmenter_dir)
    # As served: with the input gate's appearance check when it is fitted beside the runs.
    appearance = load_appearance_gate(segmenter_dir.parent)
    classifier = Classifier(classifier_run)
    classifier.temperature = temperature  # the one this evaluation just fitted (or none)
    predictor = Predictor(Segmenter(segmenter_run), classifier, appearance=appearance)
    names = list(decisions.VERDICT_CLASSES)
    stage = "verdict: segmenting and classifying whole test images"
    rows = []
    predicted = np.zeros(len(data.image_ids), dtype=np.int64)
    for index, image_id in enumerate(data.image_ids):
        decoded, _ = data.image(index)
        prediction = predictor.predict(decoded)
        verdict = prediction.verdict
        predicted[index] = VERDICT_COLUMNS.index(verdict.label)
        rows.append(
            {
                "image_id": image_id,
                "label": names[data.labels[index]],
                "verdict": verdict.label,
                "correct": verdict.label == names[data.labels[index]],
                "lesions": len(prediction.lesions),
                "classified_lesion": verdict.lesion_index or "",
                **{
                    f"prob_{name}": verdict.probabilities.get(name, "")
                    for name in CLASS_NAMES
                },
                "reason": verdict.reason,
                "group": int(data.groups[index]),
            }
        )
        if progress is not None:
            progress(stage, index + 1, len(data.image_ids))
    atomic_write_csv(out / VERDICT_CSV_FILE, rows, list(rows[0]))
    pairs = np.column_stack([data.labels, predicted])
    scores = verdict_scores(pairs)

    def statistic(key: str, name: str | None = None) -> Callable[[np.ndarray], float]:
        def compute(sample: np.ndarray) -> float:
            value = verdict_scores(sample.astype(np.int64))[key]
            value = value if name is None else value[name]
            return math.nan if value is None else float(value)

        return compute

    ci95: dict[str, Any] = {
        "balanced_accuracy": files.bootstrap_interval(
            pairs.astype(np.float64), data.groups, n_resamples, statistic("balanced_accuracy")
        )
    }
    for k, name in enumerate(names):
        members = data.labels == k
        ci95[f"recall_{name}"] = files.bootstrap_interval(
            (predicted[members] == k).astype(np.float64), data.groups[members], n_resamples
        )
    payload = {
        "schema_version": files.SCHEMA_VERSION,
        "rule": (
            "btseg.decisions.verdict_for: no lesion at the segmenter's operating point -> "
            "normal; otherwise the classifier's most probable class for the most probable "
            "lesion (region classifier) or the whole image (image classifier)"
        ),
        "segmentation_run": segmenter_run.name,
        "input_gate": "with the appearance check" if appearance else "modality, size, content",
        "segmentation_model_fingerprint": model_fingerprint(segmenter_dir),
        "operating_point": predictor.operating_point.to_json(),
        "classifier_run": classifier_run.name,
        "classes": names,
        "n_images": len(data.image_ids),
        **scores,
        "ci95": ci95,
        "chance_balanced_accuracy": 1.0 / len(names),
    }
    atomic_write_json(out / VERDICT_FILE, files.plain(payload))
    return {key: payload[key] for key in ("balanced_accuracy", "recall", "confusion", "ci95")}


# --------------------------------------------------------------------------------------------
# Reading


def read_verdict(run_dir: str | Path) -> dict[str, Any] | None:
    """verdict.json of a classifier run (balanced_accuracy, recall by class, confusion, ci95,
    rule, operating_point ...), or None when the verdict was not evaluated.

    Raises:
        RunError: the file is unreadable or from another schema version.
    """
    run_dir = run_folder(run_dir)
    if not (evaluation_dir(run_dir) / VERDICT_FILE).is_file():
        return None
    return load_json(run_dir, VERDICT_FILE)
