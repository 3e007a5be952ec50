"""What btseg writes, written once: the atomic writer, and the files of a prediction.

    atomic_write_json("models/x/threshold.json", payload)   # temporary file, fsync, rename
    mask_png(mask), probability_png16(probability_map), labelme_json(mask, "x.png", "benign")

Every file btseg writes goes through ``atomic_write_bytes``: a temporary file in the same
folder (mode 0644), flushed and fsynced, then renamed over the target, so a crash never leaves
a half-written file that looks whole. The prediction files are the same bytes whether `btseg
predict` writes them or the Segment page offers them as downloads.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------------------------
# The atomic writer


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path`` (folders created), then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; btseg's files are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy arrays and scalars (a scalar's tolist is its item)
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _finite(value: Any) -> Any:
    """NaN and infinities become None so that the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def json_bytes(payload: Any, indent: int | None = 2) -> bytes:
    """``payload`` as strict JSON (NumPy values converted, NaN -> null), UTF-8, newline-ended."""
    plain = json.loads(json.dumps(payload, default=_json_default))
    return (json.dumps(_finite(plain), indent=indent, allow_nan=False) + "\n").encode("utf-8")


def atomic_write_json(path: str | Path, payload: Any, indent: int | None = 2) -> None:
    """Write ``payload`` as indented strict JSON atomically."""
    atomic_write_bytes(path, json_bytes(payload, indent))


def csv_text(rows: Iterable[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Dict rows as CSV with a header; columns default to the first row's keys."""
    rows = list(rows)
    if columns is None:
        columns = list(rows[0]) if rows else []
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def atomic_write_csv(
    path: str | Path, rows: Iterable[dict[str, Any]], columns: Sequence[str] | None = None
) -> None:
    """Write dict rows as CSV with a header atomically."""
    atomic_write_text(path, csv_text(rows, columns))


# ------------------------------------------------------------------------------------------------
# The files of a prediction


def mask_png(mask: np.ndarray) -> bytes:
    """A (H, W) mask as an 8-bit grayscale PNG (0 background, 255 lesion) at its resolution."""
    import cv2

    ok, encoded = cv2.imencode(".png", (np.asarray(mask) > 0).astype(np.uint8) * 255)
    if not ok:
        raise ValueError(f"the mask {np.shape(mask)} cannot be encoded as PNG")
    return encoded.tobytes()


def gray_png(pixels: np.ndarray) -> bytes:
    """A (H, W) uint8 grayscale image as an 8-bit PNG."""
    import cv2

    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels, dtype=np.uint8))
    if not ok:
        raise ValueError(f"the image {np.shape(pixels)} cannot be encoded as PNG")
    return encoded.tobytes()


def probability_png16(probability_map: np.ndarray) -> bytes:
    """A (H, W) probability map as a 16-bit grayscale PNG: value = round(probability × 65535)."""
    import cv2

    values = np.rint(np.clip(np.asarray(probability_map, dtype=np.float64), 0, 1) * 65535)
    ok, encoded = cv2.imencode(".png", values.astype(np.uint16))
    if not ok:
        raise ValueError(f"the map {np.shape(probability_map)} cannot be encoded as PNG")
    return encoded.tobytes()


def labelme_json(mask: np.ndarray, image_name: str, label: str = "tumor") -> bytes:
    """The lesions of a (H, W) mask as LabelMe 5.x JSON (one rectangle and one polygon per
    lesion), readable by LabelMe and by btseg.data.labelme.read_annotation."""
    from btseg.data.labelme import annotation_to_json, mask_to_lesions

    height, width = np.shape(mask)[:2]
    payload = annotation_to_json(mask_to_lesions(mask, label=label), image_name, height, width)
    return json_bytes(payload)


def output_stem(name: str) -> str:
    """A file-name stem for downloads: the image's stem, safe characters only."""
    stem = Path(name).stem or "image"
    safe = "".join(
        character if character.isalnum() or character in "-_." else "_" for character in stem
    )
    return safe.strip("._") or "image"
