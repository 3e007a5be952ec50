"""Run folders: what a trained model needs beside it, written atomically and read back.

    models/<run>/model.keras      the model (registered custom objects; loads with safe_mode=True)
    models/<run>/config.json      hyperparameters, input size, data fingerprint, split id, versions
    models/<run>/history.csv      per-epoch loss and metrics
    models/<run>/threshold.json   segmenters only: the operating threshold chosen on validation

Reading a folder's information (read_run_info, list_runs) needs no TensorFlow; only load_run
imports it. A folder that is missing, incomplete, corrupt or does not fit its config raises a
RunError that names the file and the command that makes a new one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from btseg.decisions import OperatingPoint
from btseg.errors import ConfigError, RunError
from btseg.outputs import atomic_write_csv, atomic_write_json, atomic_write_text  # noqa: F401
from btseg.registry import MODELS, SEGMENTATION_RUNS

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
THRESHOLD_FILE = "threshold.json"
SPLIT_FILE = "split.json"  # the split the run was trained with (evaluation needs no cache)

#: Model key (the --model value) -> run folder name (from btseg.registry).
RUN_NAMES = {key: spec.run for key, spec in MODELS.items()}


def run_name_for(model: str) -> str:
    """'attention' -> 'attention_unet'; a run name is returned unchanged."""
    return RUN_NAMES.get(model, model)


def _model_key(run_name: str) -> str:
    for key, name in RUN_NAMES.items():
        if name == run_name:
            return key
    return run_name


def train_command(run_name: str, data_dir: str | None = None) -> str:
    """The command that (re)creates a run folder, e.g. 'btseg train --model attention --data DIR'."""
    model = _model_key(run_name)
    model = model if model in RUN_NAMES else "all"
    return f"btseg train --model {model} --data {data_dir or 'DIR'}"


# ------------------------------------------------------------------------------------------------
# Atomic writes


def process_alive(pid: int) -> bool:
    """True when a process with this id exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temporaries(folder: str | Path, pattern: str) -> None:
    """Remove folders matching `pattern` (ending in -<pid>) left by processes that no longer run."""
    for path in Path(folder).glob(pattern):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def swap_folder_into_place(temporary: str | Path, final: str | Path, old: str | Path) -> Path:
    """Rename the finished `temporary` folder to `final`; a previous `final` is moved to `old`
    and removed only once the new one is in place (restored if the rename fails)."""
    temporary, final, old = Path(temporary), Path(final), Path(old)
    if old.exists():
        shutil.rmtree(old)
    had_old = final.exists()
    if had_old:
        os.replace(final, old)
    try:
        os.replace(temporary, final)
    except OSError:
        if had_old:
            os.replace(old, final)
        raise
    if had_old:
        shutil.rmtree(old, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------------------
# Reading


def required_files(run_name: str) -> tuple[str, ...]:
    """Files a complete run folder of this name holds."""
    files = (MODEL_FILE, CONFIG_FILE, HISTORY_FILE)
    return files + (THRESHOLD_FILE,) if run_name in SEGMENTATION_RUNS else files


def _read_json(path: Path, run_name: str, data_dir: str | None = None) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(
            f"{path.name} is missing, so the run is incomplete",
            where=str(path),
            fix=f"train the model again: {train_command(run_name, data_dir)}",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(
            f"{path.name} is not valid JSON ({error})",
            where=str(path),
            fix=f"train the model again: {train_command(run_name, data_dir)}",
        ) from None
    if not isinstance(value, dict):
        raise RunError(
            f"{path.name} does not hold a JSON object",
            where=str(path),
            fix=f"train the model again: {train_command(run_name, data_dir)}",
        )
    return value


def _run_kind(path: Path, config: dict[str, Any] | None = None) -> str:
    """The run name: config's "run", else the folder name."""
    if config and isinstance(config.get("run"), str):
        return config["run"]
    return path.name


def is_complete(path: str | Path) -> bool:
    """True when the folder holds every required, non-empty file and a readable config.json."""
    path = Path(path)
    if not path.is_dir():
        return False
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(config, dict):
        return False
    for name in required_files(_run_kind(path, config)):
        file = path / name
        if not file.is_file() or file.stat().st_size == 0:
            return False
    return True


def _check_folder(path: Path) -> tuple[dict[str, Any], str]:
    """(config, run name) of a complete folder; RunError naming the first missing or bad file."""
    run_name = path.name
    if not path.is_dir():
        raise RunError(
            "the run folder does not exist",
            where=str(path),
            fix=f"train the model first: {train_command(run_name)}",
        )
    config = _read_json(path / CONFIG_FILE, run_name)
    run_name = _run_kind(path, config)
    data_dir = (
        (config.get("data") or {}).get("dir") if isinstance(config.get("data"), dict) else None
    )
    for name in required_files(run_name):
        file = path / name
        if not file.is_file() or file.stat().st_size == 0:
            raise RunError(
                f"{name} is missing or empty, so the run is incomplete",
                where=str(file),
                fix=f"train the model again: {train_command(run_name, data_dir)}",
            )
    if not isinstance(config.get("input_size"), int) or config["input_size"] < 1:
        raise RunError(
            "config.json has no valid input_size",
            where=str(path / CONFIG_FILE),
            fix=f"train the model again: {train_command(run_name, data_dir)}",
        )
    return config, run_name


def _read_operating_point(path: Path, run_name: str, data_dir: str | None) -> OperatingPoint | None:
    """The operating point in threshold.json (segmenters), None for the classifier."""
    if run_name not in SEGMENTATION_RUNS:
        return None
    payload = _read_json(path / THRESHOLD_FILE, run_name, data_dir)
    value = payload.get("threshold")
    try:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError("not a number")
        return OperatingPoint.from_json(payload)
    except (ConfigError, TypeError, ValueError):
        raise RunError(
            f"threshold.json holds no valid operating point (threshold {value!r}, minimum "
            f"lesion fraction {payload.get('min_lesion_fraction')!r})",
            where=str(path / THRESHOLD_FILE),
            fix=f"train the model again: {train_command(run_name, data_dir)}",
        ) from None


def history_summary(path: str | Path, monitor: str | None = None) -> dict[str, Any]:
    """Epochs and the last and best values of each history.csv column, without pandas.

    Returns:
        {"epochs": n, "columns": [...], "last": {col: value}, "best": {col: value}} where "best"
        is the minimum of loss columns and the maximum of the others; {} when unreadable.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    columns = [c for c in (rows[0].keys() if rows else []) if c != "epoch"]
    last: dict[str, float | None] = {}
    best: dict[str, float | None] = {}
    for column in columns:
        values = []
        for row in rows:
            try:
                values.append(float(row.get(column) or "nan"))
            except ValueError:
                values.append(float("nan"))
        finite = [v for v in values if math.isfinite(v)]
        last[column] = values[-1] if values and math.isfinite(values[-1]) else None
        if finite:
            best[column] = min(finite) if "loss" in column else max(finite)
        else:
            best[column] = None
    summary = {"epochs": len(rows), "columns": columns, "last": last, "best": best}
    if monitor:
        summary["monitor"] = monitor
    return summary


def read_run_info(path: str | Path) -> dict[str, Any]:
    """What a dashboard card shows about a run folder, without TensorFlow.

    Returns:
        {"name", "path", "complete", "problem" (None or the RunError message), "config" (dict,
        {} when unreadable), "threshold" (float or None), "operating_point" (OperatingPoint or
        None), "history" (history_summary),
        "modified" (POSIX seconds of config.json, or None)}.
    """
    path = Path(path)
    info: dict[str, Any] = {
        "name": path.name,
        "path": str(path),
        "complete": False,
        "problem": None,
        "config": {},
        "threshold": None,
        "operating_point": None,
        "history": {},
        "modified": None,
    }
    try:
        config, run_name = _check_folder(path)
        data_dir = (config.get("data") or {}).get("dir")
        info["config"] = config
        point = _read_operating_point(path, run_name, data_dir)
        info["operating_point"] = point
        info["threshold"] = None if point is None else point.threshold
        info["history"] = history_summary(path / HISTORY_FILE, config.get("monitor"))
        info["modified"] = (path / CONFIG_FILE).stat().st_mtime
        info["complete"] = True
    except RunError as error:
        info["problem"] = str(error)
        if not info["config"]:
            try:
                info["config"] = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                pass
    return info


def list_runs(models_dir: str | Path) -> dict[str, dict[str, Any]]:
    """{folder name: read_run_info} for every visible folder under models_dir, sorted by name.

    Temporary folders of trainings in progress (names starting with ".") are left out.
    """
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return {}
    return {
        folder.name: read_run_info(folder)
        for folder in sorted(models_dir.iterdir())
        if folder.is_dir() and not folder.name.startswith((".", "_"))
    }


#: Lines TensorFlow's native code prints on stderr when it is imported: informational banners
#: (oneDNN, CPU features) that say nothing about the user's images.
_BANNER_MARKS = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use",
    "To enable the following instructions",
    "cuda_dnn.cc",
    "Unable to register cu",
    "Could not find cuda drivers",
)


@contextlib.contextmanager
def _without_tensorflow_banners() -> Iterator[None]:
    """Import TensorFlow without its start-up banners on stderr: the native stderr is held in
    a temporary file meanwhile, and every other line is written back when the import ends."""
    import sys

    if "tensorflow" in sys.modules:
        yield
        return
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(descriptor)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), descriptor)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, descriptor)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not any(mark in line for mark in _BANNER_MARKS):
                    sys.stderr.write(line + "\n")


@dataclass
class Run:
    """A loaded run: the Keras model, its config.json, its threshold (None for the classifier)."""

    model: Any
    config: dict[str, Any]
    operating_point: OperatingPoint | None
    path: Path

    @property
    def threshold(self) -> float | None:
        """The operating threshold (None for the classifier)."""
        return None if self.operating_point is None else self.operating_point.threshold

    @property
    def input_size(self) -> int:
        """The side of the model's training input (a patch, for patch-trained segmenters)."""
        return int(self.config["input_size"])

    @property
    def inference_size(self) -> int:
        """The side of the letterboxed image the model is run on: the working size of a
        patch-trained segmenter, else the input size."""
        return int(self.config.get("working_size") or self.input_size)

    @property
    def name(self) -> str:
        return str(self.config.get("run", self.path.name))


def load_run(path: str | Path) -> Run:
    """Load a run folder: model (safe_mode=True, without its training loss and optimizer, which
    inference does not need), config and threshold.

    Raises:
        RunError: the folder or a file is missing, a JSON file is corrupt, the model does not
            load, or its input size differs from config.json's.
    """
    path = Path(path)
    config, run_name = _check_folder(path)
    data_dir = (config.get("data") or {}).get("dir")
    operating_point = _read_operating_point(path, run_name, data_dir)
    fix = f"train the model again: {train_command(run_name, data_dir)}"

    with _without_tensorflow_banners():
        import keras

        import btseg.models.losses  # noqa: F401  registers the custom objects

    model_path = path / MODEL_FILE
    try:
        model = keras.saving.load_model(str(model_path), safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001 - zip, HDF5 and deserialisation errors alike
        raise RunError(
            f"the model cannot be loaded ({type(error).__name__}: {str(error)[:300]})",
            where=str(model_path),
            fix=fix,
        ) from None
    shape = tuple(model.input_shape[1:3])
    size = int(config["input_size"])
    if shape != (size, size) and shape != (None, None):  # (None, None): fully convolutional
        raise RunError(
            f"the model takes {shape[0]}x{shape[1]} inputs but config.json says {size}x{size}",
            where=str(model_path),
            fix=fix,
        )
    return Run(model=model, config=config, operating_point=operating_point, path=path)
