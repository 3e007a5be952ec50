"""Training of the three models into run folders, with the study's recipes.

    train_model("attention", data_dir, models_dir, profile="demo") -> models_dir/attention_unet

A run trains into models_dir/.tmp-<run>-<pid>/ and is renamed to models_dir/<run>/ only when
every file is written, so an interrupted run never leaves a folder that looks complete; an older
run of the same model stays in place until that moment. A run folder holds model.keras (the
best checkpoint, float32, loads with safe_mode=True), config.json, history.csv and, for the
segmenters, threshold.json (the operating point: threshold and minimum lesion size chosen on
every validation image, normal images counted; see btseg.decisions.choose_operating_point).

Profiles:
    study:  exactly the study's recipes on whole radiographs letterboxed to 224 px:
        basic:      binary cross-entropy, Adam 1e-3, batch 8, 20 epochs, early stopping on val
                    loss (5).
        attention:  Dice + focal, Adam 1e-4, balanced sampling (half tumour images),
                    augmentation, ReduceLROnPlateau, early stopping on validation Dice (10).
    full:   the segmenters train on patches at a working resolution (nnU-Net style, see
            btseg.patches): images letterboxed to 1024 px, 384 px patches, a share of them
            centred on a lesion, whole-image prediction at 1024 px for validation; the basic
            U-Net keeps the study's loss (binary cross-entropy) and architecture.
    demo:   the same at 384 px with 128 px patches, sized to train in minutes on 2 CPU cores:
            900 steps with polynomial learning-rate decay and mirrored test-time augmentation,
            the best on validation of the recipes in docs/experiments.md.
    tiny:   seconds, for the tests.
The classifier's recipe:
    classifier: weighted cross-entropy; phase 1 backbone frozen (Adam, LR x0.3 on plateau, early
                stopping); phase 2 last dense block unfrozen (AdamW, weight decay, clipnorm 1).
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from btseg.config import CLASS_NAMES
from btseg.errors import ConfigError
from btseg.runs import (
    CONFIG_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    RUN_NAMES,
    SPLIT_FILE,
    THRESHOLD_FILE,
    atomic_write_json,
    remove_dead_temporaries,
    run_name_for,
    swap_folder_into_place,
)

SEGMENTERS = ("basic", "attention")
MODELS = ("basic", "attention", "classifier")
#: Old runs' criterion (threshold only, tumour images only); new runs write the operating point's.
THRESHOLD_CRITERION = "max mean Dice over validation tumour images"
#: Learning-rate schedules: None (constant, with ReduceLROnPlateau when set) or "poly"
#: (nnU-Net's lr * (1 - step / total steps) ** 0.9).
LEARNING_RATE_DECAYS = (None, "poly")
BEST_WEIGHTS_FILE = "best.weights.h5"


@dataclass(frozen=True)
class TrainConfig:
    """Every hyperparameter of one training run; saved in config.json beside the model.

    Attributes:
        model: "basic", "attention" or "classifier".
        profile: the profile it came from ("demo", "full", "tiny").
        input_size: side of the square model input in pixels (cache and model size).
        epochs: maximum epochs (classifier: of phase 1).
        batch_size: images per step.
        learning_rate: initial learning rate (classifier: of phase 1).
        patience: early-stopping patience in epochs, on `monitor`.
        loss: a key of btseg.models.losses.LOSSES.
        monitor: metric of the validation split that picks the best epoch, drives early
            stopping and ReduceLROnPlateau: "val_loss", "val_dice" (pooled Dice at 0.5),
            "val_best_dice" (pooled Dice at the best threshold; see losses.BestThresholdDice)
            or "val_balanced_accuracy".
        balance_ratio: fraction of tumour images among sampled training images; None keeps
            the data's proportion.
        augment: random flips, rotation, shift, zoom, brightness and contrast on training images.
        max_images: cap on training images (stratified random subset); None uses all.
        max_validation_images: cap on validation images; None uses all.
        seed: random seed of weights, sampling and augmentation.
        split_seed: seed of the surrogate-patient split (btseg.data.splits.split_for).
        filters: first-level filters of the attention U-Net.
        dropout: dropout of the attention U-Net bottleneck or the classifier head.
        reduce_lr_factor: ReduceLROnPlateau factor on `monitor`; None disables it.
        reduce_lr_patience: epochs without improvement before the learning rate is reduced.
        min_learning_rate: floor of ReduceLROnPlateau.
        weights: classifier backbone weights: None, "imagenet" or a local .h5 path.
        phase1_backbone: classifier backbone in phase 1: "frozen", "last_block" or "all".
        fine_tune_epochs: classifier phase 2 epochs (last dense block unfrozen); 0 skips it.
        fine_tune_learning_rate: AdamW learning rate of phase 2.
        weight_decay: AdamW weight decay of phase 2.
        clipnorm: gradient clipping norm of phase 2.
        input_mode: classifier input: "image" (the whole radiograph, as in the study) or
            "region" (a crop around a lesion, or a sampled region of a normal image; see
            btseg.data.regions).
        region_source_size: region mode: side of the cached images the regions are cropped from.
        region_variants: region mode: random crops prepared per training image (each epoch
            draws as many crops as there are training images from them).
        batch_norm_momentum: momentum of every batch norm layer of the classifier; None keeps
            Keras' 0.99 (slow to follow the weights in a short training from random weights).
        working_size: segmenters: side of the letterboxed images the model is trained and run on
            (the cache size). None: the model's input size, whole letterboxed images (the study,
            and older runs).
        patch_size: segmenters with a working size: side of the square training patches (the
            model's training input; input_size is set to it).
        foreground_share: share of training patches centred on a lesion pixel (nnU-Net 1/3).
        steps_per_epoch: patch training: batches per epoch.
        validation_patches: patch training: fixed validation patches (drawn once, same
            foreground share) on which `monitor` is computed after each epoch.
        learning_rate_decay: None, or "poly" (lr * (1 - step / (epochs * steps)) ** 0.9,
            nnU-Net's schedule; ReduceLROnPlateau is then off).
        inference_window: None runs the model on the whole image at the working size; a side
            in px slides overlapping windows blended with Gaussian weights (btseg.patches).
        tta_mirror: average the prediction over mirrored copies (test-time augmentation).
        max_normal_flagged: share of validation normal images the operating point may flag.
        resolution_reason: why this working size and patch size (recorded in config.json).
        notes: why a profile departs from the study's recipe.
    """

    model: str
    profile: str
    input_size: int
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    loss: str
    monitor: str
    balance_ratio: float | None = None
    augment: bool = False
    max_images: int | None = None
    max_validation_images: int | None = None
    seed: int = 0
    split_seed: int = 0
    filters: int = 32
    dropout: float = 0.2
    reduce_lr_factor: float | None = None
    reduce_lr_patience: int = 3
    min_learning_rate: float = 1e-6
    weights: str | None = None
    phase1_backbone: str = "frozen"
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-5
    weight_decay: float = 1e-4
    clipnorm: float = 1.0
    input_mode: str = "image"
    region_source_size: int = 256
    region_variants: int = 8
    batch_norm_momentum: float | None = None
    working_size: int | None = None
    patch_size: int | None = None
    foreground_share: float = 1 / 3
    steps_per_epoch: int | None = None
    validation_patches: int = 64
    learning_rate_decay: str | None = None
    inference_window: int | None = None
    tta_mirror: bool = False
    max_normal_flagged: float = 0.10
    resolution_reason: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def run_name(self) -> str:
        return RUN_NAMES[self.model]

    @property
    def is_segmenter(self) -> bool:
        return self.model in SEGMENTERS

    @property
    def monitor_mode(self) -> str:
        return "min" if self.monitor.endswith("loss") else "max"

    @property
    def patches(self) -> bool:
        """True when the segmenter trains on patches at a working size."""
        return self.is_segmenter and self.working_size is not None

    @property
    def inference_size(self) -> int:
        """Side of the letterboxed image the model is validated and run on."""
        return self.working_size if self.working_size is not None else self.input_size


def _recipes() -> dict[str, dict[str, TrainConfig]]:
    # The study's recipes, on whole radiographs letterboxed to 224 px: the reference.
    study = {
        "basic": TrainConfig(
            model="basic",
            profile="study",
            input_size=224,
            epochs=20,
            batch_size=8,
            learning_rate=1e-3,
            patience=5,
            loss="bce",
            monitor="val_loss",
            resolution_reason="the study's recipe: whole radiographs letterboxed to 224 px",
        ),
        "attention": TrainConfig(
            model="attention",
            profile="study",
            input_size=224,
            epochs=100,
            batch_size=8,
            learning_rate=1e-4,
            patience=10,
            loss="dice_focal",
            monitor="val_best_dice",
            balance_ratio=0.5,
            augment=True,
            filters=32,
            dropout=0.2,
            reduce_lr_factor=0.5,
            reduce_lr_patience=5,
            resolution_reason="the study's recipe: whole radiographs letterboxed to 224 px",
        ),
        "classifier": TrainConfig(
            model="classifier",
            profile="study",
            input_size=224,
            epochs=30,
            batch_size=16,
            learning_rate=1e-3,
            patience=6,
            loss="weighted_ce",
            monitor="val_balanced_accuracy",
            augment=True,
            dropout=0.5,
            reduce_lr_factor=0.3,
            reduce_lr_patience=2,
            region_source_size=768,
            weights="imagenet",
            phase1_backbone="frozen",
            fine_tune_epochs=20,
            fine_tune_learning_rate=1e-4,
            weight_decay=1e-4,
            clipnorm=1.0,
        ),
    }
    full_reason = (
        "patches at a working resolution (nnU-Net 2D): about half of BTXRD's lesions cover "
        "under 1% of the radiograph, a few pixels once a whole image is shrunk to 224 px; at "
        "1024 px (long side) a 1%-lesion keeps about 100x100 px of texture, and 384 px patches "
        "hold a lesion with its surrounding bone, as nnU-Net plans for 2D radiographs of this "
        "size on a GPU; the whole image is predicted at 1024 px by the fully convolutional "
        "U-Net"
    )
    full_patches = {
        "working_size": 1024,
        "patch_size": 384,
        "input_size": 384,
        "foreground_share": 1 / 3,
        "steps_per_epoch": 250,
        "validation_patches": 128,
        "augment": True,
        "balance_ratio": None,
        "tta_mirror": True,
        "resolution_reason": full_reason,
    }
    full = {
        "basic": dataclasses.replace(
            study["basic"],
            profile="full",
            batch_size=8,
            epochs=100,
            patience=10,
            **full_patches,
            notes=(
                "full: the study's basic U-Net and loss (binary cross-entropy), trained through "
                "the same patch pipeline as the attention U-Net so that a comparison isolates "
                "the architecture and the loss",
            ),
        ),
        "attention": dataclasses.replace(
            study["attention"],
            profile="full",
            batch_size=8,
            epochs=100,
            learning_rate=1e-3,
            patience=20,
            learning_rate_decay="poly",
            reduce_lr_factor=None,
            **full_patches,
            notes=(
                "full: patches (see resolution_reason) instead of whole 224 px images; "
                "nnU-Net's schedule (250 steps an epoch, polynomial learning-rate decay from "
                "1e-3) instead of Adam 1e-4 with ReduceLROnPlateau",
            ),
        ),
        "classifier": dataclasses.replace(study["classifier"], profile="full"),
    }
    demo_reason = (
        "demo: images at long side 384 px (four times the old 96 px demo) and 128 px patches in "
        "batches of 16, as in the first patch experiment (DESIGN.md): small synthetic lesions "
        "keep their texture, and the attention U-Net trains in about 5 minutes on 2 CPU cores; "
        "the whole image is predicted at 384 px, averaged over its mirrored copies; recipe "
        "chosen on validation among those in docs/experiments.md"
    )
    demo_patches = {
        "working_size": 384,
        "patch_size": 128,
        "input_size": 128,
        "batch_size": 16,
        "foreground_share": 0.5,
        "steps_per_epoch": 100,
        "validation_patches": 64,
        "augment": True,
        "balance_ratio": None,
        "tta_mirror": True,
        "resolution_reason": demo_reason,
    }
    # Demo: all three models on the 600-image synthetic set in minutes on 2 CPU cores.
    demo = {
        "basic": dataclasses.replace(
            study["basic"],
            profile="demo",
            epochs=9,
            patience=5,
            **demo_patches,
            notes=(
                "demo: the study's basic U-Net and loss (binary cross-entropy) trained through "
                "the attention U-Net's patch pipeline and step budget, so that the Compare page "
                "isolates the architecture and the loss",
            ),
        ),
        "attention": dataclasses.replace(
            study["attention"],
            profile="demo",
            epochs=9,
            filters=8,
            learning_rate=1e-3,
            learning_rate_decay="poly",
            reduce_lr_factor=None,
            patience=10,
            **demo_patches,
            notes=(
                "demo: patches at 384 px (see resolution_reason), filters 8 (about 0.5 M "
                "parameters, as many as the basic U-Net) and 9 epochs of 100 steps to train "
                "in about 5 minutes on 2 CPU cores",
                "demo: Adam 1e-3 with nnU-Net's polynomial decay instead of 1e-4 with "
                "ReduceLROnPlateau, to converge in 900 steps; on validation it beat 1500 steps "
                "at a constant 1e-3 (docs/experiments.md)",
            ),
        ),
        "classifier": dataclasses.replace(
            study["classifier"],
            profile="demo",
            input_size=64,
            epochs=16,
            batch_size=16,
            learning_rate=3e-4,
            weights=None,
            phase1_backbone="all",
            fine_tune_epochs=0,
            patience=6,
            reduce_lr_patience=3,
            input_mode="region",
            region_source_size=256,
            region_variants=8,
            batch_norm_momentum=0.9,
            notes=(
                "demo: no ImageNet weights (nothing to download), so phase 1 trains the whole "
                "backbone from random weights instead of freezing it, and phase 2 (last block "
                "unfrozen) is skipped",
                "demo: region input (a crop around the lesion, or a sampled region of a normal "
                "image, from 256 px images, at 64 px): from random weights on 420 images the "
                "whole radiograph, where half of the lesions cover under 1% of the image, "
                "teaches a DenseNet121 nothing in minutes, while lesion regions do",
                "demo: batch norm momentum 0.9 so that validation follows the weights within a "
                "few hundred steps; 16 epochs at learning rate 3e-4",
            ),
        ),
    }
    tiny = {
        name: dataclasses.replace(
            config,
            profile="tiny",
            input_size=64,
            epochs=2,
            batch_size=4,
            patience=2,
            max_images=12,
            max_validation_images=6,
            notes=("tiny: a smoke test, not a model",),
        )
        for name, config in demo.items()
    }
    for name in SEGMENTERS:
        tiny[name] = dataclasses.replace(
            tiny[name],
            working_size=64,
            patch_size=32,
            input_size=32,
            steps_per_epoch=3,
            validation_patches=8,
            tta_mirror=False,
            resolution_reason="tiny: a smoke test at 64 px with 32 px patches",
        )
    tiny["attention"] = dataclasses.replace(tiny["attention"], filters=4)
    # Tracing the full DenseNet121 gradient costs about a minute of CPU; a frozen backbone a quarter.
    tiny["classifier"] = dataclasses.replace(tiny["classifier"], epochs=1, phase1_backbone="frozen")
    return {"demo": demo, "full": full, "study": study, "tiny": tiny}


#: PROFILES[profile][model] -> TrainConfig.
PROFILES: dict[str, dict[str, TrainConfig]] = _recipes()

_MODEL_ALIASES = {
    "basic": "basic",
    "basic_unet": "basic",
    "attention": "attention",
    "attention_unet": "attention",
    "classifier": "classifier",
}


def model_key(name: str) -> str:
    """'basic' | 'basic_unet' -> 'basic', and so on. Raises ConfigError for other names."""
    key = _MODEL_ALIASES.get(str(name).strip().lower())
    if key is None:
        raise ConfigError(
            f"unknown model {name!r}",
            where="--model",
            fix="choose basic, attention, classifier or all",
        )
    return key


def make_config(
    name: str, profile: str = "demo", overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """The profile's TrainConfig for a model with overrides applied and checked.

    Raises:
        ConfigError: unknown model, profile or field, or a value out of range.
    """
    key = model_key(name)
    if profile not in PROFILES:
        raise ConfigError(
            f"unknown profile {profile!r}",
            where="--profile",
            fix=f"choose one of {', '.join(PROFILES)}",
        )
    config = PROFILES[profile][key]
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "profile"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(
            f"unknown training setting(s) {', '.join(unknown)}",
            where="overrides",
            fix=f"use some of {', '.join(sorted(fields))}",
        )
    if config.working_size is not None and config.is_segmenter:
        # input_size is the model's training input: the patch. An --input-size override of a
        # patch recipe sets the patch size.
        if "input_size" in overrides and "patch_size" not in overrides:
            overrides["patch_size"] = overrides["input_size"]
        overrides.pop("input_size", None)
    if overrides:
        config = dataclasses.replace(config, **overrides)
    if config.patch_size is not None and config.working_size is not None:
        config = dataclasses.replace(config, input_size=config.patch_size)
    _check_config(config)
    return config


def _check_config(config: TrainConfig) -> None:
    def bad(name: str, value: Any, expected: str) -> ConfigError:
        flag = "--" + name.replace("_", "-")
        return ConfigError(
            f"{name} = {value!r} is invalid: expected {expected}",
            where=flag,
            fix=f"pass a valid {flag}",
        )

    positive = (
        "epochs",
        "batch_size",
        "input_size",
        "patience",
        "filters",
        "region_source_size",
        "region_variants",
    )
    for name in positive:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad(name, value, "a positive integer")
    for name in ("max_images", "max_validation_images"):
        value = getattr(config, name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 2
        ):
            raise bad(name, value, "an integer of at least 2, or nothing")
    if not isinstance(config.fine_tune_epochs, int) or config.fine_tune_epochs < 0:
        raise bad("fine_tune_epochs", config.fine_tune_epochs, "an integer >= 0")
    for name in ("learning_rate", "fine_tune_learning_rate"):
        value = getattr(config, name)
        if not isinstance(value, int | float) or not 0 < value < 1:
            raise bad(name, value, "a number between 0 and 1")
    if config.balance_ratio is not None and not 0 < config.balance_ratio < 1:
        raise bad("balance_ratio", config.balance_ratio, "a fraction between 0 and 1, or nothing")
    if not 0 <= config.dropout < 1:
        raise bad("dropout", config.dropout, "a rate in [0, 1)")
    if config.reduce_lr_factor is not None and not 0 < config.reduce_lr_factor < 1:
        raise bad("reduce_lr_factor", config.reduce_lr_factor, "a factor between 0 and 1")
    if config.input_mode not in ("image", "region"):
        raise bad("input_mode", config.input_mode, "image or region")
    if config.input_mode == "region" and config.model != "classifier":
        raise bad("input_mode", config.input_mode, "image (regions are for the classifier)")
    momentum = config.batch_norm_momentum
    if momentum is not None and (
        isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0 < momentum < 1
    ):
        raise bad("batch_norm_momentum", momentum, "a number between 0 and 1, or nothing")
    if config.phase1_backbone not in ("frozen", "last_block", "all"):
        raise bad("phase1_backbone", config.phase1_backbone, "frozen, last_block or all")
    from btseg.models.losses import LOSSES

    if config.loss not in LOSSES:
        raise bad("loss", config.loss, f"one of {', '.join(LOSSES)}")
    factor = {"basic": 8, "attention": 16, "classifier": 32}[config.model]
    if config.model == "classifier":
        if config.input_size < factor:
            raise bad("input_size", config.input_size, "at least 32 for DenseNet121")
    elif config.input_size % factor:
        raise bad("input_size", config.input_size, f"a multiple of {factor} for this model")
    _check_patch_settings(config, bad, factor)


def _check_patch_settings(config: TrainConfig, bad, factor: int) -> None:
    def positive_or_none(name: str) -> None:
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise bad(name, value, "a positive integer, or nothing")

    for name in ("working_size", "patch_size", "steps_per_epoch", "inference_window"):
        positive_or_none(name)
    if config.working_size is not None:
        if not config.is_segmenter:
            raise bad("working_size", config.working_size, "nothing (patches are for segmenters)")
        if config.working_size % factor:
            raise bad("working_size", config.working_size, f"a multiple of {factor}")
        if config.patch_size is None or config.patch_size % factor:
            raise bad("patch_size", config.patch_size, f"a multiple of {factor}")
        if config.patch_size > config.working_size:
            raise bad("patch_size", config.patch_size, f"at most working_size {config.working_size}")
    elif config.patch_size is not None:
        raise bad("patch_size", config.patch_size, "nothing without a working size")
    window = config.inference_window
    if window is not None and (window % factor or window > config.inference_size):
        raise bad(
            "inference_window",
            window,
            f"a multiple of {factor} of at most {config.inference_size} px, or nothing",
        )
    share = config.foreground_share
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise bad("foreground_share", share, "a share in [0, 1]")
    limit = config.max_normal_flagged
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 <= limit <= 1:
        raise bad("max_normal_flagged", limit, "a share in [0, 1]")
    if not isinstance(config.tta_mirror, bool):
        raise bad("tta_mirror", config.tta_mirror, "true or false")
    if config.learning_rate_decay not in LEARNING_RATE_DECAYS:
        raise bad("learning_rate_decay", config.learning_rate_decay, "nothing or poly")
    count = config.validation_patches
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise bad("validation_patches", count, "a positive integer")


# ------------------------------------------------------------------------------------------------
# Data


def cache_size(config: TrainConfig) -> int:
    """Side of the cached images a run reads: the working size of a patch-trained segmenter,
    the size the regions are cropped from in region mode, else the model size."""
    if config.input_mode == "region":
        return config.region_source_size
    return config.inference_size


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
# Models, devices, callbacks


def build_model(config: TrainConfig):
    """The untrained Keras model of a config, at (input_size, input_size, 3), or at
    (None, None, 3) for a patch-trained segmenter (fully convolutional: trained on patches, run
    on whole images at the working size)."""
    shape = (None, None, 3) if config.patches else (config.input_size, config.input_size, 3)
    if config.model == "basic":
        from btseg.models.unet import build_basic_unet

        return build_basic_unet(shape)
    if config.model == "attention":
        from btseg.models.attention_unet import build_attention_unet

        return build_attention_unet(shape, filters=config.filters, dropout=config.dropout)
    from btseg.models.classifier import build_classifier

    return build_classifier(
        shape,
        weights=config.weights,
        dropout=config.dropout,
        batch_norm_momentum=config.batch_norm_momentum,
    )


def _loss_and_metrics(config: TrainConfig, class_weights: Sequence[float] | None = None):
    import keras

    from btseg.models import losses

    if config.is_segmenter:
        return losses.make_loss(config.loss), [
            losses.DiceCoefficient(),
            losses.ForegroundIoU(),
            losses.BestThresholdDice(),
        ]
    parameters = {"class_weights": list(class_weights)} if config.loss == "weighted_ce" else {}
    metrics = [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        losses.BalancedAccuracy(num_classes=len(CLASS_NAMES)),
    ]
    return losses.make_loss(config.loss, **parameters), metrics


@dataclass
class _Device:
    strategy: Any
    mixed_precision: bool
    description: str
    replicas: int


def _device() -> _Device:
    """Mixed precision on a GPU, MirroredStrategy on several; TensorFlow's CPU defaults otherwise."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    description = f"{len(gpus)} GPU" + ("s" if len(gpus) > 1 else "") if gpus else "CPU"
    return _Device(strategy, bool(gpus), description, int(strategy.num_replicas_in_sync))


def _format_logs(logs: dict[str, Any]) -> str:
    parts = []
    for key, value in logs.items():
        if key == "learning_rate":
            parts.append(f"lr {float(value):.2g}")
        elif isinstance(value, int | float | np.floating):
            parts.append(f"{key} {float(value):.4f}")
    return ", ".join(parts)


def _progress_callback(
    run_name: str, total_epochs: int, progress: Callable[[str], None], start: float
):
    """Prints 'epoch i/n: metrics; elapsed, ~left' after each epoch."""
    import keras

    from btseg.progress import format_seconds

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            done = epoch + 1
            elapsed = time.monotonic() - start
            left = elapsed / done * max(0, total_epochs - done)
            progress(
                f"{run_name} epoch {done}/{total_epochs}: {_format_logs(logs or {})}; "
                f"{format_seconds(elapsed)} elapsed, ~{format_seconds(left)} left at most"
            )

    return EpochProgress()


def _callbacks(
    config: TrainConfig,
    folder: Path,
    progress_callback,
    extra: Iterable[Any],
    *,
    append_history: bool = False,
    initial_best: float | None = None,
):
    import keras

    checkpoint = keras.callbacks.ModelCheckpoint(
        str(folder / BEST_WEIGHTS_FILE),
        monitor=config.monitor,
        mode=config.monitor_mode,
        save_best_only=True,
        save_weights_only=True,
        initial_value_threshold=initial_best,
    )
    callbacks = [
        checkpoint,
        keras.callbacks.CSVLogger(str(folder / HISTORY_FILE), append=append_history),
        keras.callbacks.EarlyStopping(
            monitor=config.monitor, mode=config.monitor_mode, patience=config.patience
        ),
    ]
    if config.reduce_lr_factor is not None and config.learning_rate_decay is None:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=config.monitor,
                mode=config.monitor_mode,
                factor=config.reduce_lr_factor,
                patience=config.reduce_lr_patience,
                min_lr=config.min_learning_rate,
            )
        )
    callbacks.append(progress_callback)
    callbacks.extend(extra)
    return callbacks, checkpoint


