"""The orchestration behind `make run` (btseg.prepare) end to end on the tiny profile.

From an empty models folder and no dataset, `btseg prepare` generates the synthetic set and starts
training; it is killed (SIGKILL) during the second model. prepare() then resumes and is
interrupted (KeyboardInterrupt, as Ctrl-C) when the third model starts; the next prepare() trains
only what is missing and evaluates the three runs; one more does nothing, without TensorFlow. The
real server then answers and every page renders without an exception. The fast tests cover real
data (never trained automatically) and the stale-model rule.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import dashboard_env, project_env, running_dashboard
from model_fixtures import point_env_at

from btseg import config
from btseg.prepare import MODEL_ORDER, PrepareReport, _stale_models, prepare
from btseg.runs import RUN_NAMES, atomic_write_json, is_complete, list_runs

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Images of the generated dataset: enough for a train, validation and test part of each class.
TINY_IMAGES = 36
RUN_FOLDERS = tuple(RUN_NAMES[model] for model in MODEL_ORDER)
PAGES = ("app.py", *sorted(f"pages/{path.name}" for path in (PROJECT_ROOT / "pages").glob("*.py")))
KILL_DEADLINE_SECONDS = 600

# `btseg prepare --profile tiny` as `make prepare` runs it, except that the default dataset folder
# and its size point at the test's folder (the generate-when-absent path needs the default).
PREPARE_CLI = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from btseg import config
    config.default_data_dir = lambda: Path(sys.argv[1])
    config.SYNTHETIC_IMAGES = int(sys.argv[2])
    from btseg.cli import main
    raise SystemExit(main(["prepare", "--profile", "tiny"]))
    """
)

