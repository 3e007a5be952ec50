"""Run folders: atomic writes, completeness, the information cards read, clear errors."""

from __future__ import annotations

import json
import sys

import pytest

from btseg import runs
from btseg.errors import RunError


def _config(run: str = "attention_unet", input_size: int = 32) -> dict:
    return {
        "run": run,
        "model": run.split("_")[0],
        "task": "classification" if run == "classifier" else "segmentation",
        "input_size": input_size,
        "monitor": "val_dice",
        "data": {"dir": "/data/BTXRD"},
        "validation": {"mean_dice": 0.4},
    }


def _fake_run(folder, run: str = "attention_unet", input_size: int = 32, model_bytes: bytes = b"zip"):
    """A run folder with every file; model.keras is a placeholder unless given."""
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(model_bytes)
    runs.atomic_write_json(folder / "config.json", _config(run, input_size))
    runs.atomic_write_csv(
        folder / "history.csv",
        [{"epoch": 0, "loss": 0.9, "val_dice": 0.1, "val_loss": 1.0},
         {"epoch": 1, "loss": 0.5, "val_dice": 0.3, "val_loss": 0.7},
         {"epoch": 2, "loss": 0.4, "val_dice": 0.2, "val_loss": 0.8}],
    )
    if run != "classifier":
        runs.atomic_write_json(folder / "threshold.json", {"threshold": 0.25, "table": []})
    return folder


def test_atomic_write_json_writes_strict_json_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "value.json"
    runs.atomic_write_json(path, {"dice": float("nan"), "values": (1, 2)})
    assert json.loads(path.read_text()) == {"dice": None, "values": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["value.json"]


def test_atomic_write_csv_and_text(tmp_path):
    runs.atomic_write_csv(tmp_path / "t.csv", [{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,2\n3,4\n"
    runs.atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "value.json"
    runs.atomic_write_json(path, {"old": 1})
    with pytest.raises(TypeError):
        runs.atomic_write_json(path, {"new": object()})
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["value.json"]


def test_read_run_info_of_a_complete_folder_needs_no_tensorflow(tmp_path):
    folder = _fake_run(tmp_path / "attention_unet")
    already = "tensorflow" in sys.modules
    info = runs.read_run_info(folder)
    assert already or "tensorflow" not in sys.modules
    assert info["complete"] is True and info["problem"] is None
    assert info["threshold"] == 0.25
    assert info["config"]["validation"]["mean_dice"] == 0.4
    assert info["history"]["epochs"] == 3
    assert info["history"]["best"] == {"loss": 0.4, "val_dice": 0.3, "val_loss": 0.7}
    assert info["history"]["last"]["val_dice"] == 0.2
    assert runs.is_complete(folder)


def test_a_classifier_run_needs_no_threshold(tmp_path):
    folder = _fake_run(tmp_path / "classifier", run="classifier")
    info = runs.read_run_info(folder)
    assert info["complete"] and info["threshold"] is None


@pytest.mark.parametrize("missing", ["model.keras", "history.csv", "threshold.json"])
def test_a_missing_file_makes_the_folder_incomplete_with_the_file_and_command_named(tmp_path, missing):
    folder = _fake_run(tmp_path / "attention_unet")
    (folder / missing).unlink()
    assert not runs.is_complete(folder)
    info = runs.read_run_info(folder)
    assert info["complete"] is False
    assert missing in info["problem"]
    assert "btseg train --model attention --data /data/BTXRD" in info["problem"]
    with pytest.raises(RunError, match=missing):
        runs.load_run(folder)


def test_a_missing_folder_names_the_training_command(tmp_path):
    with pytest.raises(RunError) as error:
        runs.load_run(tmp_path / "basic_unet")
    assert "does not exist" in str(error.value)
    assert "btseg train --model basic" in str(error.value)


def test_corrupt_config_json_is_a_clear_error(tmp_path):
    folder = _fake_run(tmp_path / "attention_unet")
    (folder / "config.json").write_text("{not json")
    assert not runs.is_complete(folder)
    with pytest.raises(RunError, match="config.json is not valid JSON") as error:
        runs.load_run(folder)
    assert "btseg train --model attention" in str(error.value)


def test_a_threshold_outside_0_1_is_refused(tmp_path):
    folder = _fake_run(tmp_path / "basic_unet", run="basic_unet")
    runs.atomic_write_json(folder / "threshold.json", {"threshold": 3})
    with pytest.raises(RunError, match="threshold.json holds no valid operating point"):
        runs.load_run(folder)


def test_a_model_file_that_does_not_load_is_a_run_error(tmp_path):
    folder = _fake_run(tmp_path / "attention_unet", model_bytes=b"not a keras archive")
    with pytest.raises(RunError, match="the model cannot be loaded") as error:
        runs.load_run(folder)
    assert "model.keras" in str(error.value)


def test_list_runs_skips_temporary_folders(tmp_path):
    _fake_run(tmp_path / "attention_unet")
    _fake_run(tmp_path / "classifier", run="classifier")
    (tmp_path / ".tmp-basic_unet-123").mkdir()
    (tmp_path / "basic_unet").mkdir()
    listed = runs.list_runs(tmp_path)
    assert list(listed) == ["attention_unet", "basic_unet", "classifier"]
    assert listed["attention_unet"]["complete"] and listed["classifier"]["complete"]
    assert not listed["basic_unet"]["complete"]
    assert runs.list_runs(tmp_path / "absent") == {}


def test_load_run_returns_model_config_and_threshold(tmp_path):
    from btseg.models.unet import build_basic_unet

    model = build_basic_unet((32, 32, 3))
    folder = _fake_run(tmp_path / "basic_unet", run="basic_unet", input_size=32)
    model.save(folder / "model.keras")
    run = runs.load_run(folder)
    assert run.threshold == 0.25
    assert run.input_size == 32 and run.name == "basic_unet"
    assert run.model.output_shape == (None, 32, 32, 1)


def test_a_model_whose_input_size_differs_from_its_config_is_refused(tmp_path):
    from btseg.models.unet import build_basic_unet

    folder = _fake_run(tmp_path / "basic_unet", run="basic_unet", input_size=64)
    build_basic_unet((32, 32, 3)).save(folder / "model.keras")
    with pytest.raises(RunError, match="takes 32x32 inputs but config.json says 64x64"):
        runs.load_run(folder)


def test_atomic_write_json_takes_numpy_arrays_and_scalars(tmp_path) -> None:
    import numpy as np

    from btseg.runs import atomic_write_json

    path = tmp_path / "values.json"
    atomic_write_json(path, {"array": np.arange(3), "scalar": np.float32(0.5), "nan": float("nan")})
    assert json.loads(path.read_text()) == {"array": [0, 1, 2], "scalar": 0.5, "nan": None}
