"""Evaluate trained runs on the test split and write models/<run>/evaluation/ (`btseg evaluate`).

    evaluate_run("models/attention_unet", "data/synthetic")   # -> models/attention_unet/evaluation
    evaluate_all("models", "data/synthetic")                  # every complete run

The test split is the training split itself (the run's split.json, or btseg.data.splits.split_for
with the run's split_seed), and every test image is read from its file and goes through the
pipeline `btseg predict` uses. The artifacts are written by btseg.evaluation.segmentation,
.classification and .verdict into evaluation.tmp-<pid>/, renamed over evaluation/ when complete.

An evaluation is up to date when its summary.json records the inputs that decide its numbers
(EvaluationInputs: task, data fingerprint, model fingerprint, settings) and its files are all
there; out_of_date_reasons says why not, for `btseg evaluate` and for the dashboard alike.
TensorFlow is imported only when a model is loaded; an evaluation that is already up to date is
recognised without it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from btseg.config import CLASS_NAMES
from btseg.errors import BtsegError, RunError
from btseg.evaluation import files
from btseg.evaluation.classification import evaluate_classifier
from btseg.evaluation.files import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    Log,
    Progress,
    model_fingerprint,
)
from btseg.evaluation.segmentation import evaluate_segmenter
from btseg.evaluation.verdict import evaluate_verdict, verdict_segmenter_dir
from btseg.registry import RUN_ORDER, SEGMENTATION_RUNS, title_of
from btseg.runs import (
    CONFIG_FILE,
    RUN_NAMES,
    SPLIT_FILE,
    atomic_write_json,
    is_complete,
    read_run_info,
    remove_dead_temporaries,
    run_name_for,
    swap_folder_into_place,
    train_command,
)


def stage_progress(stream: TextIO | None = None) -> Progress:
    """A progress(stage, done, total) callback printing one ProgressPrinter line per stage."""
    from btseg.progress import ProgressPrinter

    printers: dict[str, ProgressPrinter] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in printers:
            printers[stage] = ProgressPrinter(stage, stream=stream or sys.stderr)
        printers[stage](done, total)

    return progress


# --------------------------------------------------------------------------------------------
# What decides the numbers, and the up-to-date check


def _settings(config: dict[str, Any], n_resamples: int) -> dict[str, Any]:
    """What besides the model and data decides the numbers; a change re-evaluates."""
    return {
        "split_seed": _split_seed(config),
        "bootstrap_resamples": int(n_resamples),
        "bootstrap_seed": BOOTSTRAP_SEED,
    }


def _split_seed(config: dict[str, Any]) -> int:
    data = config.get("data") or {}
    if isinstance(data.get("split_seed"), int):
        return int(data["split_seed"])
    hyperparameters = config.get("hyperparameters") or {}
    return int(hyperparameters.get("split_seed", 0) or 0)


def _is_segmenter(config: dict[str, Any], run_dir: Path) -> bool:
    task = config.get("task")
    if task in ("segmentation", "classification"):
        return task == "segmentation"
    return str(config.get("run", run_dir.name)) in SEGMENTATION_RUNS



@dataclass(frozen=True)
class EvaluationInputs:
    """What decides an evaluation's numbers besides the code; summary.json records it.

    Attributes:
        task: "segmentation" or "classification".
        data_fingerprint: btseg.data.cache.data_fingerprint of the dataset's usable rows (None
            when the dataset cannot be opened).
        model_fingerprint: model_fingerprint of the run folder.
        settings: split_seed, bootstrap_resamples, bootstrap_seed and, for the classifier,
            verdict_segmenter_fingerprint (the attention U-Net its verdict uses, or None).
    """

    task: str
    data_fingerprint: str | None
    model_fingerprint: str
    settings: dict[str, Any]


def evaluation_inputs(
    run_dir: str | Path,
    config: dict[str, Any],
    data_fingerprint: str | None,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    fingerprint: Callable[[Path], str] = model_fingerprint,
) -> EvaluationInputs:
    """The inputs an evaluation of `run_dir` (its config.json as `config`) on the data with
    `data_fingerprint` would record. `fingerprint` computes a run folder's model fingerprint
    (a cached model_fingerprint in the dashboard)."""
    run_dir = Path(run_dir)
    segmenter = _is_segmenter(config, run_dir)
    settings = _settings(config, n_resamples)
    if not segmenter:  # the verdict also depends on the attention U-Net beside the classifier
        verdict_segmenter = verdict_segmenter_dir(run_dir)
        settings["verdict_segmenter_fingerprint"] = (
            None if verdict_segmenter is None else fingerprint(verdict_segmenter)
        )
        settings["input_gate_fingerprint"] = _gate_fingerprint(run_dir.parent)
    return EvaluationInputs(
        task="segmentation" if segmenter else "classification",
        data_fingerprint=data_fingerprint,
        model_fingerprint=fingerprint(run_dir),
        settings=settings,
    )


def _gate_fingerprint(models_dir: Path) -> str | None:
    """SHA-256 (12 hex digits) of models_dir/input_gate.json, None without one."""
    import hashlib

    from btseg.gate import APPEARANCE_FILE

    try:
        return hashlib.sha256((models_dir / APPEARANCE_FILE).read_bytes()).hexdigest()[:12]
    except OSError:
        return None


def out_of_date_reasons(
    run_dir: str | Path,
    inputs: EvaluationInputs,
    summary: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> list[str]:
    """Why run_dir's evaluation does not describe `inputs` ([] when it is up to date): the rule
    by which `btseg evaluate` skips a run, and by which the dashboard flags an evaluation.

    Args:
        summary: the evaluation's summary.json when already read; read from run_dir if None.
        data_dir: the dataset folder in use, to name it in the reasons.
    """
    run_dir = Path(run_dir)
    if summary is None:
        try:
            summary = files.read_summary(run_dir)
        except RunError:
            return ["there is no readable evaluation"]
    reasons = []
    if summary.get("task") != inputs.task:
        reasons.append(f"it is the evaluation of a {summary.get('task', 'unknown')} model")
    if summary.get("data_fingerprint") != inputs.data_fingerprint:
        reasons.append(_data_reason(summary, inputs, data_dir))
    if summary.get("model_fingerprint") != inputs.model_fingerprint:
        reasons.append("the model was trained again after it")
    recorded = summary.get("settings")
    if recorded != inputs.settings:
        recorded = recorded if isinstance(recorded, dict) else {}
        changed = [key for key in sorted({*recorded, *inputs.settings})
                   if recorded.get(key) != inputs.settings.get(key)]
        if "verdict_segmenter_fingerprint" in changed:
            changed.remove("verdict_segmenter_fingerprint")
            reasons.append(f"the {title_of(run_name_for('attention'))} its verdict depends on "
                           "has changed since")
        if "input_gate_fingerprint" in changed:
            changed.remove("input_gate_fingerprint")
            reasons.append("the input gate its verdict passes through was fitted again since")
        if changed:
            reasons.append(f"it was made with other settings ({', '.join(changed)})")
    needed = files.SEGMENTATION_FILES if inputs.task == "segmentation" else files.CLASSIFIER_FILES
    folder = files.evaluation_dir(run_dir)
    absent = [name for name in needed if not (folder / name).is_file()]
    if absent:
        reasons.append(f"its folder lacks {', '.join(absent)}")
    return reasons


def _data_reason(summary: dict[str, Any], inputs: EvaluationInputs,
                 data_dir: str | Path | None) -> str:
    evaluated_on = summary.get("data_dir")
    if data_dir is None:
        return (f"it was made on other data (data fingerprint {summary.get('data_fingerprint')}, "
                f"now {inputs.data_fingerprint})")
    if evaluated_on:
        try:
            same = Path(evaluated_on).resolve() == Path(data_dir).resolve()
        except OSError:
            same = False
        if not same:
            return (f"it was made on the dataset at `{evaluated_on}`, not on the one loaded now "
                    f"(`{data_dir}`)")
    return f"the dataset at `{data_dir}` has changed since it was made"


# --------------------------------------------------------------------------------------------
# Writing the folder atomically


def _remove_stale_folders(run_dir: Path) -> None:
    """Leftovers of evaluations that were killed: evaluation.tmp-<pid>, evaluation.old-<pid>."""
    for pattern in (f"{files.EVALUATION_FOLDER}.tmp-*", f"{files.EVALUATION_FOLDER}.old-*"):
        remove_dead_temporaries(run_dir, pattern)


# --------------------------------------------------------------------------------------------
# Data




class TestData:
    """The test split as the run was trained with it: table rows, surrogate patients, ids.

    The split is the run folder's split.json (written at training) when it has one, else the
    split recomputed from the data with the run's seed; no cached arrays are needed, since every
    test image is read from its file and goes through the pipeline `btseg predict` uses.
    """

    def __init__(
        self,
        run_name: str,
        config: dict[str, Any],
        dataset: Any,
        data_fingerprint: str,
        cache_dir: Path,
        run_dir: Path,
        log: Log,
    ) -> None:
        from btseg.data.splits import load_split, split_for

        self.warnings: list[str] = []
        recorded = config.get("data") or {}
        if recorded.get("fingerprint") and recorded["fingerprint"] != data_fingerprint:
            self.warnings.append(
                f"the dataset differs from the one the model was trained on (data fingerprint "
                f"{data_fingerprint}, training {recorded['fingerprint']}); the test split may "
                "then hold images the model was trained on"
            )
        if (run_dir / SPLIT_FILE).is_file():
            self.split = load_split(run_dir / SPLIT_FILE)
            self.split_source = f"{run_name}/{SPLIT_FILE}"
        else:
            self.split = split_for(dataset, cache_dir=cache_dir, seed=_split_seed(config))
            self.split_source = "recomputed from the data (the run folder has no split.json)"
        if recorded.get("split_id") and recorded["split_id"] != self.split.split_id:
            self.warnings.append(
                f"the test split (split id {self.split.split_id}) is not the split the model "
                f"was trained with ({recorded['split_id']}): test images may have been seen in "
                "training, so the numbers can be optimistic"
            )
        for warning in self.warnings:
            log(f"Warning ({run_name}): {warning}.")
        self.input_mode = str(config.get("input_mode") or "image")
        self.region: dict[str, Any] | None = None
        if self.input_mode == "region":
            self.region = _region_settings(config, run_name)
        self._dataset = dataset
        self.part = "test"
        usable = set(dataset.usable["image_id"].astype(str))
        test_ids = self.split.ids("test")
        self.image_ids = [image_id for image_id in test_ids if image_id in usable]
        left_out = [image_id for image_id in test_ids if image_id not in usable]
        if left_out:
            shown = ", ".join(left_out[:3])
            self.warnings.append(
                f"{len(left_out)} test image(s) have no usable image file and are left out "
                f"({shown})"
            )
            log(f"Warning ({run_name}): {self.warnings[-1]}.")
        if not self.image_ids:
            raise RunError(
                "the test split holds no usable image",
                where=str(dataset.root),
                fix="check the dataset with `btseg stats` and `btseg split`",
            )
        self.left_out = left_out
        self._index_rows(dataset)

    def for_part(self, part: str) -> TestData:
        """The same run's images of another part of its split ("val" to fit on validation)."""
        import copy

        other = copy.copy(self)
        usable = set(self._dataset.usable["image_id"].astype(str))
        other.part = part
        other.image_ids = [i for i in self.split.ids(part) if i in usable]
        other.left_out = [i for i in self.split.ids(part) if i not in usable]
        other._index_rows(self._dataset)
        return other

    def _index_rows(self, dataset: Any) -> None:
        from btseg.data.splits import surrogate_patient_ids

        table = dataset.table.drop_duplicates("image_id")
        groups = surrogate_patient_ids(dataset.table)
        group_of = dict(zip(dataset.table["image_id"].astype(str), groups.astype(int), strict=True))
        self.rows = table.set_index(table["image_id"].astype(str)).loc[self.image_ids]
        self.groups = np.array([group_of[image_id] for image_id in self.image_ids], dtype=np.int64)
        self.labels = np.array(
            [CLASS_NAMES.index(str(self.rows.loc[i, "label"])) for i in self.image_ids],
            dtype=np.int64,
        )

    def image(self, index: int) -> tuple[Any, np.ndarray]:
        """(DecodedImage, (H, W) uint8 true mask) of test image ``index``, read from its files.

        Raises:
            RunError: the image or its annotation cannot be read (names the file and the fix).
        """
        from btseg.data.images import read_image
        from btseg.data.labelme import lesions_mask, read_annotation

        image_id = self.image_ids[index]
        row = self.rows.loc[image_id]
        try:
            decoded = read_image(str(row["image_path"]))
            shape = decoded.shape
            truth = np.zeros(shape, dtype=np.uint8)
            annotation_path = files.text(row.get("annotation_path"))
            if str(row["label"]) != "normal" and annotation_path:
                annotation = read_annotation(annotation_path, image_shape=shape)
                truth = lesions_mask(
                    annotation.lesions, (annotation.height, annotation.width), target_shape=shape
                )
        except BtsegError as error:
            raise RunError(
                f"test image {image_id} cannot be read ({error})",
                where=files.text(row.get("image_path")),
                fix="fix or remove the file, then run `btseg evaluate` again",
            ) from None
        return decoded, truth


