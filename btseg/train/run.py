"""Run folders: train a model into models_dir/<run>/ (model.keras, config.json, history.csv,
split.json, and threshold.json for the segmenters), train all three, and the console lines that
sum them up.

    train_model("attention", data_dir, models_dir, profile="demo") -> models_dir/attention_unet
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from btseg import registry
from btseg.config import CLASS_NAMES
from btseg.formatting import format_number
from btseg.runs import (
    CONFIG_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    SPLIT_FILE,
    THRESHOLD_FILE,
    atomic_write_json,
    remove_dead_temporaries,
    swap_folder_into_place,
)
from btseg.train.data import prepare_data
from btseg.train.fit import device, fit_phases, plan_for
from btseg.train.recipes import MODELS, TrainConfig, make_config, model_key
from btseg.train.validation import (
    classification_validation,
    json_ready,
    segmentation_validation,
)


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import btseg

    return {
        "btseg": btseg.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _history_rows(path: Path) -> list[dict[str, Any]]:
    import csv

    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _best_epoch(rows: list[dict[str, Any]], monitor: str, mode: str) -> int | None:
    values = []
    for row in rows:
        try:
            values.append(float(row.get(monitor, "nan")))
        except ValueError:
            values.append(float("nan"))
    array = np.array(values, dtype=float)
    if array.size == 0 or np.all(np.isnan(array)):
        return None
    index = np.nanargmin(array) if mode == "min" else np.nanargmax(array)
    return int(rows[index].get("epoch", index)) + 1


def train_model(
    name: str,
    data_dir: str | Path,
    models_dir: str | Path,
    profile: str = "demo",
    overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] = print,
    *,
    cache_dir: str | Path | None = None,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Train one model and write its run folder; returns models_dir/<run name>.

    Args:
        name: "basic", "attention" or "classifier" (or the run names basic_unet, attention_unet).
        data_dir: a BTXRD-layout folder (real or synthetic).
        models_dir: parent of the run folders.
        profile: "demo", "full" or "tiny" (see PROFILES).
        overrides: TrainConfig fields to change, e.g. {"epochs": 5, "input_size": 160}.
        progress: receives one line per step and epoch.
        cache_dir: cache of splits and arrays; default btseg.config.cache_dir().
        callbacks: extra Keras callbacks.

    Raises:
        ConfigError: bad model, profile or override; DataError: unusable dataset.
    """
    config = make_config(name, profile, overrides)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(models_dir, f".tmp-{config.run_name}-*")
    temporary = models_dir / f".tmp-{config.run_name}-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    try:
        _train_into(config, data_dir, temporary, progress, cache_dir, callbacks)
        final = models_dir / config.run_name
        return swap_folder_into_place(
            temporary, final, final.with_name(f".old-{final.name}-{os.getpid()}")
        )
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def _train_into(
    config: TrainConfig, data_dir, folder: Path, progress, cache_dir, extra
) -> dict[str, Any]:
    """Train the config's model into folder: model.keras, history.csv, config.json (returned),
    split.json and, for a segmenter, threshold.json. extra: more Keras callbacks."""
    import keras

    started, cpu_started = time.monotonic(), time.process_time()
    progress(f"Training {config.run_name} ({config.profile} profile, {config.input_size} px)")
    data = prepare_data(config, data_dir, cache_dir, progress)
    keras.utils.set_random_seed(config.seed)
    previous_policy = keras.mixed_precision.global_policy().name
    hardware = device()
    try:
        progress(
            f"{config.run_name}: {data.train.size} training and {data.validation.size} validation "
            f"images on {hardware.description}"
        )
        outcome = fit_phases(config, plan_for(config, data), folder, hardware, progress, extra)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    outcome.model.save(str(folder / MODEL_FILE))

    if config.is_segmenter:
        progress(f"{config.run_name}: choosing the operating point on the validation images")
        validation, threshold_json = segmentation_validation(outcome.model, config, data)
        atomic_write_json(folder / THRESHOLD_FILE, threshold_json)
    else:
        validation = classification_validation(outcome.model, config, outcome.validation_inputs)
    rows = _history_rows(folder / HISTORY_FILE)
    labels = np.asarray(data.arrays.labels)
    masks_any = [bool(np.asarray(data.arrays.masks[p]).any()) for p in data.train]
    summary = {
        "run": config.run_name,
        "model": config.model,
        "task": "segmentation" if config.is_segmenter else "classification",
        "profile": config.profile,
        "hyperparameters": json_ready(dataclasses.asdict(config)),
        "input_size": config.input_size,
        "input_mode": config.input_mode,
        "input_shape": [None, None, 3] if config.patches else [config.input_size, config.input_size, 3],
        "working_size": config.working_size,
        "patch_size": config.patch_size,
        "inference_window": config.inference_window,
        "tta_mirror": config.tta_mirror,
        "resolution_reason": config.resolution_reason,
        "parameters": int(outcome.model.count_params()),
        "class_names": list(CLASS_NAMES),
        "data": {
            "dir": str(data.data_dir),
            "synthetic": data.synthetic,
            "fingerprint": data.arrays.fingerprint,
            "split_id": data.split_id,
            "split_fingerprint": data.split_fingerprint,
            "split_seed": config.split_seed,
            "train_images": int(data.train.size),
            "train_tumour_images": int(sum(masks_any)),
            "train_labels": {
                n: int((labels[data.train] == i).sum()) for i, n in enumerate(CLASS_NAMES)
            },
            "validation_images": int(data.validation.size),
            "skipped_images": len(getattr(data.arrays, "skipped", []) or []),
        },
        "versions": _versions(),
        "device": {
            "name": hardware.description,
            "mixed_precision": hardware.mixed_precision,
            "replicas": hardware.replicas,
        },
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(outcome.training_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        # CPU seconds of this process: on a shared machine the wall time also counts the others.
        "total_cpu_seconds": round(time.process_time() - cpu_started, 1),
        "epochs_run": outcome.epochs_run,
        "monitor": config.monitor,
        "best_epoch": _best_epoch(rows, config.monitor, config.monitor_mode),
        "best_monitor_value": outcome.best_value,
        "validation": validation,
        **outcome.extra,
    }
    atomic_write_json(folder / CONFIG_FILE, summary)
    if data.split is not None:  # the run carries its split: evaluation needs no cache
        from btseg.data.splits import save_split

        save_split(data.split, folder / SPLIT_FILE)
    progress(f"{config.run_name}: {format_validation(summary)}")
    return summary


def format_validation(config: dict[str, Any]) -> str:
    """One line of validation results from a run's config.json content."""
    validation = config.get("validation", {})
    if config.get("task") == "classification":
        return (
            f"validation balanced accuracy {_number(validation.get('balanced_accuracy'))}, "
            f"accuracy {_number(validation.get('accuracy'))} ({validation.get('images')} images)"
        )
    line = (
        f"validation mean Dice {_number(validation.get('mean_dice'))} over "
        f"{validation.get('tumour_images')} tumour images at threshold "
        f"{_number(validation.get('threshold'))}"
    )
    if "min_lesion_fraction" in validation:  # an operating point with normal images counted
        return (
            f"{line}, minimum lesion {_percent(validation.get('min_lesion_fraction'), 2)} of "
            f"the image: {_percent(validation.get('normal_flagged'))} of "
            f"{validation.get('normal_images')} normal images flagged, "
            f"{_percent(validation.get('tumour_found'))} of tumour images found"
        )
    return f"{line} (mean Dice at 0.5: {_number(validation.get('mean_dice_at_0.5'))})"


def _percent(value: Any, digits: int = 0) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{100 * value:.{digits}f}%"


def _number(value: Any) -> str:
    return format_number(value, missing="n/a")


def train_all(
    data_dir: str | Path,
    models_dir: str | Path,
    profile: str = "demo",
    overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] = print,
    *,
    models: Sequence[str] = MODELS,
    cache_dir: str | Path | None = None,
    classifier_overrides: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Train the basic U-Net, the attention U-Net and the classifier in turn; print a summary.

    Returns:
        {model: run folder}. Overrides apply to every model, classifier_overrides (such as
        input_mode) to the classifier only.
    """

    def settings(name: str) -> dict[str, Any]:
        extra = classifier_overrides if model_key(name) == "classifier" else None
        return {**(overrides or {}), **(extra or {})}

    from btseg.progress import format_seconds
    from btseg.runs import read_run_info

    for name in models:  # fail on a bad option before any training
        make_config(name, profile, settings(name))
    start = time.monotonic()
    folders = {}
    for name in models:
        folders[model_key(name)] = train_model(
            name, data_dir, models_dir, profile, settings(name), progress, cache_dir=cache_dir
        )
    progress(f"Trained {len(folders)} models in {format_seconds(time.monotonic() - start)}:")
    for key, folder in folders.items():
        info = read_run_info(folder)
        progress(f"  {registry.MODELS[key].run:<15} {format_validation(info['config'])}")
    for line in validation_comparison(models_dir):
        progress(line)
    return folders


def validation_comparison(models_dir: str | Path) -> list[str]:
    """What the validation split says of the trained runs in models_dir, in two lines: the
    attention U-Net's mean Dice against the basic U-Net's, and the classifier's balanced accuracy
    against chance (1 / number of classes). Lines for missing runs are left out."""
    from btseg.runs import read_run_info

    def validation(run: str) -> dict[str, Any] | None:
        info = read_run_info(Path(models_dir) / run)
        return (info["config"] or {}).get("validation") if info["complete"] else None

    lines = []
    basic = validation(registry.MODELS["basic"].run)
    attention = validation(registry.MODELS["attention"].run)
    if basic is not None and attention is not None:
        ours, theirs = attention.get("mean_dice"), basic.get("mean_dice")
        difference = (
            f" ({ours - theirs:+.3f})"
            if isinstance(ours, int | float) and isinstance(theirs, int | float)
            else ""
        )
        lines.append(
            f"Validation mean Dice, attention U-Net vs basic U-Net: {_number(ours)} vs "
            f"{_number(theirs)}{difference}"
        )
    classifier = validation(registry.MODELS["classifier"].run)
    if classifier is not None:
        lines.append(
            f"Validation balanced accuracy of the classifier: "
            f"{_number(classifier.get('balanced_accuracy'))} (chance {1 / len(CLASS_NAMES):.3f})"
        )
    return lines