# ------------------------------------------------------------------------------------------------
# Training loops


@dataclass
class _Outcome:
    model: Any  # float32 model with the best weights
    epochs_run: int
    training_seconds: float
    best_value: float | None
    extra: dict[str, Any] = field(default_factory=dict)
    validation_inputs: Any = None  # classifier: (arrays, positions) it was validated on


def _load_best_weights(model, path: Path) -> None:
    """Load a checkpoint's layer weights; its optimizer state (of another phase) is not needed."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(str(path))


def _final_model(config: TrainConfig, folder: Path, trained, loss, metrics, mixed_precision: bool):
    """The model with the best checkpoint's weights, float32, compiled with a fresh optimizer so
    that the saved file holds the loss and metrics but no optimizer state."""
    import keras

    best = folder / BEST_WEIGHTS_FILE
    if not best.is_file():  # the monitored value never improved on its first value (NaN)
        trained.save_weights(str(best))
    if mixed_precision:
        previous = keras.mixed_precision.global_policy().name
        keras.mixed_precision.set_global_policy("float32")
        try:
            model = build_model(dataclasses.replace(config, weights=None))
        finally:
            keras.mixed_precision.set_global_policy(previous)
    else:
        model = trained
    _load_best_weights(model, best)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, metrics=metrics)
    best.unlink()
    return model


def _learning_rate(config: TrainConfig, steps: int):
    """The optimizer's learning rate: a number, or nnU-Net's polynomial decay over the run."""
    import keras

    if config.learning_rate_decay == "poly":
        return keras.optimizers.schedules.PolynomialDecay(
            config.learning_rate,
            decay_steps=max(1, config.epochs * steps),
            end_learning_rate=0.0,
            power=0.9,
        )
    return config.learning_rate


def patch_inputs(config: TrainConfig, data: TrainingData):
    """(training dataset, steps per epoch, validation dataset, extra config) of a patch-trained
    segmenter: endless augmented patches of the training images (btseg.patches), and a fixed set
    of `validation_patches` patches of the validation images for the per-epoch monitor."""
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
            "steps_per_epoch": steps,
            "batch_size": config.batch_size,
            "train_tumour_images": sampler.tumour_images,
            "validation_patches": int(images.shape[0]),
            "validation_patches_with_tumour": int(masks.reshape(masks.shape[0], -1).any(1).sum()),
            "sampling": "a share foreground_share of the patches centred on a random lesion "
            "pixel (jittered by up to a quarter patch), the others anywhere in the image content "
            "of a random training image, normal images included",
            "augmentation": "mirroring along both axes, rotation, scale, brightness and contrast"
            if config.augment
            else "none",
        }
    }
    return train_dataset, steps, validation_dataset, extra


def _train_segmenter(config, data: TrainingData, folder: Path, device: _Device, progress, extra):
    import keras

    from btseg.pipeline import segmentation_dataset

    extra_config: dict[str, Any] = {}
    if config.patches:
        train_dataset, steps, validation_dataset, extra_config = patch_inputs(config, data)
    else:
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
    with device.strategy.scope():
        model = build_model(config)
        loss, metrics = _loss_and_metrics(config)
        model.compile(
            optimizer=keras.optimizers.Adam(_learning_rate(config, steps)),
            loss=loss,
            metrics=metrics,
        )
    start = time.monotonic()
    callbacks, checkpoint = _callbacks(
        config, folder, _progress_callback(config.run_name, config.epochs, progress, start), extra
    )
    history = model.fit(
        train_dataset,
        epochs=config.epochs,
        steps_per_epoch=steps,
        validation_data=validation_dataset,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,
    )
    seconds = time.monotonic() - start
    loss, metrics = _loss_and_metrics(config)
    final = _final_model(config, folder, model, loss, metrics, device.mixed_precision)
    return _Outcome(final, len(history.epoch), seconds, _best(checkpoint), extra_config)


def _best(checkpoint) -> float | None:
    value = getattr(checkpoint, "best", None)
    return float(value) if value is not None and np.isfinite(value) else None


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


def _train_classifier(config, data: TrainingData, folder: Path, device: _Device, progress, extra):
    import keras

    from btseg.models.classifier import set_backbone_trainable
    from btseg.pipeline import class_weights, classification_dataset

    weights = class_weights(np.asarray(data.arrays.labels)[data.train], len(CLASS_NAMES))
    inputs = classification_inputs(config, data)
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
    total_epochs = config.epochs + config.fine_tune_epochs
    start = time.monotonic()
    progress_callback = _progress_callback(config.run_name, total_epochs, progress, start)
    with device.strategy.scope():
        model = build_model(config)
        set_backbone_trainable(model, config.phase1_backbone)
        loss, metrics = _loss_and_metrics(config, weights)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, metrics=metrics
        )
    callbacks, checkpoint = _callbacks(config, folder, progress_callback, extra)
    history = model.fit(
        train_dataset,
        epochs=config.epochs,
        steps_per_epoch=steps,
        validation_data=validation_dataset,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,
    )
    epochs_run = len(history.epoch)
    best_value = _best(checkpoint)
    if config.fine_tune_epochs > 0:
        best = folder / BEST_WEIGHTS_FILE
        if best.is_file():
            _load_best_weights(model, best)
        with device.strategy.scope():
            set_backbone_trainable(model, "last_block")
            loss, metrics = _loss_and_metrics(config, weights)
            optimizer = keras.optimizers.AdamW(
                learning_rate=config.fine_tune_learning_rate,
                weight_decay=config.weight_decay,
                clipnorm=config.clipnorm,
            )
            model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        fine_config = dataclasses.replace(config, reduce_lr_factor=None)
        callbacks, checkpoint = _callbacks(
            fine_config,
            folder,
            progress_callback,
            extra,
            append_history=True,
            initial_best=best_value,
        )
        history = model.fit(
            train_dataset,
            initial_epoch=epochs_run,
            epochs=epochs_run + config.fine_tune_epochs,
            steps_per_epoch=steps,
            validation_data=validation_dataset,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,
        )
        epochs_run += len(history.epoch)
        best_value = _best(checkpoint) if _best(checkpoint) is not None else best_value
    seconds = time.monotonic() - start
    loss, metrics = _loss_and_metrics(config, weights)
    final = _final_model(config, folder, model, loss, metrics, device.mixed_precision)
    extra_config: dict[str, Any] = {"class_weights": weights.tolist()}
    if inputs.region is not None:
        extra_config["region"] = inputs.region
    return _Outcome(
        final,
        epochs_run,
        seconds,
        best_value,
        extra_config,
        validation_inputs=(inputs.validation, inputs.validation_positions),
    )


# ------------------------------------------------------------------------------------------------
# Validation


def _predict(model, arrays, positions: np.ndarray, batch_size: int) -> np.ndarray:
    from btseg.pipeline import image_dataset

    return np.asarray(model.predict(image_dataset(arrays, positions, batch_size), verbose=0))


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def whole_image_inputs(arrays, positions: np.ndarray) -> np.ndarray:
    """(K, S, S, 3) float32 model inputs of cached letterboxed images (images.preprocess)."""
    images = np.asarray(arrays.images[np.asarray(positions, dtype=np.int64)])
    return np.repeat(images[..., None].astype(np.float32) / np.float32(255.0), 3, axis=-1)


def validation_maps(
    model,
    config: TrainConfig,
    data: TrainingData,
    *,
    mirror: bool | None = None,
    window: int | None = ...,  # type: ignore[assignment]
    chunk: int = 16,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, float]:
    """Every validation image predicted whole at the working size with btseg.patches.predict_whole
    (the inference function), each map and its truth cropped to the image content (the letterbox
    padding removed).

    Returns:
        (truths, maps, normal (K,) bool from the table label, seconds per image).
    """
    from btseg.patches import crop_to_content, predict_whole

    mirror = config.tta_mirror if mirror is None else mirror
    window = config.inference_window if window is ... else window
    positions = data.validation
    boxes = data.content_boxes(positions)
    truths, maps = [], []
    started = time.monotonic()
    for begin in range(0, positions.size, chunk):
        part = positions[begin : begin + chunk]
        predicted = predict_whole(
            model.predict_on_batch,
            whole_image_inputs(data.arrays, part),
            window=window,
            mirror=mirror,
            batch_size=max(1, min(config.batch_size, 8)),
        )
        for offset, position in enumerate(part):
            box = boxes[begin + offset]
            maps.append(np.ascontiguousarray(crop_to_content(predicted[offset], box)))
            truths.append(np.ascontiguousarray(crop_to_content(np.asarray(data.arrays.masks[position]), box)))
    seconds = (time.monotonic() - started) / max(1, positions.size)
    normal = np.asarray(data.arrays.labels)[positions] == CLASS_NAMES.index("normal")
    return truths, maps, normal, seconds


def operating_point_on_validation(
    truths: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    normal: np.ndarray,
    max_normal_flagged: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(validation block for config.json, threshold.json content) of the operating point chosen
    by btseg.decisions.choose_operating_point on the validation maps."""
    from btseg.decisions import choose_operating_point

    point, table = choose_operating_point(
        truths, maps, normal, max_normal_flagged=max_normal_flagged
    )
    table = [{key: _plain(value) for key, value in row.items()} for row in table]
    chosen = next(
        row
        for row in table
        if row["threshold"] == point.threshold
        and row["min_lesion_fraction"] == point.min_lesion_fraction
    )
    at_half = next(
        (
            row
            for row in table
            if row["threshold"] == 0.5 and row["min_lesion_fraction"] == point.min_lesion_fraction
        ),
        {},
    )
    tumour = np.array([bool(np.any(truth)) for truth in truths]) & ~np.asarray(normal)
    validation = {
        "images": len(truths),
        "tumour_images": int(tumour.sum()),
        "normal_images": int(np.sum(normal)),
        "threshold": point.threshold,
        "min_lesion_fraction": point.min_lesion_fraction,
        "criterion": point.criterion,
        "max_normal_flagged": float(max_normal_flagged),
        "mean_dice": chosen["mean_dice_tumour"],
        "normal_flagged": chosen["normal_flagged"],
        "tumour_found": chosen["tumour_found"],
        "mean_dice_at_0.5": at_half.get("mean_dice_tumour"),
    }
    threshold_json = {
        **point.to_json(),
        "split": "val",
        "max_normal_flagged": float(max_normal_flagged),
        "images": len(truths),
        "mean_dice_tumour": chosen["mean_dice_tumour"],
        "normal_flagged": chosen["normal_flagged"],
        "tumour_found": chosen["tumour_found"],
        "table": table,
    }
    return validation, threshold_json


