"""The `btseg` command line: each subcommand on a small synthetic dataset, and its error path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from btseg.cli import main


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "synthetic"
    assert main(["demo-data", "--out", str(out), "--n", "30", "--seed", "4"]) == 0
    return out


def test_demo_data_writes_the_btxrd_layout(small_dataset: Path) -> None:
    assert (small_dataset / "dataset.xlsx").is_file()
    assert (small_dataset / "SYNTHETIC.txt").is_file()
    assert len(list((small_dataset / "images").iterdir())) == 30
    assert list((small_dataset / "Annotations").glob("*.json"))


def test_stats_json_counts_every_image(small_dataset: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["stats", "--data", str(small_dataset), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["images"] == 30
    assert sum(stats["by_label"].values()) == 30
    assert stats["annotated_images"] == stats["by_label"]["benign"] + stats["by_label"]["malignant"]


def test_stats_text(small_dataset: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["stats", "--data", str(small_dataset)]) == 0
    assert "30" in capsys.readouterr().out


def test_split_json_assigns_every_image_once(
    small_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BTSEG_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["split", "--data", str(small_dataset), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 30
    assert sum(part["images"] for part in summary["parts"].values()) == 30
    assert main(["split", "--data", str(small_dataset)]) == 0
    assert "surrogate patients" in capsys.readouterr().out


def test_a_folder_without_a_table_exits_2_with_the_fix(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "btseg", "stats", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "dataset.xlsx" in result.stderr
    assert "Traceback" not in result.stderr


def test_region_settings_are_refused_for_a_segmenter_before_any_training(
    small_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    arguments = ["train", "--data", str(small_dataset), "--models-dir", str(tmp_path)]
    assert main([*arguments, "--model", "attention", "--input-mode", "region"]) == 2
    assert "settings of the classifier" in capsys.readouterr().err
    assert main([*arguments, "--model", "classifier", "--region-source-size", "0"]) == 2
    assert "--region-source-size" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
