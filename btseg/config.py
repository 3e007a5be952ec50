"""Paths and settings.

Environment variables:
    BTSEG_DATA_DIR    dataset folder (default: data/synthetic, the generated embedded dataset)
    BTSEG_MODELS_DIR  run folders (default: models/)
    BTSEG_CACHE_DIR   preprocessed arrays (default: .cache/)
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

CLASS_NAMES: tuple[str, ...] = ("normal", "benign", "malignant")

#: Size and seed of the embedded synthetic dataset that `make run` generates.
SYNTHETIC_IMAGES = 600
SYNTHETIC_SEED = 0


def default_data_dir() -> Path:
    """Where the embedded synthetic dataset lives."""
    return PROJECT_ROOT / "data" / "synthetic"


def data_dir() -> Path:
    """The configured dataset folder: BTSEG_DATA_DIR, else the synthetic default."""
    value = os.environ.get("BTSEG_DATA_DIR", "").strip()
    return Path(value).expanduser() if value else default_data_dir()


def is_synthetic(path: Path) -> bool:
    """True when `path` is the generated synthetic dataset (it carries a marker file)."""
    return (Path(path) / "SYNTHETIC.txt").is_file()


def models_dir() -> Path:
    """Folder holding one run folder per model (basic_unet/, attention_unet/, classifier/)."""
    value = os.environ.get("BTSEG_MODELS_DIR", "").strip()
    return Path(value).expanduser() if value else PROJECT_ROOT / "models"


def cache_dir() -> Path:
    """Folder for decoded and resized arrays."""
    value = os.environ.get("BTSEG_CACHE_DIR", "").strip()
    return Path(value).expanduser() if value else PROJECT_ROOT / ".cache"
