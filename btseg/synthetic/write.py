"""Writing the synthetic dataset: the folder swap, the process pool that renders the images,
the LabelMe JSON annotations, dataset.xlsx and the SYNTHETIC.txt marker."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import cv2
import numpy as np

from btseg.config import is_synthetic
from btseg.errors import ConfigError
from btseg.synthetic.plan import COLUMNS, ImageSpec, plan_dataset
from btseg.synthetic.render import render_radiograph

MARKER_NAME = "SYNTHETIC.txt"
MIN_IMAGES = 20


def generate(
    out_dir: str | Path,
    n: int = 600,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    dicom: bool = False,
) -> Path:
    """Write a synthetic BTXRD-format dataset of `n` images to `out_dir`; return its path.

    The output is the same, byte for byte (images and JSON), for the same `n` and `seed`.
    Images are rendered by two worker processes. The set is written to a hidden folder beside
    `out_dir` and renamed at the end, so an interrupted run never leaves a complete-looking
    folder. A previous synthetic set (one with the SYNTHETIC.txt marker) at `out_dir` is
    replaced.

    Args:
        out_dir: folder to create.
        n: number of images, at least 20.
        seed: non-negative integer.
        progress: called as progress(done, total) while images are rendered.
        dicom: also write every image as a DICOM file in dicom/ (btseg.synthetic.dicom); the
            JPEG images and the table are the same either way.

    Raises:
        ConfigError: `n` or `seed` is invalid, or `out_dir` holds something other than a
            synthetic dataset.
    """
    out_dir = Path(out_dir).expanduser()
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < MIN_IMAGES:
        raise ConfigError(
            f"the number of images must be an integer of at least {MIN_IMAGES}, got {n!r}",
            where="n",
            fix=f"Ask for {MIN_IMAGES} or more images",
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(
            f"the seed must be a non-negative integer, got {seed!r}",
            where="seed",
            fix="Pass a seed such as 0",
        )
    n, seed = int(n), int(seed)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ConfigError(
                "the output path exists and is a file, not a folder",
                where=str(out_dir),
                fix="Choose a new folder for the synthetic dataset",
            )
        if any(out_dir.iterdir()) and not is_synthetic(out_dir):
            raise ConfigError(
                "the output folder is not empty and is not a synthetic dataset, so it is not "
                "overwritten",
                where=str(out_dir),
                fix="Choose a new or empty folder, or remove this one",
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    try:
        _write_dataset(partial, n, seed, progress)
        if dicom:
            from btseg.synthetic.dicom import write_dicom_files

            write_dicom_files(partial, seed=seed, n=n)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            out_dir.rename(old)
            partial.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            partial.rename(out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out_dir


def _write_dataset(folder: Path, n: int, seed: int, progress) -> None:
    """Write a set of `n` images for `seed` into the new folder `folder`."""
    import pandas as pd

    from btseg.data.labelme import Lesion, polygon_box, write_annotation

    image_dir = folder / "images"
    annotation_dir = folder / "Annotations"
    image_dir.mkdir(parents=True)
    annotation_dir.mkdir()
    plan = plan_dataset(n, seed, image_dir)
    rows, disk_names = plan.rows, plan.disk_names

    results: dict[int, tuple[list, int, int]] = {}

    def record(result: tuple) -> None:
        index, lesions, height, width = result
        results[index] = (lesions, height, width)
        if progress is not None:
            progress(len(results), n)

    # Spawned, not forked: a fork of a process whose OpenCV thread pool has run can deadlock.
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(2, os.cpu_count() or 1))
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_render_to_file, spec) for spec in plan.specs]
            try:
                for future in as_completed(futures):
                    record(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    except BrokenProcessPool:
        # Workers cannot start when the caller's main script cannot be re-imported (code piped
        # on stdin, a script without an `if __name__ == "__main__"` guard): render here instead.
        for spec in plan.specs:
            if spec.index not in results:
                record(_render_to_file(spec))
    for source, copy in plan.duplicates:
        shutil.copyfile(image_dir / disk_names[source], image_dir / disk_names[copy])
        results[copy] = results[source]

    for index, row in enumerate(rows):
        if row["tumor"] != 1:
            continue
        lesions, height, width = results[index]
        stem = row["image_id"].rsplit(".", 1)[0]
        write_annotation(
            annotation_dir / f"{stem}.json",
            [Lesion(label, polygon, polygon_box(polygon)) for label, polygon in lesions],
            disk_names[index],
            height,
            width,
        )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table.to_excel(folder / "dataset.xlsx", sheet_name="Sheet1", index=False, engine="openpyxl")
    (folder / MARKER_NAME).write_text(
        f"Synthetic BTXRD-format dataset generated by btseg (seed {seed}, n {n}). "
        "Not real patient data.\n",
        encoding="utf-8",
    )
    if progress is not None:
        progress(n, n)


def _render_to_file(spec: ImageSpec) -> tuple[int, list[tuple[str, np.ndarray]], int, int]:
    """Worker: render one image, write it as JPEG to spec.path; return its lesions and size."""
    cv2.setNumThreads(1)
    pixels, lesions = render_radiograph(spec)
    if spec.rgb:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, spec.quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {spec.path}")
    Path(spec.path).write_bytes(encoded.tobytes())
    return spec.index, lesions, spec.height, spec.width
