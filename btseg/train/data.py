"""Training data: the split's train and validation images from the cache, and the batches each
model trains on (patches of a segmenter, whole images, or the classifier's lesion regions).

    data = prepare_data(config, data_dir)          # TrainingData: cached arrays + split positions
    batches, extra = segmentation_batches(config, data)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from btseg.train.recipes import TrainConfig, cache_size


@dataclass
class TrainingData:
    """Cached arrays and the rows of each split part used for training."""

    arrays: Any  # btseg.data.cache.CachedArrays
    train: np.ndarray  # positions into arrays
    validation: np.ndarray
    data_dir: Path
    split_id: str
    split_fingerprint: str
    synthetic: bool
    split: Any = None  # btseg.data.splits.Split, saved in the run folder as split.json
    #: (len(arrays), 2) original (height, width) of the train and validation images, (0, 0)
    #: for the others; None when not read (the letterbox geometry is then estimated).
    shapes: np.ndarray | None = None

    def content_boxes(self, positions: np.ndarray) -> np.ndarray:
        """(K, 4) (top, left, bottom, right) of the positions' images inside the letterbox."""
        from btseg.patches import content_box, estimate_content_box

        size = int(self.arrays.images.shape[1])
        boxes = []
        for position in np.asarray(positions, dtype=np.int64):
            shape = None if self.shapes is None else tuple(int(v) for v in self.shapes[position])
            if shape is None or min(shape) < 1:
                boxes.append(estimate_content_box(self.arrays.images[position]))
            else:
                boxes.append(content_box(shape, size))
        return np.asarray(boxes, dtype=np.int64).reshape(-1, 4)