def segmentation_validation(
    model,
    config: TrainConfig,
    data: TrainingData,
    *,
    mirror: bool | None = None,
    max_normal_flagged: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(validation metrics for config.json, threshold.json content): the operating point chosen
    on every validation image (tumour and normal) predicted whole at the working size.
    ``mirror`` and ``max_normal_flagged`` default to the config's."""
    truths, maps, normal, seconds = validation_maps(model, config, data, mirror=mirror)
    limit = config.max_normal_flagged if max_normal_flagged is None else max_normal_flagged
    validation, threshold_json = operating_point_on_validation(truths, maps, normal, limit)
    settings = {
        "working_size": config.inference_size,
        "inference_window": config.inference_window,
        "tta_mirror": config.tta_mirror if mirror is None else bool(mirror),
    }
    validation.update(settings, seconds_per_image=round(seconds, 4))
    threshold_json.update(settings)
    return validation, threshold_json


def _classification_validation(model, config, inputs: tuple[Any, np.ndarray]) -> dict[str, Any]:
    from btseg import metrics

    arrays, positions = inputs
    probabilities = _predict(model, arrays, positions, config.batch_size).astype(np.float64)
    truth = np.asarray(arrays.labels[positions]).astype(np.int64)
    report = metrics.classification_report(truth, probabilities, CLASS_NAMES)
    keys = (
        "n_samples",
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "macro_auc",
        "confusion_matrix",
        "per_class",
        "normal_vs_tumour",
    )
    validation = {key: report.get(key) for key in keys}
    validation["images"] = int(truth.size)
    return _json_ready(validation)


# ------------------------------------------------------------------------------------------------
# Run folders


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import btseg

    return {
        "btseg": btseg.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _history_rows(path: Path) -> list[dict[str, Any]]:
    import csv

    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _best_epoch(rows: list[dict[str, Any]], monitor: str, mode: str) -> int | None:
    values = []
    for row in rows:
        try:
            values.append(float(row.get(monitor, "nan")))
        except ValueError:
            values.append(float("nan"))
    array = np.array(values, dtype=float)
    if array.size == 0 or np.all(np.isnan(array)):
        return None
    index = np.nanargmin(array) if mode == "min" else np.nanargmax(array)
    return int(rows[index].get("epoch", index)) + 1


def train_model(
    name: str,
    data_dir: str | Path,
    models_dir: str | Path,
    profile: str = "demo",
    overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] = print,
    *,
    cache_dir: str | Path | None = None,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Train one model and write its run folder; returns models_dir/<run name>.

    Args:
        name: "basic", "attention" or "classifier" (or the run names basic_unet, attention_unet).
        data_dir: a BTXRD-layout folder (real or synthetic).
        models_dir: parent of the run folders.
        profile: "demo", "full" or "tiny" (see PROFILES).
        overrides: TrainConfig fields to change, e.g. {"epochs": 5, "input_size": 160}.
        progress: receives one line per step and epoch.
        cache_dir: cache of splits and arrays; default btseg.config.cache_dir().
        callbacks: extra Keras callbacks.

    Raises:
        ConfigError: bad model, profile or override; DataError: unusable dataset.
    """
    config = make_config(name, profile, overrides)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(models_dir, f".tmp-{config.run_name}-*")
    temporary = models_dir / f".tmp-{config.run_name}-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    try:
        _train_into(config, data_dir, temporary, progress, cache_dir, callbacks)
        final = models_dir / config.run_name
        return swap_folder_into_place(
            temporary, final, final.with_name(f".old-{final.name}-{os.getpid()}")
        )
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def _train_into(
    config: TrainConfig, data_dir, folder: Path, progress, cache_dir, extra
) -> dict[str, Any]:
    import keras

    started, cpu_started = time.monotonic(), time.process_time()
    progress(f"Training {config.run_name} ({config.profile} profile, {config.input_size} px)")
    data = prepare_data(config, data_dir, cache_dir, progress)
    keras.utils.set_random_seed(config.seed)
    previous_policy = keras.mixed_precision.global_policy().name
    device = _device()
    try:
        progress(
            f"{config.run_name}: {data.train.size} training and {data.validation.size} validation "
            f"images on {device.description}"
        )
        trainer = _train_segmenter if config.is_segmenter else _train_classifier
        outcome = trainer(config, data, folder, device, progress, extra)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    outcome.model.save(str(folder / MODEL_FILE))

    if config.is_segmenter:
        progress(f"{config.run_name}: choosing the operating point on the validation images")
        validation, threshold_json = segmentation_validation(outcome.model, config, data)
        atomic_write_json(folder / THRESHOLD_FILE, threshold_json)
    else:
        validation = _classification_validation(outcome.model, config, outcome.validation_inputs)
    rows = _history_rows(folder / HISTORY_FILE)
    labels = np.asarray(data.arrays.labels)
    masks_any = [bool(np.asarray(data.arrays.masks[p]).any()) for p in data.train]
    summary = {
        "run": config.run_name,
        "model": config.model,
        "task": "segmentation" if config.is_segmenter else "classification",
        "profile": config.profile,
        "hyperparameters": _json_ready(dataclasses.asdict(config)),
        "input_size": config.input_size,
        "input_mode": config.input_mode,
        "input_shape": [None, None, 3] if config.patches else [config.input_size, config.input_size, 3],
        "working_size": config.working_size,
        "patch_size": config.patch_size,
        "inference_window": config.inference_window,
        "tta_mirror": config.tta_mirror,
        "resolution_reason": config.resolution_reason,
        "parameters": int(outcome.model.count_params()),
        "class_names": list(CLASS_NAMES),
        "data": {
            "dir": str(data.data_dir),
            "synthetic": data.synthetic,
            "fingerprint": data.arrays.fingerprint,
            "split_id": data.split_id,
            "split_fingerprint": data.split_fingerprint,
            "split_seed": config.split_seed,
            "train_images": int(data.train.size),
            "train_tumour_images": int(sum(masks_any)),
            "train_labels": {
                n: int((labels[data.train] == i).sum()) for i, n in enumerate(CLASS_NAMES)
            },
            "validation_images": int(data.validation.size),
            "skipped_images": len(getattr(data.arrays, "skipped", []) or []),
        },
        "versions": _versions(),
        "device": {
            "name": device.description,
            "mixed_precision": device.mixed_precision,
            "replicas": device.replicas,
        },
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(outcome.training_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        # CPU seconds of this process: on a shared machine the wall time also counts the others.
        "total_cpu_seconds": round(time.process_time() - cpu_started, 1),
        "epochs_run": outcome.epochs_run,
        "monitor": config.monitor,
        "best_epoch": _best_epoch(rows, config.monitor, config.monitor_mode),
        "best_monitor_value": outcome.best_value,
        "validation": validation,
        **outcome.extra,
    }
    atomic_write_json(folder / CONFIG_FILE, summary)
    if data.split is not None:  # the run carries its split: evaluation needs no cache
        from btseg.data.splits import save_split

        save_split(data.split, folder / SPLIT_FILE)
    progress(f"{config.run_name}: {format_validation(summary)}")
    return summary


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    return _plain(value)


def format_validation(config: dict[str, Any]) -> str:
    """One line of validation results from a run's config.json content."""
    validation = config.get("validation", {})
    if config.get("task") == "classification":
        return (
            f"validation balanced accuracy {_number(validation.get('balanced_accuracy'))}, "
            f"accuracy {_number(validation.get('accuracy'))} ({validation.get('images')} images)"
        )
    line = (
        f"validation mean Dice {_number(validation.get('mean_dice'))} over "
        f"{validation.get('tumour_images')} tumour images at threshold "
        f"{_number(validation.get('threshold'))}"
    )
    if "min_lesion_fraction" in validation:  # an operating point with normal images counted
        return (
            f"{line}, minimum lesion {_percent(validation.get('min_lesion_fraction'), 2)} of "
            f"the image: {_percent(validation.get('normal_flagged'))} of "
            f"{validation.get('normal_images')} normal images flagged, "
            f"{_percent(validation.get('tumour_found'))} of tumour images found"
        )
    return f"{line} (mean Dice at 0.5: {_number(validation.get('mean_dice_at_0.5'))})"


def _percent(value: Any, digits: int = 0) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{100 * value:.{digits}f}%"


def _number(value: Any) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.3f}"
    )


