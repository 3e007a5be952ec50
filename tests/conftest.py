"""Fixtures shared by the whole suite: a tiny synthetic dataset and tiny trained models.

Both are built once per test session; model_fixtures.py says how to reuse prebuilt models.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from model_fixtures import models_env, trained_models  # noqa: F401  (pytest fixtures)

TINY_IMAGES = 40
TINY_SEED = 1


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-image synthetic BTXRD-format dataset, generated once per test session."""
    from btseg.synthetic import generate

    return generate(tmp_path_factory.mktemp("btxrd") / "synthetic", n=TINY_IMAGES, seed=TINY_SEED)