def original_shape(path: str | Path) -> tuple[int, int] | None:
    """(height, width) of an image file as btseg.data.images.read_image returns it (EXIF
    rotation applied), from the header when possible; None when it cannot be read."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
        return (width, height) if orientation in (5, 6, 7, 8) else (height, width)
    except Exception:  # noqa: BLE001 - DICOM and other files: decode them
        try:
            from btseg.data.images import read_image

            return read_image(path).shape
        except Exception:  # noqa: BLE001 - the geometry is then estimated from the pixels
            return None


def _original_shapes(usable, arrays, positions: np.ndarray) -> np.ndarray:
    paths = dict(zip(usable["image_id"].astype(str), usable["image_path"].astype(str), strict=False))
    shapes = np.zeros((len(arrays.image_ids), 2), dtype=np.int64)
    for position in positions:
        path = paths.get(str(arrays.image_ids[position]))
        shape = original_shape(path) if path else None
        if shape is not None:
            shapes[position] = shape
    return shapes


def _subsample(
    positions: np.ndarray, labels: np.ndarray, limit: int | None, seed: int
) -> np.ndarray:
    """At most `limit` positions, stratified by label, in ascending order."""
    if limit is None or positions.size <= limit:
        return positions
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels[positions]):
        members = positions[labels[positions] == label]
        share = max(1, round(limit * members.size / positions.size))
        chosen.append(rng.choice(members, size=min(share, members.size), replace=False))
    picked = np.concatenate(chosen)
    if picked.size > limit:
        picked = rng.choice(picked, size=limit, replace=False)
    return np.sort(picked)


def prepare_data(
    config: TrainConfig,
    data_dir: str | Path,
    cache_dir: str | Path | None = None,
    progress: Callable[[str], None] = print,
) -> TrainingData:
    """Open the dataset, load or make its split and cache at cache_size(config); for the
    segmenters, read the original image sizes of the train and validation images (the letterbox
    geometry).

    Raises:
        DataError: from open_dataset / build_cache; or when the train or validation part is empty.
    """
    from btseg.config import cache_dir as default_cache_dir
    from btseg.config import is_synthetic
    from btseg.data.btxrd import open_dataset
    from btseg.data.cache import build_cache
    from btseg.data.splits import split_for
    from btseg.errors import DataError
    from btseg.progress import ProgressPrinter

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dataset = open_dataset(data_dir)
    split = split_for(dataset, cache_dir=cache, seed=config.split_seed)
    size = cache_size(config)
    printer = ProgressPrinter(f"Caching images at {size} px")
    arrays = build_cache(dataset.usable, size, cache_dir=cache, workers=2, progress=printer)
    labels = np.asarray(arrays.labels)
    train = _subsample(arrays.positions(split.ids("train")), labels, config.max_images, config.seed)
    validation = _subsample(
        arrays.positions(split.ids("val")), labels, config.max_validation_images, config.seed
    )
    for part, positions in (("train", train), ("val", validation)):
        if positions.size == 0:
            raise DataError(
                f"the {part} part of the split has no usable image",
                where=str(dataset.root),
                fix="check the dataset with `btseg stats` and `btseg split`",
            )
    if config.is_segmenter and not any(np.asarray(arrays.masks[p]).any() for p in validation):
        raise DataError(
            "no validation image has a tumour mask, so no threshold can be chosen",
            where=str(dataset.root),
            fix="use a dataset with annotated tumour images in every split part",
        )
    shapes = None
    if config.is_segmenter:
        shapes = _original_shapes(dataset.usable, arrays, np.concatenate([train, validation]))
    return TrainingData(
        arrays=arrays,
        train=train,
        validation=validation,
        data_dir=Path(dataset.root).resolve(),
        split_id=split.split_id,
        split_fingerprint=split.fingerprint,
        synthetic=is_synthetic(Path(dataset.root)),
        shapes=shapes,
        split=split,
    )


# ------------------------------------------------------------------------------------------------
# Batches


@dataclass
class Batches:
    """What model.fit reads: training batches, the steps of one epoch, validation batches."""

    train: Any  # tf.data.Dataset
    steps: int
    validation: Any  # tf.data.Dataset


def patch_inputs(config: TrainConfig, data: TrainingData) -> tuple[Batches, dict[str, Any]]:
    """(batches, extra config) of a patch-trained segmenter: endless augmented patches of the
    training images (btseg.patches), and a fixed set of `validation_patches` patches of the
    validation images for the per-epoch monitor."""
    import tensorflow as tf

    from btseg.patches import PatchSampler, fixed_patches, patch_dataset

    arrays = data.arrays
    sampler = PatchSampler(
        arrays.images,
        arrays.masks,
        data.train,
        config.patch_size,
        config.foreground_share,
        boxes=data.content_boxes(data.train),
        seed=config.seed,
        normal_bone_share=config.normal_bone_share,
    )
    train_dataset = patch_dataset(sampler, config.batch_size, augment=config.augment)
    steps = config.steps_per_epoch or math.ceil(data.train.size / config.batch_size)
    validation_sampler = PatchSampler(
        arrays.images,
        arrays.masks,
        data.validation,
        config.patch_size,
        config.foreground_share,
        boxes=data.content_boxes(data.validation),
        seed=config.seed + 1,
    )
    images, masks = fixed_patches(validation_sampler, config.validation_patches, config.seed + 1)
    validation_dataset = tf.data.Dataset.from_tensor_slices((images, masks)).batch(
        config.batch_size
    )
    extra = {
        "patches": {
            "working_size": config.working_size,
            "patch_size": config.patch_size,
            "foreground_share": config.foreground_share,
            "normal_bone_share": config.normal_bone_share,
            "steps_per_epoch": steps,
            "batch_size": config.batch_size,
            "train_tumour_images": sampler.tumour_images,
            "validation_patches": int(images.shape[0]),
            "validation_patches_with_tumour": int(masks.reshape(masks.shape[0], -1).any(1).sum()),
            "sampling": "a share foreground_share of the patches centred on a random lesion "
            "pixel (jittered by up to a quarter patch), a share normal_bone_share on a random "
            "bone pixel of a normal image, the others anywhere in the image content of a random "
            "training image, normal images included",
            "augmentation": "mirroring along both axes, rotation, scale, brightness and contrast"
            if config.augment
            else "none",
        }
    }
    return Batches(train_dataset, steps, validation_dataset), extra


def segmentation_batches(config: TrainConfig, data: TrainingData) -> tuple[Batches, dict[str, Any]]:
    """(batches, extra config) of a segmenter: patch_inputs for a patch recipe; otherwise whole
    images, with balanced sampling and augmentation as the config says (extra config empty)."""
    if config.patches:
        return patch_inputs(config, data)
    from btseg.pipeline import segmentation_dataset

    train_dataset, steps = segmentation_dataset(
        data.arrays,
        data.train,
        config.batch_size,
        training=True,
        augment=config.augment,
        tumour_fraction=config.balance_ratio,
        seed=config.seed,
    )
    if config.steps_per_epoch is not None:
        steps = config.steps_per_epoch
        train_dataset = train_dataset.repeat()
    validation_dataset, _ = segmentation_dataset(
        data.arrays, data.validation, config.batch_size, training=False
    )
    return Batches(train_dataset, steps, validation_dataset), {}


@dataclass(frozen=True)
class ClassifierImages:
    """Model-size uint8 images (N, S, S) and their labels (N,): what a classifier sees."""

    images: np.ndarray
    labels: np.ndarray


@dataclass
class ClassificationInputs:
    """The classifier's training and validation inputs: cached images, or region crops."""

    train: Any  # CachedArrays or ClassifierImages
    train_positions: np.ndarray
    validation: Any
    validation_positions: np.ndarray
    steps_per_epoch: int | None = None  # region mode: one epoch draws as many crops as images
    region: dict[str, Any] | None = None  # region mode: how the regions were made (config.json)


