"""Fixtures for the dashboard tests: a tiny synthetic dataset and the environment pointing at it."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TINY_IMAGES = 40
TINY_SEED = 1


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-image synthetic BTXRD-format dataset, generated once per test session."""
    from btseg.data.phantom import generate

    return generate(tmp_path_factory.mktemp("btxrd") / "synthetic", n=TINY_IMAGES, seed=TINY_SEED)


@pytest.fixture
def app_env(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point BTSEG_DATA_DIR at the tiny dataset and the cache and models folders at tmp_path."""
    monkeypatch.setenv("BTSEG_DATA_DIR", str(tiny_dataset))
    monkeypatch.setenv("BTSEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BTSEG_MODELS_DIR", str(tmp_path / "models"))
    return tiny_dataset
