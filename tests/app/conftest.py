"""Fixtures for the dashboard tests: the environment pointing at the tiny dataset (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_env(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point BTSEG_DATA_DIR at the tiny dataset and the cache and models folders at tmp_path."""
    monkeypatch.setenv("BTSEG_DATA_DIR", str(tiny_dataset))
    monkeypatch.setenv("BTSEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BTSEG_MODELS_DIR", str(tmp_path / "models"))
    return tiny_dataset
