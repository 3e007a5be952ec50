"""Preprocessed array cache (btseg.data.cache) on tiny PNG/JPEG/JSON files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest

from btseg.config import PROJECT_ROOT
from btseg.data import images, labelme
from btseg.data.cache import MIN_IMAGES_FOR_WORKERS, build_cache, data_fingerprint, load_cache
from btseg.errors import ConfigError, DataError

SIZE = 16


def write_png(path, pixels):
    assert cv2.imwrite(str(path), pixels)
    return str(path)


def write_annotation(path, polygon, height, width, label="osteochondroma"):
    """A LabelMe file as BTXRD writes it: one rectangle and one polygon per lesion."""
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    shapes = [
        {"label": label, "points": [[min(xs), min(ys)], [max(xs), max(ys)]], "group_id": None,
         "description": "", "shape_type": "rectangle", "flags": {}, "mask": None},
        {"label": label, "points": [list(point) for point in polygon], "group_id": None,
         "description": "", "shape_type": "polygon", "flags": {}, "mask": None},
    ]  # fmt: skip
    document = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": "x.png",
                "imageData": None, "imageHeight": height, "imageWidth": width}  # fmt: skip
    path.write_text(json.dumps(document))
    return str(path)


def table_row(image_id, image_path, label, annotation_path=""):
    return {"image_id": image_id, "image_path": image_path, "annotation_path": annotation_path,
            "label": label, "has_image": bool(image_path)}  # fmt: skip


@pytest.fixture
def dataset(tmp_path):
    """normal 20x40 (value 200), benign 30x30 (value 100) with a lesion in the left half,
    a corrupt JPEG, and a row whose image is missing."""
    folder = tmp_path / "data"
    folder.mkdir()
    normal = write_png(folder / "IMG000001.png", np.full((20, 40), 200, np.uint8))
    benign = write_png(folder / "IMG000002.png", np.full((30, 30), 100, np.uint8))
    annotation = write_annotation(
        folder / "IMG000002.json", [(2, 2), (12, 2), (12, 27), (2, 27)], 30, 30
    )
    corrupt = folder / "IMG000003.jpeg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    rows = [
        table_row("IMG000001.jpeg", normal, "normal"),
        table_row("IMG000002.jpeg", benign, "benign", annotation),
        table_row("IMG000003.jpeg", str(corrupt), "malignant"),
        table_row("IMG000004.jpeg", "", "normal"),
    ]
    return pd.DataFrame(rows)


class Calls:
    def __init__(self):
        self.calls = []

    def __call__(self, done, total):
        self.calls.append((done, total))


def test_build_gives_letterboxed_arrays_and_skips_the_corrupt_image(dataset, tmp_path):
    progress = Calls()
    cached = build_cache(dataset, SIZE, cache_dir=tmp_path / "cache", workers=1, progress=progress)
    assert cached.image_ids == ["IMG000001.jpeg", "IMG000002.jpeg"]
    assert [image_id for image_id, _ in cached.skipped] == ["IMG000003.jpeg"]
    assert cached.skipped[0][1]  # a reason is given
    assert cached.images.shape == cached.masks.shape == (2, SIZE, SIZE)
    assert cached.images.dtype == cached.masks.dtype == np.uint8
    assert cached.labels.dtype == np.int8
    assert cached.labels.tolist() == [0, 1]
    assert progress.calls[0] == (0, 3) and progress.calls[-1] == (3, 3)

    # 20x40 -> 8x16, padded with 4 rows of zeros above and below.
    expected = np.zeros((SIZE, SIZE), np.uint8)
    expected[4:12] = 200
    np.testing.assert_array_equal(cached.images[0], expected)
    np.testing.assert_array_equal(cached.masks[0], 0)
    # 30x30 -> 16x16, no padding.
    np.testing.assert_array_equal(cached.images[1], 100)
    mask = np.asarray(cached.masks[1])
    assert set(np.unique(mask)) == {0, 1}
    assert mask[8, 4] == 1 and mask[8, 12] == 0 and mask[0, 4] == 0  # inside, right of, above
    assert cached.fingerprint == data_fingerprint(dataset)
    assert os.path.basename(cached.path) == f"{cached.fingerprint}-{SIZE}"


def test_arrays_match_the_shared_transforms(dataset, tmp_path):
    gradient = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (37, 1))  # 37x50: shrinks, pads
    path = write_png(tmp_path / "data" / "IMG000005.png", gradient)
    table = pd.concat([dataset, pd.DataFrame([table_row("IMG000005.jpeg", path, "normal")])])
    cached = build_cache(table, SIZE, cache_dir=tmp_path / "cache", workers=1)
    np.testing.assert_array_equal(
        images.preprocess(cached.images[2], SIZE), images.preprocess(gradient, SIZE)
    )
    pixels = images.read_image(dataset.loc[1, "image_path"]).pixels
    annotation = labelme.read_annotation(
        dataset.loc[1, "annotation_path"], image_shape=pixels.shape
    )
    mask = labelme.lesions_mask(annotation.lesions, pixels.shape)
    np.testing.assert_array_equal(cached.masks[1], images.preprocess_mask(mask, SIZE))


def test_second_call_reuses_without_decoding(dataset, tmp_path):
    first = build_cache(dataset, SIZE, cache_dir=tmp_path / "cache", workers=1)
    stamp = os.stat(os.path.join(first.path, "images.npy")).st_mtime_ns
    progress = Calls()
    second = build_cache(dataset, SIZE, cache_dir=tmp_path / "cache", workers=1, progress=progress)
    assert progress.calls == []
    assert second.path == first.path
    assert os.stat(os.path.join(second.path, "images.npy")).st_mtime_ns == stamp
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(second.images, first.images)
    assert second.skipped == first.skipped
    assert load_cache(dataset, SIZE, cache_dir=tmp_path / "cache").path == first.path
    assert load_cache(dataset, SIZE * 2, cache_dir=tmp_path / "cache") is None


def test_touching_a_file_rebuilds(dataset, tmp_path):
    first = build_cache(dataset, SIZE, cache_dir=tmp_path / "cache", workers=1)
    annotation = dataset.loc[1, "annotation_path"]
    status = os.stat(annotation)
    os.utime(annotation, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    assert data_fingerprint(dataset) != first.fingerprint
    progress = Calls()
    second = build_cache(dataset, SIZE, cache_dir=tmp_path / "cache", workers=1, progress=progress)
    assert progress.calls[-1] == (3, 3)
    assert second.path != first.path
    arrays = sorted(name for name in os.listdir(tmp_path / "cache" / "arrays"))
    assert arrays == sorted([os.path.basename(first.path), os.path.basename(second.path)])


def test_fingerprint_follows_files_and_labels_not_row_order(dataset):
    fingerprint = data_fingerprint(dataset)
    assert len(fingerprint) == 16
    assert data_fingerprint(dataset.iloc[::-1]) == fingerprint
    assert (
        data_fingerprint(dataset.assign(label=["normal", "malignant", "malignant", "normal"]))
        != fingerprint
    )
    with open(dataset.loc[0, "image_path"], "ab") as stream:
        stream.write(b"\0")
    assert data_fingerprint(dataset) != fingerprint


def repeated(dataset, count):
    """`dataset` plus `count` rows reusing its normal and benign files (enough to start workers)."""
    extra = [
        table_row(
            f"IMG{n:06d}.jpeg", *dataset.loc[n % 2, ["image_path", "label", "annotation_path"]]
        )
        for n in range(5, 5 + count)
    ]
    return pd.concat([dataset, pd.DataFrame(extra)], ignore_index=True)


def test_two_workers_give_the_same_arrays(dataset, tmp_path):
    table = repeated(dataset, MIN_IMAGES_FOR_WORKERS)
    serial = build_cache(table, SIZE, cache_dir=tmp_path / "one", workers=1)
    progress = Calls()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the in-process fallback warns: workers must have run
        parallel = build_cache(
            table, SIZE, cache_dir=tmp_path / "two", workers=2, progress=progress
        )
    assert len(parallel.image_ids) == MIN_IMAGES_FOR_WORKERS + 2
    assert parallel.image_ids == serial.image_ids
    np.testing.assert_array_equal(parallel.images, serial.images)
    np.testing.assert_array_equal(parallel.masks, serial.masks)
    np.testing.assert_array_equal(parallel.labels, serial.labels)
    assert parallel.skipped == serial.skipped
    total = MIN_IMAGES_FOR_WORKERS + 3
    assert progress.calls[0] == (0, total) and progress.calls[-1] == (total, total)
    assert [done for done, _ in progress.calls] == sorted(done for done, _ in progress.calls)


def test_workers_that_cannot_start_fall_back_to_this_process(dataset, tmp_path):
    # Code piped on stdin cannot be re-imported by spawned workers.
    table = repeated(dataset, MIN_IMAGES_FOR_WORKERS)
    table.to_pickle(tmp_path / "table.pkl")
    script = (
        "import pandas as pd\n"
        "from btseg.data.cache import build_cache\n"
        f"table = pd.read_pickle({str(tmp_path / 'table.pkl')!r})\n"
        f"cached = build_cache(table, {SIZE}, cache_dir={str(tmp_path / 'cache')!r}, workers=2)\n"
        "print(len(cached.image_ids), len(cached.skipped))\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-"],
        input=script,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(MIN_IMAGES_FOR_WORKERS + 2), "1"]
    assert "in this process" in done.stderr


def test_tumour_image_without_annotation_is_skipped(dataset, tmp_path):
    table = dataset.copy()
    table.loc[1, "annotation_path"] = ""
    cached = build_cache(table, SIZE, cache_dir=tmp_path / "cache", workers=1)
    assert cached.image_ids == ["IMG000001.jpeg"]
    assert dict(cached.skipped)["IMG000002.jpeg"].count("annotation") >= 1


def test_damaged_cache_folder_is_rebuilt(dataset, tmp_path):
    first = build_cache(dataset, SIZE, cache_dir=tmp_path / "cache", workers=1)
    os.remove(os.path.join(first.path, "masks.npy"))
    assert load_cache(dataset, SIZE, cache_dir=tmp_path / "cache") is None
    second = build_cache(dataset, SIZE, cache_dir=tmp_path / "cache", workers=1)
    np.testing.assert_array_equal(second.masks[1], first.masks[1])


def test_positions_leave_out_skipped_ids(dataset, tmp_path):
    cached = build_cache(dataset, SIZE, cache_dir=tmp_path / "cache", workers=1)
    assert cached.positions(["IMG000002.jpeg", "IMG000003.jpeg", "IMG000001.jpeg"]).tolist() == [
        1,
        0,
    ]


def test_bad_arguments_and_nothing_to_cache(dataset, tmp_path):
    for size in (0, 7.5, "16", True):
        with pytest.raises(ConfigError, match="size"):
            build_cache(dataset, size, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="workers"):
        build_cache(dataset, SIZE, cache_dir=tmp_path, workers=0)
    with pytest.raises(DataError, match="none of the 1 images"):
        build_cache(dataset.iloc[[2]], SIZE, cache_dir=tmp_path)
    with pytest.raises(DataError, match="no row"):
        build_cache(dataset.iloc[[3]], SIZE, cache_dir=tmp_path)
    assert not [name for name in os.listdir(tmp_path / "arrays") if name.startswith(".tmp")]


def test_synthetic_dataset_end_to_end(tmp_path):
    """The real table reader, the synthetic dataset, the split and the cache together."""
    from btseg.config import CLASS_NAMES
    from btseg.data.btxrd import open_dataset
    from btseg.data.splits import split_for, surrogate_patient_ids
    from btseg.synthetic import generate

    generate(tmp_path / "data", n=20, seed=0)
    dataset = open_dataset(tmp_path / "data")
    usable = dataset.usable
    split = split_for(dataset, cache_dir=tmp_path / "cache")
    cached = build_cache(dataset.table, 64, cache_dir=tmp_path / "cache", workers=1)

    assert cached.skipped == []
    assert cached.image_ids == usable["image_id"].tolist()
    assert cached.labels.tolist() == [CLASS_NAMES.index(label) for label in usable["label"]]
    tumour = cached.labels > 0
    assert tumour.any() and (~tumour).any()
    assert (np.asarray(cached.masks[tumour]).reshape(int(tumour.sum()), -1).max(axis=1) == 1).all()
    assert np.asarray(cached.masks[~tumour]).max() == 0
    assert cached.fingerprint == split.fingerprint

    assert sorted(split.assignment) == sorted(usable["image_id"])
    parts = dataset.table["image_id"].map(split.assignment)
    assert (parts.groupby(surrogate_patient_ids(dataset.table)).nunique() <= 1).all()