def _region_settings(config: dict[str, Any], run_name: str) -> dict[str, Any]:
    """The region settings of a region-mode classifier's config.json, checked."""
    region = config.get("region")
    try:
        low, high = (float(value) for value in region["side_range"])
        checked = dict(region, source_size=int(region["source_size"]), seed=int(region["seed"]))
        if not (0 < low <= high and checked["source_size"] > 0):
            raise ValueError
    except (TypeError, KeyError, ValueError):
        raise RunError(
            "config.json says the classifier classifies regions but has no valid region "
            "settings (source_size, side_range, seed)",
            where=f"{run_name}/config.json",
            fix=f"train the classifier again: {train_command('classifier')}",
        ) from None
    checked["side_range"] = [low, high]
    return checked


# --------------------------------------------------------------------------------------------
# Entry points


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path,
    force: bool = False,
    progress: Progress | None = None,
    *,
    cache_dir: str | Path | None = None,
    log: Log | None = print,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> Path:
    """Evaluate one run on the test split; write and return run_dir/evaluation.

    Skipped (nothing written, no TensorFlow) when evaluation/summary.json already records the
    same data fingerprint, model fingerprint (model.keras and threshold.json) and settings,
    unless `force`. The folder is written as evaluation.tmp-<pid>/ and renamed over
    evaluation/ when complete.

    Args:
        run_dir: a complete run folder (models/<run>).
        data_dir: the BTXRD-layout dataset the run was trained on.
        force: evaluate even when up to date.
        progress: progress(stage, done, total), called per cached image, per predicted batch
            and per scored image (see stage_progress).
        cache_dir: cache of splits and arrays; default btseg.config.cache_dir().
        log: receives messages (skipped, warnings); None is silent.
        n_resamples: bootstrap resamples of the 95% intervals.

    Raises:
        RunError: the run is incomplete or its model does not load, or a test image cannot be
            scored. DataError: the dataset cannot be opened.
    """
    from btseg.config import cache_dir as default_cache_dir
    from btseg.data.btxrd import open_dataset
    from btseg.data.cache import data_fingerprint
    from btseg.runs import load_run

    say = log or (lambda message: None)
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    if not info["complete"]:
        raise RunError(
            info["problem"] or "the run folder is incomplete",
            where=str(run_dir),
            fix=f"train the model: {train_command(run_dir.name, str(data_dir))}",
        )
    config = info["config"]
    dataset = open_dataset(data_dir)
    inputs = evaluation_inputs(run_dir, config, data_fingerprint(dataset.usable), n_resamples)
    segmenter = inputs.task == "segmentation"
    destination = files.evaluation_dir(run_dir)
    if not force and not out_of_date_reasons(run_dir, inputs):
        say(
            f"{run_dir.name}: evaluation is up to date (same model and data); "
            "use --force to redo it"
        )
        return destination

    started = time.monotonic()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    run_name = str(config.get("run", run_dir.name))
    data = TestData(run_name, config, dataset, inputs.data_fingerprint, cache, run_dir, say)
    run = load_run(run_dir)
    _remove_stale_folders(run_dir)
    temporary = run_dir / f"{files.EVALUATION_FOLDER}.tmp-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    try:
        evaluate = evaluate_segmenter if segmenter else evaluate_classifier
        results = evaluate(run, data, temporary, n_resamples, progress)
        if not segmenter:
            verdict_segmenter = verdict_segmenter_dir(run_dir)
            if verdict_segmenter is not None:
                temperature = (results.get("calibration") or {}).get("temperature")
                results["verdict"] = evaluate_verdict(
                    verdict_segmenter, run, data, temporary, n_resamples, progress, temperature
                )
        summary = {
            "schema_version": files.SCHEMA_VERSION,
            "task": "segmentation" if segmenter else "classification",
            "model": run_name,
            "run_dir": str(run_dir.resolve()),
            "data_dir": str(Path(dataset.root).resolve()),
            "synthetic": bool(dataset.is_synthetic),
            "split": "test",
            "split_id": data.split.split_id,
            "split_source": data.split_source,
            "split_seed": _split_seed(config),
            "data_fingerprint": inputs.data_fingerprint,
            "model_fingerprint": inputs.model_fingerprint,
            "settings": inputs.settings,
            "n_test_images": len(data.image_ids),
            "input_mode": data.input_mode,
            **({"region": data.region} if data.region is not None else {}),
            "test_images_left_out": data.left_out,
            "n_groups": int(len(np.unique(data.groups))),
            "bootstrap": {
                "n_resamples": int(n_resamples),
                "seed": BOOTSTRAP_SEED,
                "unit": "surrogate patient (btseg.data.splits.surrogate_patient_ids)",
                "level": 0.95,
            },
            "warnings": data.warnings,
            **results,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "evaluation_seconds": round(time.monotonic() - started, 1),
        }
        atomic_write_json(temporary / files.SUMMARY_FILE, files.plain(summary))
        swap_folder_into_place(
            temporary, destination, destination.with_name(f"{destination.name}.old-{os.getpid()}")
        )
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    say(
        f"{run_name}: evaluated {len(data.image_ids)} test images in "
        f"{summary['evaluation_seconds']:.0f}s -> {destination}"
    )
    return destination


