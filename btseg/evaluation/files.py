"""The evaluation folder: its file names, schema version, and the low-level reading and writing
shared by the artifacts' writers and readers (no TensorFlow).

`btseg evaluate` (btseg.evaluation.runner) writes models/<run>/evaluation/; the dashboard, the
README table and the CLI read it back through btseg.evaluation, so they never load a model.
Every JSON file carries ``schema_version``; a folder from another version, or one with a file
missing, raises a RunError that names the file and says to run `btseg evaluate`.

Segmentation run (models/<run>/evaluation/, btseg.evaluation.segmentation):
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
Classifier run (btseg.evaluation.classification): summary.json, predictions.csv, roc.json,
reliability.json; and, when the attention U-Net is trained too, the image-level verdict of the
whole pipeline (btseg.evaluation.verdict): verdict.json, verdict_per_image.csv.

Rules shared with btseg.metrics: a pixel is positive when ``probability >= threshold`` (compared
in float64); Dice and IoU are foreground-only; a tumour image is one whose true mask is not empty.
Scores are the float16 probabilities mapped back to the original pixels, so the histogram gives
the confusion matrix at any threshold exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from btseg import metrics
from btseg.errors import RunError
from btseg.runs import MODEL_FILE, THRESHOLD_FILE, train_command

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
#: btseg.evaluation.verdict when the attention U-Net is trained too).
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


#: Bootstrap resamples of the 95% intervals (whole surrogate patients are resampled).
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0

#: progress(stage, done, total) and log(message) callbacks of the writers.
Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Folders, commands and errors


def evaluation_dir(run_dir: str | Path) -> Path:
    """models/<run>/evaluation."""
    return Path(run_dir) / EVALUATION_FOLDER


def run_folder(path: str | Path) -> Path:
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


def evaluate_fix(run_dir: Path) -> str:
    return f"evaluate the model on the test split: `{evaluate_command(run_dir, _data_dir_of(run_dir))}`"


def missing_error(run_dir: Path, path: Path, what: str) -> RunError:
    return RunError(f"{what} is missing, so the run has no complete evaluation",
                    where=str(path), fix=evaluate_fix(run_dir))


def unreadable_error(run_dir: Path, path: Path, error: Exception) -> RunError:
    detail = f"{type(error).__name__}: {str(error)[:200]}"
    return RunError(f"{path.name} cannot be read ({detail})", where=str(path), fix=evaluate_fix(run_dir))


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """evaluation/summary.json of a run, checked for its schema version.

    Raises:
        RunError: the folder or file is missing, unreadable, or from another schema version.
    """
    run_dir = run_folder(run_dir)
    folder = evaluation_dir(run_dir)
    path = folder / SUMMARY_FILE
    if not folder.is_dir():
        raise missing_error(run_dir, folder, "the evaluation folder")
    summary = _json_object(run_dir, SUMMARY_FILE)
    if not isinstance(summary, dict):
        raise unreadable_error(run_dir, path, ValueError("not a JSON object"))
    version = summary.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RunError(
            f"{SUMMARY_FILE} has schema_version {version!r}, but this btseg reads version "
            f"{SCHEMA_VERSION}",
            where=str(path),
            fix=evaluate_fix(run_dir),
        )
    return summary


def check_task(run_dir: Path, summary: dict[str, Any], task: str) -> None:
    if summary.get("task") != task:
        raise RunError(
            f"the evaluation is of a {summary.get('task', 'unknown')} model, not a {task} model",
            where=str(evaluation_dir(run_dir) / SUMMARY_FILE),
            fix="choose the right run folder, or " + evaluate_fix(run_dir),
        )


# --------------------------------------------------------------------------------------------
# Reading


def load_npz(run_dir: Path, name: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
    path = evaluation_dir(run_dir) / name
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise ValueError(f"no array {', '.join(missing)}")
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise missing_error(run_dir, path, name) from None
    except (OSError, ValueError, EOFError) as error:
        raise unreadable_error(run_dir, path, error) from None


def load_csv(run_dir: Path, name: str, columns: Iterable[str]) -> pd.DataFrame:
    import pandas as pd

    path = evaluation_dir(run_dir) / name
    try:
        table = pd.read_csv(path, keep_default_na=True, na_values=[""],
                            dtype={"image_id": str, "site": str, "subtype": str})
    except FileNotFoundError:
        raise missing_error(run_dir, path, name) from None
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise unreadable_error(run_dir, path, error) from None
    absent = [column for column in columns if column not in table.columns]
    if absent:
        raise unreadable_error(run_dir, path, ValueError(f"no column {', '.join(absent)}"))
    return table


def _json_object(run_dir: Path, name: str) -> Any:
    """The parsed JSON of evaluation/<name>; RunError when it is missing or unreadable."""
    path = evaluation_dir(run_dir) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise missing_error(run_dir, path, name) from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise unreadable_error(run_dir, path, error) from None


def load_json(run_dir: Path, name: str) -> dict[str, Any]:
    path = evaluation_dir(run_dir) / name
    value = _json_object(run_dir, name)
    if not isinstance(value, dict) or value.get("schema_version") != SCHEMA_VERSION:
        raise RunError(f"{name} is not a schema_version {SCHEMA_VERSION} evaluation file",
                       where=str(path), fix=evaluate_fix(run_dir))
    return value


def as_float(value: Any) -> float:
    return math.nan if value is None else float(value)



def is_evaluated(run_dir: str | Path) -> bool:
    """True when the run has a readable summary.json of the current schema (cheap check)."""
    try:
        read_summary(run_dir)
    except RunError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Writing


def model_fingerprint(run_dir: str | Path) -> str:
    """16 hex digits of SHA-256 over model.keras and threshold.json (when present)."""
    digest = hashlib.sha256()
    for name in (MODEL_FILE, THRESHOLD_FILE):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        digest.update(name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def check_probabilities(values: np.ndarray, run: Any) -> np.ndarray:
    if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
        raise RunError(
            "the model outputs values that are not probabilities (NaN, infinite or outside "
            "[0, 1]) on the test images",
            where=str(run.path / MODEL_FILE),
            fix=f"train the model again: {train_command(run.name)}",
        )
    return values


def text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def bootstrap_interval(
    values: np.ndarray,
    groups: np.ndarray,
    n_resamples: int,
    statistic: Callable[[np.ndarray], float] | None = None,
) -> list[float] | None:
    """[low, high] of the 95% bootstrap interval over groups; None without data."""
    if len(values) == 0:
        return None
    interval = metrics.bootstrap_ci(
        values, groups, statistic=statistic, n_resamples=n_resamples, seed=BOOTSTRAP_SEED
    )
    return [interval.low, interval.high]


def mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else math.nan


def median(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


def plain(value: Any) -> Any:
    """NumPy arrays and scalars inside dicts and lists -> lists and Python numbers (for JSON)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value

