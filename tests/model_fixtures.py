"""Tiny trained and evaluated models for the page tests (session-scoped, slow).

Use in a test module of tests/app/:

    import model_fixtures

    # Module-level names, where pytest looks for fixtures. (`from model_fixtures import
    # models_env` works too, but ruff then reports each test's argument as a redefinition.)
    trained_models = model_fixtures.trained_models
    models_env = model_fixtures.models_env

    @pytest.mark.slow
    def test_something(trained_models, monkeypatch): ...

`trained_models` trains the basic U-Net, the attention U-Net and the classifier on the tiny
synthetic dataset of conftest.py with the "tiny" profile, evaluates them on its test split and
returns a TrainedModels (models_dir, cache_dir, data_dir). The classifier is shrunk further (32 px,
one epoch) because DenseNet121 dominates the time otherwise. The models are built once per test
session, however many test modules import the fixture.

To rerun page tests without training again, build the models once and point the fixture at them:

    PYTHONPATH=. .venv/bin/python tests/model_fixtures.py /tmp/btseg-test-models
    BTSEG_TEST_MODELS_ROOT=/tmp/btseg-test-models .venv/bin/pytest tests/app -m slow
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Model -> training overrides on top of the tiny profile.
TINY_OVERRIDES = {
    "basic": {},
    "attention": {},
    "classifier": {"input_size": 32, "epochs": 1, "fine_tune_epochs": 0},
}
BOOTSTRAP_RESAMPLES = 50

_BUILT: dict[str, TrainedModels] = {}


@dataclass(frozen=True)
class TrainedModels:
    models_dir: Path
    cache_dir: Path
    data_dir: Path


def build_models(data_dir: Path, models_dir: Path, cache_dir: Path,
                 models: tuple[str, ...] = ("basic", "attention", "classifier")) -> TrainedModels:
    """Train (tiny) and evaluate each model into models_dir; returns the folders."""
    from btseg.evaluation import evaluate_run
    from btseg.train import train_model

    for name in models:
        run = train_model(name, data_dir, models_dir, profile="tiny",
                          overrides=TINY_OVERRIDES[name], progress=lambda line: None,
                          cache_dir=cache_dir)
        evaluate_run(run, data_dir, cache_dir=cache_dir, log=None,
                     n_resamples=BOOTSTRAP_RESAMPLES)
    from btseg.gate import fit_for_dataset

    fit_for_dataset(data_dir, models_dir, cache_dir=cache_dir)
    return TrainedModels(models_dir=models_dir, cache_dir=cache_dir, data_dir=data_dir)


def reused_models() -> TrainedModels | None:
    """The folder named by BTSEG_TEST_MODELS_ROOT (data/, models/, cache/ as `python
    tests/model_fixtures.py ROOT` writes them), when set: reruns skip the training."""
    root = os.environ.get("BTSEG_TEST_MODELS_ROOT", "").strip()
    if not root:
        return None
    from btseg.evaluation import is_evaluated

    models = TrainedModels(Path(root) / "models", Path(root) / "cache", Path(root) / "data")
    runs = ("basic_unet", "attention_unet", "classifier")
    if not all(is_evaluated(models.models_dir / run) for run in runs):
        pytest.fail(f"BTSEG_TEST_MODELS_ROOT={root} holds no evaluated {', '.join(runs)}; "
                    f"build them with `python tests/model_fixtures.py {root}`")
    return models


def point_env_at(folders: TrainedModels, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set BTSEG_DATA_DIR, BTSEG_MODELS_DIR and BTSEG_CACHE_DIR to the folders of `folders` (a
    TrainedModels, or anything else with data_dir, models_dir and cache_dir)."""
    monkeypatch.setenv("BTSEG_DATA_DIR", str(folders.data_dir))
    monkeypatch.setenv("BTSEG_MODELS_DIR", str(folders.models_dir))
    monkeypatch.setenv("BTSEG_CACHE_DIR", str(folders.cache_dir))


@pytest.fixture(scope="session")
def trained_models(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedModels:
    """The three tiny models, trained and evaluated once per session (a few minutes on two
    cores, most of it the classifier)."""
    key = str(tiny_dataset)
    if key not in _BUILT:  # two test modules importing the fixture still share one build
        reused = reused_models()
        if reused is not None:
            _BUILT[key] = reused
        else:
            root = tmp_path_factory.mktemp("trained")
            _BUILT[key] = build_models(tiny_dataset, root / "models", root / "cache")
    return _BUILT[key]


@pytest.fixture
def models_env(trained_models: TrainedModels, monkeypatch: pytest.MonkeyPatch) -> TrainedModels:
    """Point BTSEG_DATA_DIR, BTSEG_MODELS_DIR and BTSEG_CACHE_DIR at the trained models."""
    point_env_at(trained_models, monkeypatch)
    return trained_models


def main(root: str) -> None:
    """Build the fixture's dataset and models under `root` for BTSEG_TEST_MODELS_ROOT."""
    from btseg.synthetic import generate

    folder = Path(root)
    data = folder / "data"
    if not (data / "SYNTHETIC.txt").is_file():
        generate(data, n=40, seed=1)  # as tests/conftest.py's tiny_dataset
    build_models(data, folder / "models", folder / "cache")
    print(f"export BTSEG_TEST_MODELS_ROOT={folder.resolve()}")


if __name__ == "__main__":
    main(sys.argv[1])