# prepare() with everything in place, reporting what it did and whether TensorFlow was imported.
PREPARE_AGAIN = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from btseg import config
    config.default_data_dir = lambda: Path(sys.argv[1])
    config.SYNTHETIC_IMAGES = int(sys.argv[2])
    from btseg.prepare import prepare
    lines = []
    started = time.monotonic()
    report = prepare(profile="tiny", progress=lines.append)
    print(json.dumps({
        "trained": report.trained,
        "evaluated": report.evaluated,
        "missing_models": report.missing_models,
        "seconds": time.monotonic() - started,
        "tensorflow": "tensorflow" in sys.modules,
        "keras": "keras" in sys.modules,
        "lines": lines,
    }))
    """
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def subprocess_env(root: Path) -> dict[str, str]:
    return project_env(
        {key: value for key, value in os.environ.items() if key != "BTSEG_DATA_DIR"},
        BTSEG_MODELS_DIR=str(root / "models"),
        BTSEG_CACHE_DIR=str(root / "cache"),
        TF_CPP_MIN_LOG_LEVEL="2",
    )


# ------------------------------------------------------------------------------------------------
# The main job: interrupted, resumed, repeated


@dataclasses.dataclass
class Prepared:
    root: Path
    data_dir: Path
    models_dir: Path
    cache_dir: Path
    killed_log: str
    after_kill_entries: list[str]          # names in models/ right after the kill
    after_kill_complete: list[str]         # entries of models/ that is_complete accepts
    after_kill_listed: list[str]           # list_runs (what the dashboard sees)
    basic_model_hash: str
    interrupted_lines: list[str]           # prepare() stopped by Ctrl-C as the classifier starts
    after_interrupt_entries: list[str]
    after_interrupt_complete: list[str]
    resumed: PrepareReport
    resumed_lines: list[str]


def run_killed_prepare(root: Path) -> tuple[str, list[str], list[str], list[str]]:
    """Run `btseg prepare --profile tiny` and SIGKILL it once the basic U-Net is complete and the
    attention U-Net has begun training. Returns (log, entries, complete entries, listed runs)."""
    data_dir, models_dir = root / "data" / "synthetic", root / "models"
    log_path = root / "killed.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", PREPARE_CLI, str(data_dir), str(TINY_IMAGES)],
            cwd=root, env=subprocess_env(root), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + KILL_DEADLINE_SECONDS
        while True:
            started = [
                folder
                for folder in models_dir.glob(".tmp-attention_unet-*")
                if folder.is_dir() and any(folder.iterdir())
            ]
            if started and is_complete(models_dir / "basic_unet"):
                break
            if process.poll() is not None:
                pytest.fail(
                    f"prepare ended (status {process.returncode}) before it could be interrupted:\n"
                    f"{log_path.read_text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"attention training did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    entries = sorted(entry.name for entry in models_dir.iterdir())
    complete = [name for name in entries if is_complete(models_dir / name)]
    return log_path.read_text(), entries, complete, sorted(list_runs(models_dir))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    """Killed `btseg prepare`, then a resumed prepare(), in a fresh folder (a few minutes)."""
    root = tmp_path_factory.mktemp("prepare")
    data_dir, models_dir, cache_dir = root / "data" / "synthetic", root / "models", root / "cache"
    killed_log, entries, complete, listed = run_killed_prepare(root)
    basic_hash = sha256(models_dir / "basic_unet" / "model.keras")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config, "default_data_dir", lambda: data_dir)
        patch.setattr(config, "SYNTHETIC_IMAGES", TINY_IMAGES)
        patch.delenv("BTSEG_DATA_DIR", raising=False)
        patch.setenv("BTSEG_MODELS_DIR", str(models_dir))
        patch.setenv("BTSEG_CACHE_DIR", str(cache_dir))
        from btseg import train

        # DenseNet121 dominates the tiny profile's time; a smaller classifier keeps this test
        # within minutes and does not change what the orchestration does.
        patch.setitem(
            train.PROFILES["tiny"],
            "classifier",
            dataclasses.replace(
                train.PROFILES["tiny"]["classifier"], input_size=32, epochs=1, fine_tune_epochs=0
            ),
        )
        interrupted_lines: list[str] = []

        def interrupt_at_the_classifier(line: str) -> None:
            interrupted_lines.append(line)
            if line.startswith("classifier: ") and "training and" in line:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            prepare(profile="tiny", progress=interrupt_at_the_classifier)
        interrupted_entries = sorted(entry.name for entry in models_dir.iterdir())
        interrupted_complete = [
            name for name in interrupted_entries if is_complete(models_dir / name)
        ]

        lines: list[str] = []
        resumed = prepare(profile="tiny", progress=lines.append)
        yield Prepared(
            root=root, data_dir=data_dir, models_dir=models_dir, cache_dir=cache_dir,
            killed_log=killed_log, after_kill_entries=entries, after_kill_complete=complete,
            after_kill_listed=listed, basic_model_hash=basic_hash,
            interrupted_lines=interrupted_lines, after_interrupt_entries=interrupted_entries,
            after_interrupt_complete=interrupted_complete, resumed=resumed, resumed_lines=lines,
        )  # fmt: skip


@pytest.mark.slow
def test_prepare_generates_the_synthetic_dataset_when_absent(prepared: Prepared):
    assert config.is_synthetic(prepared.data_dir)
    assert len(list((prepared.data_dir / "images").iterdir())) == TINY_IMAGES
    assert (prepared.data_dir / "dataset.xlsx").is_file()
    assert f"Generating the synthetic dataset ({TINY_IMAGES} images)" in prepared.killed_log
    assert prepared.resumed.synthetic is True
    assert prepared.resumed.images == TINY_IMAGES


@pytest.mark.slow
def test_a_killed_prepare_leaves_no_complete_looking_run(prepared: Prepared):
    # Killed during the attention U-Net: its half-written folder is hidden and incomplete.
    temporaries = [name for name in prepared.after_kill_entries if name.startswith(".tmp-")]
    assert len(temporaries) == 1 and temporaries[0].startswith(".tmp-attention_unet-")
    assert "attention_unet" not in prepared.after_kill_entries
    assert "classifier" not in prepared.after_kill_entries
    assert prepared.after_kill_complete == ["basic_unet"]
    assert prepared.after_kill_listed == ["basic_unet"]
    assert "[3/4] Training attention (missing), profile tiny: 2/3" in prepared.killed_log


@pytest.mark.slow
def test_ctrl_c_during_prepare_cleans_up_and_keeps_finished_runs(prepared: Prepared):
    lines = prepared.interrupted_lines
    assert "[3/4] Training attention (missing), profile tiny: 1/2" in lines
    assert "[3/4] Training classifier (missing), profile tiny: 2/2" in lines
    # The killed run's temporary folder is gone, the attention U-Net finished, the classifier's
    # temporary folder was removed and nothing was evaluated yet.
    assert prepared.after_interrupt_entries == ["attention_unet", "basic_unet"]
    assert prepared.after_interrupt_complete == ["attention_unet", "basic_unet"]
    assert not any(line.startswith("[4/4]") for line in lines)


@pytest.mark.slow
def test_resumed_prepare_trains_only_what_is_missing_and_evaluates_everything(
    prepared: Prepared,
):
    report = prepared.resumed
    assert report.trained == ["classifier"]
    assert report.evaluated == list(RUN_FOLDERS)
    assert report.missing_models == []
    assert "[1/4] Dataset: " in prepared.resumed_lines[0]  # not generated again
    # The basic U-Net of the killed run is kept as it was.
    assert sha256(prepared.models_dir / "basic_unet" / "model.keras") == prepared.basic_model_hash
    assert sorted(entry.name for entry in prepared.models_dir.iterdir()) == sorted(
        [*RUN_FOLDERS, "input_gate.json"]
    )
    for name in RUN_FOLDERS:
        run = prepared.models_dir / name
        assert is_complete(run), name
        summary = json.loads((run / "evaluation" / "summary.json").read_text())
        assert summary["split"] == "test"
        assert summary["n_test_images"] >= 1
        assert not [entry.name for entry in run.iterdir() if entry.name.startswith(".")]


@pytest.mark.slow
def test_prepare_again_does_nothing_and_never_imports_tensorflow(prepared: Prepared):
    marker = prepared.data_dir / "SYNTHETIC.txt"
    marker_stamp = marker.stat().st_mtime_ns
    summaries = {
        name: (prepared.models_dir / name / "evaluation" / "summary.json").stat().st_mtime_ns
        for name in RUN_FOLDERS
    }
    result = subprocess.run(
        [sys.executable, "-c", PREPARE_AGAIN, str(prepared.data_dir), str(TINY_IMAGES)],
        cwd=prepared.root, env=subprocess_env(prepared.root), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["trained"] == []
    assert outcome["evaluated"] == []
    assert outcome["missing_models"] == []
    assert outcome["tensorflow"] is False
    assert outcome["keras"] is False
    assert outcome["seconds"] < 10, outcome["lines"]
    assert "[3/4] Models are trained on this dataset" in outcome["lines"]
    assert marker.stat().st_mtime_ns == marker_stamp
    for name, stamp in summaries.items():
        assert (prepared.models_dir / name / "evaluation" / "summary.json").stat().st_mtime_ns == stamp


@pytest.fixture
def served(prepared: Prepared, monkeypatch: pytest.MonkeyPatch) -> Prepared:
    point_env_at(prepared, monkeypatch)
    return prepared


@pytest.mark.slow
def test_the_server_starts_on_the_prepared_folders(served: Prepared):
    env = dashboard_env(
        served.data_dir, served.cache_dir, served.models_dir, TF_CPP_MIN_LOG_LEVEL="2"
    )
    log_path = served.root / "streamlit.log"
    with running_dashboard(env, log_path, poll=0.3) as server:
        assert server.health == "ok"
    assert "Traceback" not in log_path.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_prepared_folders(served: Prepared, page: str):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=300).run()
    if page != "app.py":
        app = app.switch_page(page).run()
    assert not app.exception, [item.value for item in app.exception]
    assert not app.error, [item.value for item in app.error]
    assert len(app.title) >= 1 or len(app.header) >= 1


# ------------------------------------------------------------------------------------------------
# Real data and the stale-model rule (no training)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 synthetic images, written by `btseg demo-data` in a fresh process: generate() forks its
    workers, which can deadlock in a process where TensorFlow has already run."""
    out = tmp_path_factory.mktemp("small") / "synthetic"
    result = subprocess.run(
        [sys.executable, "-m", "btseg", "demo-data", "--out", str(out), "--n", "20", "--seed", "3"],
        cwd=PROJECT_ROOT, env=subprocess_env(out.parent), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_real_data_is_not_trained_automatically(small_dataset: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch):
    real = tmp_path / "BTXRD"
    shutil.copytree(small_dataset, real)
    (real / "SYNTHETIC.txt").unlink()
    monkeypatch.setenv("BTSEG_CACHE_DIR", str(tmp_path / "cache"))
    lines: list[str] = []

    report = prepare(data_dir=real, models_dir=tmp_path / "models", profile="tiny",
                     progress=lines.append)

    assert report.synthetic is False
    assert report.images == 20
    assert report.trained == []
    assert report.evaluated == []
    assert report.missing_models == ["basic", "attention", "classifier"]
    assert any(f"make train DATA={real} PROFILE=full" in line for line in lines), lines
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_prepare_reports_each_problem_of_the_dataset(small_dataset: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    from btseg.data.btxrd import open_dataset

    monkeypatch.setenv("BTSEG_CACHE_DIR", str(tmp_path / "cache"))
    lines: list[str] = []
    report = prepare(data_dir=small_dataset, models_dir=tmp_path / "models", train=False,
                     progress=lines.append)
    problems = open_dataset(small_dataset).problems
    assert report.problems == len(problems)
    for problem in problems:
        assert f"  - {problem.message}" in lines


def write_fake_run(models_dir: Path, model: str, fingerprint: str) -> Path:
    """A run folder that read_run_info accepts as complete (no model inside)."""
    run = models_dir / RUN_NAMES[model]
    run.mkdir(parents=True)
    for name in ("model.keras", "history.csv"):
        (run / name).write_text("placeholder\n")
    if model != "classifier":
        atomic_write_json(run / "threshold.json", {"threshold": 0.5})
    atomic_write_json(
        run / "config.json",
        {"run": RUN_NAMES[model], "input_size": 64, "data": {"fingerprint": fingerprint}},
    )
    return run


def test_stale_models_are_those_trained_on_other_data(tmp_path: Path):
    write_fake_run(tmp_path, "basic", "aaaa")
    write_fake_run(tmp_path, "attention", "bbbb")
    incomplete = write_fake_run(tmp_path, "classifier", "aaaa")
    (incomplete / "history.csv").unlink()

    assert _stale_models(tmp_path, "aaaa") == (["classifier"], ["attention"])
    assert _stale_models(tmp_path, "bbbb") == (["classifier"], ["basic"])
    assert _stale_models(tmp_path / "empty", "aaaa") == (list(MODEL_ORDER), [])


def test_touching_an_image_makes_every_run_stale(small_dataset: Path, tmp_path: Path):
    from btseg.data.btxrd import open_dataset
    from btseg.data.cache import data_fingerprint

    data = tmp_path / "synthetic"
    shutil.copytree(small_dataset, data)
    before = data_fingerprint(open_dataset(data).usable)
    for model in MODEL_ORDER:
        write_fake_run(tmp_path / "models", model, before)
    assert _stale_models(tmp_path / "models", before) == ([], [])

    image = sorted((data / "images").iterdir())[0]
    stamp = image.stat()
    os.utime(image, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
    after = data_fingerprint(open_dataset(data).usable)

    assert after != before
    assert _stale_models(tmp_path / "models", after) == ([], list(MODEL_ORDER))
