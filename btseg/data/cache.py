"""Decoded, letterboxed images and masks on disk, keyed by a fingerprint of the data and the size.

Layout: <cache_dir>/arrays/<fingerprint>-<size>/ holds images.npy (N,size,size) uint8,
masks.npy (N,size,size) uint8 {0,1}, labels.npy (N,) int8 and meta.json (ids, skipped rows).
A folder is written under a temporary name and renamed when complete, so a crash never leaves a
half-written cache that looks whole. The data fingerprint changes whenever an image or annotation
file, or a table value the split depends on, changes; a changed dataset therefore gets a new folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from btseg.config import CLASS_NAMES
from btseg.errors import BtsegError, ConfigError, DataError

if TYPE_CHECKING:  # pandas is not imported at run time: worker processes start faster
    import pandas as pd

#: Bump when the stored arrays would differ for the same data (geometry, interpolation, layout).
CACHE_VERSION = 1
#: Temporary build folders older than this are leftovers of a crashed build and are removed.
STALE_BUILD_SECONDS = 6 * 3600
#: Below this many images, starting worker processes costs more than it saves.
MIN_IMAGES_FOR_WORKERS = 16
#: Workers start as fresh interpreters, not forks: the caller may hold threads (Streamlit) or
#: TensorFlow state. Each re-imports the caller's main script unless it runs as `python -m`.
_START_METHOD = "spawn"

_FINGERPRINT_COLUMNS = ("label", "subtype", "center", "age", "gender", "site", "region")


def _stat(path: Any) -> tuple[int, int]:
    """(size in bytes, mtime in ns), or (-1, -1) when the path is empty or cannot be read."""
    if not isinstance(path, str | os.PathLike) or not str(path):
        return (-1, -1)
    try:
        status = os.stat(path)
    except OSError:
        return (-1, -1)
    return (status.st_size, status.st_mtime_ns)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def data_fingerprint(table: pd.DataFrame) -> str:
    """16 hex digits identifying the data: per row the image id, the table values the split and
    labels depend on, and the name, size and mtime of the image and annotation files.

    Only os.stat is called (no file is read), so it takes milliseconds for thousands of images.
    Moving the dataset folder keeps the fingerprint; touching or replacing a file changes it.
    """
    if "image_id" not in table.columns:
        raise DataError(
            "the table has no image_id column",
            where="tidy table",
            fix="Build the table with btseg.data.btxrd.load_table",
        )
    count = len(table)

    def column(name: str) -> list[Any]:
        return table[name].tolist() if name in table.columns else [""] * count

    values = [column(name) for name in _FINGERPRINT_COLUMNS]
    rows = []
    for position, (image_id, image_path, annotation_path) in enumerate(
        zip(column("image_id"), column("image_path"), column("annotation_path"), strict=True)
    ):
        rows.append(
            [_text(image_id)]
            + [_text(value[position]) for value in values]
            + [os.path.basename(_text(image_path)), *_stat(image_path)]
            + [os.path.basename(_text(annotation_path)), *_stat(annotation_path)]
        )
    rows.sort()
    digest = hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode())
    return digest.hexdigest()[:16]


@dataclass
class CachedArrays:
    """Model-size arrays of every usable image, in table order.

    images: (N,size,size) uint8 grayscale from images.letterbox_image, so
        `images.preprocess(images[i], size)` equals `images.preprocess(original_i, size)` exactly.
    masks: (N,size,size) uint8 {0,1}, letterboxed with images.preprocess_mask; zeros for normal images.
    labels: (N,) int8 index into CLASS_NAMES.
    skipped: (image_id, reason) of rows that could not be cached (unreadable image or annotation).
    path: the cache folder; arrays loaded from it are read-only memory maps.
    """

    image_ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    size: int
    fingerprint: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    path: str = ""

    def positions(self, image_ids: Iterable[str]) -> np.ndarray:
        """(K,) int64 positions of the given ids that are in the cache (skipped ids are left out)."""
        where = {image_id: position for position, image_id in enumerate(self.image_ids)}
        return np.array([where[i] for i in image_ids if i in where], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Per-image work (runs in worker processes)


def _cache_one(
    image_path: str, annotation_path: str, label: str, size: int
) -> tuple[np.ndarray, np.ndarray]:
    from btseg.data import images, labelme

    pixels = images.read_image(image_path).pixels
    image = images.letterbox_image(pixels, size)
    if label == "normal":
        return image, np.zeros((size, size), dtype=np.uint8)
    if not annotation_path:
        raise DataError(
            f"{label} image has no annotation file, so its mask is unknown",
            where=image_path,
            fix="Add the LabelMe JSON to Annotations/ with the same stem",
        )
    annotation = labelme.read_annotation(annotation_path, image_shape=pixels.shape[:2])
    mask = labelme.lesions_mask(
        annotation.lesions, (annotation.height, annotation.width), target_shape=pixels.shape[:2]
    )
    return image, images.preprocess_mask(mask, size)


def _cache_chunk(
    tasks: list[tuple[int, str, str, str]], size: int
) -> list[tuple[int, Any, Any, str]]:
    """[(slot, image_path, annotation_path, label)] -> [(slot, image|None, mask|None, reason)]."""
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    results = []
    for slot, image_path, annotation_path, label in tasks:
        try:
            image, mask = _cache_one(image_path, annotation_path, label, size)
        except BtsegError as error:
            results.append((slot, None, None, str(error)))
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the build
            results.append((slot, None, None, f"{type(error).__name__}: {error}"))
        else:
            results.append((slot, image, mask, ""))
    return results


# ---------------------------------------------------------------------------------------------
# Building and loading


def _folder_for(fingerprint: str, size: int, cache_dir: str | Path | None) -> Path:
    from btseg.config import cache_dir as default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "arrays" / f"{fingerprint}-{size}"


def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 8 <= size <= 4096:
        raise ConfigError(f"cache size {size!r} is not an integer from 8 to 4096", where="size")
    return int(size)


def _usable_rows(table: pd.DataFrame) -> pd.DataFrame:
    if "has_image" in table.columns:
        return table.loc[table["has_image"].fillna(False).astype(bool)]
    return table.loc[[bool(path) and os.path.isfile(path) for path in table["image_path"]]]


def _read_folder(folder: Path, fingerprint: str, size: int) -> CachedArrays | None:
    """The cache in `folder`, or None when it is absent, from another version or inconsistent."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if (
            meta.get("cache_version") != CACHE_VERSION
            or meta.get("fingerprint") != fingerprint
            or meta.get("size") != size
        ):
            return None
        image_ids = [str(image_id) for image_id in meta["image_ids"]]
        arrays = {
            name: np.load(folder / f"{name}.npy", mmap_mode="r")
            for name in ("images", "masks", "labels")
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    count = len(image_ids)
    if (
        arrays["images"].shape != (count, size, size)
        or arrays["masks"].shape != (count, size, size)
        or arrays["labels"].shape != (count,)
    ):
        return None
    return CachedArrays(
        image_ids=image_ids,
        images=arrays["images"],
        masks=arrays["masks"],
        labels=arrays["labels"],
        size=size,
        fingerprint=fingerprint,
        skipped=[(str(image_id), str(reason)) for image_id, reason in meta.get("skipped", [])],
        path=str(folder),
    )


def load_cache(
    table: pd.DataFrame, size: int, cache_dir: str | Path | None = None
) -> CachedArrays | None:
    """The cached arrays for this table and size if a complete cache exists, else None. Decodes nothing."""
    size = _check_size(size)
    fingerprint = data_fingerprint(table)
    return _read_folder(_folder_for(fingerprint, size, cache_dir), fingerprint, size)


def _remove_stale_builds(arrays_dir: Path) -> None:
    now = time.time()
    for folder in arrays_dir.glob(".tmp-*"):
        try:
            if now - folder.stat().st_mtime > STALE_BUILD_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue


def _chunks(tasks: list[Any], workers: int) -> list[list[Any]]:
    # Small enough that progress moves and both workers stay busy; large enough to amortise pickling.
    chunk = max(1, min(16, math.ceil(len(tasks) / (4 * max(1, workers)))))
    return [tasks[start : start + chunk] for start in range(0, len(tasks), chunk)]


def build_cache(
    table: pd.DataFrame,
    size: int,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> CachedArrays:
    """Decode, letterbox and store every usable image and its mask once; reuse it afterwards.

    Args:
        table: tidy table (btxrd.load_table): image_id, image_path, annotation_path, label,
            has_image; rows without an image are left out.
        size: side of the square arrays, in pixels.
        cache_dir: defaults to btseg.config.cache_dir(); arrays go to arrays/<fingerprint>-<size>/.
        workers: processes decoding in parallel; 1 decodes in this process.
        progress: called as progress(done, total) while building; not called when reusing.

    Returns:
        CachedArrays backed by read-only memory maps. Images or annotations that cannot be read
        are listed in `skipped` with the reason; they never stop the build.

    Raises:
        DataError when no row has a usable image or none of them could be decoded.
    """
    size = _check_size(size)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers {workers!r} is not a positive integer", where="workers")
    fingerprint = data_fingerprint(table)
    folder = _folder_for(fingerprint, size, cache_dir)
    cached = _read_folder(folder, fingerprint, size)
    if cached is not None:
        return cached

    for name in ("image_path", "label"):
        if name not in table.columns:
            raise DataError(
                f"the table has no {name} column",
                where="tidy table",
                fix="Build the table with btseg.data.btxrd.load_table",
            )
    rows = _usable_rows(table)
    if rows.empty:
        raise DataError(
            "no row of the table has an image file, so there is nothing to cache",
            where="tidy table",
            fix="Check that the images/ folder sits beside dataset.xlsx",
        )
    image_ids = rows["image_id"].astype(str).tolist()
    labels = [str(label).strip().lower() for label in rows["label"]]
    annotation_paths = (
        rows["annotation_path"].fillna("").astype(str).tolist()
        if "annotation_path" in rows.columns
        else [""] * len(rows)
    )
    tasks = []
    skipped: dict[int, str] = {}
    for slot, (image_path, annotation_path, label) in enumerate(
        zip(rows["image_path"].astype(str), annotation_paths, labels, strict=True)
    ):
        if label in CLASS_NAMES:
            tasks.append((slot, image_path, annotation_path, label))
        else:
            skipped[slot] = f"unknown label {label!r}; expected one of {', '.join(CLASS_NAMES)}"

    arrays_dir = folder.parent
    arrays_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(arrays_dir)
    building = arrays_dir / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    building.mkdir()
    try:
        total = len(rows)
        full_images = np.lib.format.open_memmap(
            building / "images.full.npy", mode="w+", dtype=np.uint8, shape=(total, size, size)
        )
        full_masks = np.lib.format.open_memmap(
            building / "masks.full.npy", mode="w+", dtype=np.uint8, shape=(total, size, size)
        )
        done = len(skipped)
        if progress is not None:
            progress(done, total)
        for results in _run_chunks(_chunks(tasks, workers), size, workers):
            for slot, image, mask, reason in results:
                if reason:
                    skipped[slot] = reason
                else:
                    full_images[slot] = image
                    full_masks[slot] = mask
            done += len(results)
            if progress is not None:
                progress(done, total)

        kept = [slot for slot in range(total) if slot not in skipped]
        if not kept:
            first = "; ".join(f"{image_ids[s]}: {r}" for s, r in sorted(skipped.items())[:3])
            raise DataError(
                f"none of the {total} images could be cached ({first})",
                where="tidy table",
                fix="Check the image files; btseg reads JPEG, PNG and DICOM",
            )
        _write_kept(building, full_images, full_masks, kept)
        del full_images, full_masks
        np.save(
            building / "labels.npy",
            np.array([CLASS_NAMES.index(labels[s]) for s in kept], dtype=np.int8),
        )
        meta = {
            "cache_version": CACHE_VERSION,
            "fingerprint": fingerprint,
            "size": size,
            "count": len(kept),
            "image_ids": [image_ids[s] for s in kept],
            "skipped": [[image_ids[s], reason] for s, reason in sorted(skipped.items())],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (building / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            os.rename(building, folder)
        except OSError:
            # Another process finished the same cache first, or a broken folder is in the way.
            if _read_folder(folder, fingerprint, size) is None:
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(building, folder)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    cached = _read_folder(folder, fingerprint, size)
    if cached is None:
        raise DataError(
            "the cache just written cannot be read back",
            where=str(folder),
            fix="Delete the folder and retry",
        )
    return cached


def _run_chunks(
    chunks: list[list[Any]], size: int, workers: int
) -> Iterable[list[tuple[int, Any, Any, str]]]:
    """Results chunk by chunk, as they finish: in worker processes when workers > 1 and there
    are enough images to pay for starting them, else in this process."""
    if workers == 1 or sum(len(chunk) for chunk in chunks) < MIN_IMAGES_FOR_WORKERS:
        for chunk in chunks:
            yield _cache_chunk(chunk, size)
        return
    import multiprocessing

    context = multiprocessing.get_context(_START_METHOD)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context)
    pending: dict[Any, list[Any]] = {}
    broken = False
    try:
        pending = {pool.submit(_cache_chunk, chunk, size): chunk for chunk in chunks}
        for future in as_completed(list(pending)):
            results = future.result()
            del pending[future]
            yield results
    except BrokenProcessPool:
        broken = True
    finally:
        # On an error or an interrupted build, do not wait for chunks nobody will read.
        pool.shutdown(wait=True, cancel_futures=True)
    if broken:
        # Workers cannot start when the main script cannot be re-imported (code piped on stdin,
        # a script without an `if __name__ == "__main__"` guard); finish here instead.
        warnings.warn(
            "build_cache: worker processes stopped; decoding the remaining images in this process",
            RuntimeWarning,
            stacklevel=3,
        )
        for chunk in list(pending.values()):
            yield _cache_chunk(chunk, size)


def _write_kept(
    building: Path, full_images: np.ndarray, full_masks: np.ndarray, kept: list[int]
) -> None:
    """Final images.npy and masks.npy holding only the kept slots, copied in blocks to bound memory."""
    for name, full in (("images", full_images), ("masks", full_masks)):
        full.flush()
        if len(kept) == full.shape[0]:
            del full
            os.replace(building / f"{name}.full.npy", building / f"{name}.npy")
            continue
        out = np.lib.format.open_memmap(
            building / f"{name}.npy", mode="w+", dtype=np.uint8, shape=(len(kept), *full.shape[1:])
        )
        for start in range(0, len(kept), 256):
            out[start : start + 256] = full[kept[start : start + 256]]
        out.flush()
        del out
        (building / f"{name}.full.npy").unlink()