# Alike in shape to evaluate_run's signature on purpose: the same options, passed through.
def evaluate_all(
    models_dir: str | Path,
    data_dir: str | Path,
    force: bool = False,
    progress: Progress | None = None,
    *,
    models: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    log: Log | None = print,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, Path]:
    """Evaluate every complete run under models_dir (or those named in `models`).

    A run that is missing or incomplete is skipped with a message naming the command that
    trains it. A run whose evaluation fails is reported and the others still run; a RunError
    naming the failed runs is raised at the end.

    Args:
        models: model keys or run names ("basic", "attention_unet", "classifier"); None means
            every complete run found.

    Returns:
        {run name: evaluation folder} of the runs evaluated or already up to date.
    """
    say = log or (lambda message: None)
    models_dir = Path(models_dir)
    if models:
        wanted = [run_name_for(str(model).strip().lower()) for model in models]
    else:
        found = (
            sorted(
                (
                    folder.name
                    for folder in models_dir.iterdir()
                    if folder.is_dir() and not folder.name.startswith((".", "_"))
                ),
                key=lambda name: (
                    RUN_ORDER.index(name) if name in RUN_ORDER else len(RUN_ORDER),
                    name,
                ),
            )
            if models_dir.is_dir()
            else []
        )
        wanted = [
            name
            for name in found
            if (models_dir / name / CONFIG_FILE).exists() or name in RUN_NAMES.values()
        ]
    results: dict[str, Path] = {}
    failures: list[str] = []
    for name in wanted:
        run_dir = models_dir / name
        if not is_complete(run_dir):
            state = "is not trained" if not run_dir.exists() else "is incomplete"
            say(
                f"Skipping {name}: {run_dir} {state}; train it with "
                f"`{train_command(name, str(data_dir))}`."
            )
            continue
        try:
            results[name] = evaluate_run(
                run_dir,
                data_dir,
                force=force,
                progress=progress,
                cache_dir=cache_dir,
                log=log,
                n_resamples=n_resamples,
            )
        except RunError as error:
            say(f"{name}: evaluation failed: {error}")
            failures.append(name)
    if not wanted:
        say(
            f"No trained model in {models_dir}; train them with "
            f"`{train_command('all', str(data_dir))}`."
        )
    if failures:
        raise RunError(
            f"the evaluation of {', '.join(failures)} failed (see the messages above)",
            where=str(models_dir),
            fix="fix the problem named for each run, then run `btseg evaluate` again",
        )
    return results
