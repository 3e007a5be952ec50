"""What `make run` does before the server starts: dataset, demo models, evaluation.

Each step is skipped when its result is present and current, and each writes atomically, so an
interrupted `make run` resumes where it stopped. TensorFlow is imported only when a model has to be
trained or evaluated: a second `make run` with everything in place is quick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from btseg import config
from btseg.progress import format_seconds
from btseg.registry import MODELS

MODEL_ORDER = tuple(MODELS)  # training order: the classifier last


@dataclass
class PrepareReport:
    """What prepare() found and did."""

    data_dir: Path
    synthetic: bool
    images: int
    problems: int
    trained: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    missing_models: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _stale_models(models_dir: Path, fingerprint: str) -> tuple[list[str], list[str]]:
    """(models with no complete run, models whose run was trained on other data)."""
    from btseg.runs import read_run_info, run_name_for

    missing, stale = [], []
    for model in MODEL_ORDER:
        info = read_run_info(models_dir / run_name_for(model))
        if not info["complete"]:
            missing.append(model)
        elif (info["config"].get("data") or {}).get("fingerprint") != fingerprint:
            stale.append(model)
    return missing, stale


def _fit_gate(
    data_dir: Path, models_dir: Path, fingerprint: str, progress: Callable[[str], None]
) -> None:
    """Fit the input gate's appearance check on this dataset unless it is current (seconds,
    no TensorFlow)."""
    from btseg.errors import BtsegError
    from btseg.gate import fit_for_dataset, load_appearance_gate

    try:
        gate = load_appearance_gate(models_dir)
    except BtsegError:
        gate = None
    if gate is not None and gate.data_fingerprint == fingerprint:
        return
    try:
        gate = fit_for_dataset(data_dir, models_dir, cache_dir=config.cache_dir())
    except (BtsegError, ValueError) as error:
        progress(f"  The input gate's appearance check was not fitted: {error}")
        return
    progress(
        f"  Input gate fitted: refuses {gate.report['non_radiographs_refused']:.0%} of "
        f"{gate.report['non_radiographs']} non-radiographs and "
        f"{gate.report['validation_refused']:.1%} of the validation radiographs"
    )


def prepare(
    data_dir: Path | None = None,
    models_dir: Path | None = None,
    profile: str = "demo",
    train: bool | None = None,
    progress: Callable[[str], None] = print,
) -> PrepareReport:
    """Make the dashboard's inputs current.

    Args:
        data_dir: dataset folder; default config.data_dir(). The synthetic default is generated
            when absent.
        models_dir: run folders; default config.models_dir().
        profile: training profile for models that are missing or stale.
        train: train missing or stale models. Default: only on the synthetic dataset, since the
            full profile on the real BTXRD takes hours (use `make train` for that).
        progress: receives one line per step.
    """
    from btseg.data.btxrd import open_dataset
    from btseg.data.cache import data_fingerprint

    started = time.monotonic()
    data_dir = Path(data_dir) if data_dir is not None else config.data_dir()
    models_dir = Path(models_dir) if models_dir is not None else config.models_dir()

    if data_dir.resolve() == config.default_data_dir().resolve() and not config.is_synthetic(
        data_dir
    ):
        from btseg.progress import ProgressPrinter
        from btseg.synthetic import generate

        progress(
            f"[1/4] Generating the synthetic dataset ({config.SYNTHETIC_IMAGES} images) in {data_dir}"
        )
        generate(
            data_dir,
            n=config.SYNTHETIC_IMAGES,
            seed=config.SYNTHETIC_SEED,
            progress=ProgressPrinter("  images"),
        )
    else:
        progress(f"[1/4] Dataset: {data_dir}")

    dataset = open_dataset(data_dir)
    synthetic = config.is_synthetic(data_dir)
    report = PrepareReport(
        data_dir=data_dir,
        synthetic=synthetic,
        images=int(len(dataset.usable)),
        problems=len(dataset.problems),
    )
    kind = "synthetic" if synthetic else "BTXRD"
    progress(
        f"[2/4] {report.images} usable images ({kind}); {report.problems} kinds of problem reported"
    )
    for problem in dataset.problems:
        progress(f"  - {problem.message}")

    fingerprint = data_fingerprint(dataset.usable)
    missing, stale = _stale_models(models_dir, fingerprint)
    to_train = [m for m in MODEL_ORDER if m in missing or m in stale]
    if train is None:
        train = synthetic
    if to_train and train:
        from btseg.train import train_model

        for number, model in enumerate(to_train, start=1):
            why = "missing" if model in missing else "trained on other data"
            progress(f"[3/4] Training {model} ({why}), profile {profile}: {number}/{len(to_train)}")
            train_model(model, data_dir, models_dir, profile=profile, progress=progress)
            report.trained.append(model)
        from btseg.train import validation_comparison

        for line in validation_comparison(models_dir):
            progress(f"  {line}")
    elif to_train:
        report.missing_models = to_train
        progress(
            f"[3/4] Not training {', '.join(to_train)} on {kind} data automatically; "
            f"run `make train DATA={data_dir} PROFILE=full` (hours on CPU, or use a GPU)"
        )
    else:
        progress("[3/4] Models are trained on this dataset")

    from btseg.errors import BtsegError
    from btseg.evaluation import evaluate_run, stage_progress
    from btseg.runs import run_name_for

    _fit_gate(data_dir, models_dir, fingerprint, progress)
    _, stale = _stale_models(models_dir, fingerprint)
    runs = [
        models_dir / run_name_for(m)
        for m in MODEL_ORDER
        if m not in report.missing_models
        and m not in stale
        and (models_dir / run_name_for(m)).is_dir()
    ]
    progress(f"[4/4] Evaluating {len(runs)} models on the test split (skipped when up to date)")
    for model in stale:
        progress(f"  {run_name_for(model)} was trained on other data: not evaluated on this one")
    for run in runs:
        summary = run / "evaluation" / "summary.json"
        before = summary.stat().st_mtime_ns if summary.is_file() else None
        try:
            evaluate_run(
                run, data_dir, progress=stage_progress(), log=lambda line: progress(f"  {line}")
            )
        except BtsegError as error:  # one failed evaluation must not keep the dashboard down
            report.failed.append(run.name)
            progress(f"  {run.name}: evaluation failed: {error}")
            continue
        if not summary.is_file() or summary.stat().st_mtime_ns != before:
            report.evaluated.append(run.name)
    report.seconds = time.monotonic() - started
    progress(f"Ready in {format_seconds(report.seconds)}.")
    return report