def classification_inputs(config: TrainConfig, data: TrainingData) -> ClassificationInputs:
    """The whole cached images (image mode), or region crops (region mode): `region_variants`
    random crops per training image and one fixed crop per validation image (the largest lesion's
    box, or a region sampled on a normal image; see btseg.data.regions)."""
    if config.input_mode != "region":
        return ClassificationInputs(data.arrays, data.train, data.arrays, data.validation)
    from btseg.data import regions

    arrays = data.arrays
    image_ids = np.asarray(arrays.image_ids, dtype=object)
    labels = np.asarray(arrays.labels)
    sides = regions.side_range([arrays.masks[p] for p in data.train])

    def crops(positions: np.ndarray, variants: int, jitter: bool) -> ClassifierImages:
        images = regions.region_crops(
            arrays.images,
            arrays.masks,
            positions,
            list(image_ids[positions]),
            config.input_size,
            sides,
            config.seed,
            variants=variants,
            jitter=jitter,
        )
        return ClassifierImages(images, np.repeat(labels[positions], variants))

    train = crops(data.train, config.region_variants, True)
    validation = crops(data.validation, 1, False)
    region = {
        "source_size": config.region_source_size,
        "margin": regions.BOX_MARGIN,
        "side_range": [round(value, 6) for value in sides],
        "seed": config.seed,
        "tumour_images": "the box of the largest lesion, widened by the margin on each side",
        "normal_images": "a square region sampled on the bone (btseg.data.regions.sample_region)",
    }
    return ClassificationInputs(
        train,
        np.arange(len(train.labels)),
        validation,
        np.arange(len(validation.labels)),
        steps_per_epoch=math.ceil(data.train.size / config.batch_size),
        region=region,
    )


def classification_batches(config: TrainConfig, inputs: ClassificationInputs) -> Batches:
    """The classifier's batches of its inputs: augmented training batches (a fixed number of
    steps in region mode), validation in order."""
    from btseg.pipeline import classification_dataset

    # Intentionally alike in shape to segmentation_batches' whole-image branch: the pipeline's
    # other task, with its own inputs and options (steps per epoch instead of balanced sampling).
    train_dataset, steps = classification_dataset(
        inputs.train,
        inputs.train_positions,
        config.batch_size,
        training=True,
        augment=config.augment,
        seed=config.seed,
        steps_per_epoch=inputs.steps_per_epoch,
    )
    validation_dataset, _ = classification_dataset(
        inputs.validation, inputs.validation_positions, config.batch_size, training=False
    )
    return Batches(train_dataset, steps, validation_dataset)