def train_all(
    data_dir: str | Path,
    models_dir: str | Path,
    profile: str = "demo",
    overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] = print,
    *,
    models: Sequence[str] = MODELS,
    cache_dir: str | Path | None = None,
    classifier_overrides: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Train the basic U-Net, the attention U-Net and the classifier in turn; print a summary.

    Returns:
        {model: run folder}. Overrides apply to every model, classifier_overrides (such as
        input_mode) to the classifier only.
    """

    def settings(name: str) -> dict[str, Any]:
        extra = classifier_overrides if model_key(name) == "classifier" else None
        return {**(overrides or {}), **(extra or {})}

    from btseg.progress import format_seconds
    from btseg.runs import read_run_info

    for name in models:  # fail on a bad option before any training
        make_config(name, profile, settings(name))
    start = time.monotonic()
    folders = {}
    for name in models:
        folders[model_key(name)] = train_model(
            name, data_dir, models_dir, profile, settings(name), progress, cache_dir=cache_dir
        )
    progress(f"Trained {len(folders)} models in {format_seconds(time.monotonic() - start)}:")
    for key, folder in folders.items():
        info = read_run_info(folder)
        progress(f"  {run_name_for(key):<15} {format_validation(info['config'])}")
    for line in validation_comparison(models_dir):
        progress(line)
    return folders


def validation_comparison(models_dir: str | Path) -> list[str]:
    """What the validation split says of the trained runs in models_dir, in two lines: the
    attention U-Net's mean Dice against the basic U-Net's, and the classifier's balanced accuracy
    against chance (1 / number of classes). Lines for missing runs are left out."""
    from btseg.runs import read_run_info

    def validation(run: str) -> dict[str, Any] | None:
        info = read_run_info(Path(models_dir) / run)
        return (info["config"] or {}).get("validation") if info["complete"] else None

    lines = []
    basic, attention = validation(RUN_NAMES["basic"]), validation(RUN_NAMES["attention"])
    if basic is not None and attention is not None:
        ours, theirs = attention.get("mean_dice"), basic.get("mean_dice")
        difference = (
            f" ({ours - theirs:+.3f})"
            if isinstance(ours, int | float) and isinstance(theirs, int | float)
            else ""
        )
        lines.append(
            f"Validation mean Dice, attention U-Net vs basic U-Net: {_number(ours)} vs "
            f"{_number(theirs)}{difference}"
        )
    classifier = validation(RUN_NAMES["classifier"])
    if classifier is not None:
        lines.append(
            f"Validation balanced accuracy of the classifier: "
            f"{_number(classifier.get('balanced_accuracy'))} (chance {1 / len(CLASS_NAMES):.3f})"
        )
    return lines
