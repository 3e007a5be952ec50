"""The training recipes: TrainConfig, the profiles (study, full, demo, tiny), their checks.

    make_config("attention", "demo", {"epochs": 5}) -> TrainConfig

No TensorFlow here: a config is made and checked before anything is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from btseg import registry
from btseg.errors import ConfigError

#: The --model values, in training order, and the two segmenters among them (btseg.registry).
MODELS = tuple(registry.MODELS)
SEGMENTERS = tuple(key for key, spec in registry.MODELS.items() if spec.is_segmenter)
#: Learning-rate schedules: None (constant, with ReduceLROnPlateau when set) or "poly"
#: (nnU-Net's lr * (1 - step / total steps) ** 0.9).
LEARNING_RATE_DECAYS = (None, "poly")


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
        normal_bone_share: share of training patches centred on the bone of a normal image
            (btseg.patches.bone_pixels): negatives where false positives arise; 0 draws none.
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
    normal_bone_share: float = 0.0
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
        return registry.MODELS[self.model].run

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


# ------------------------------------------------------------------------------------------------
# Profiles: the study's recipes, and the full, demo and tiny profiles derived from them


def _study() -> dict[str, TrainConfig]:
    """The study's recipes, on whole radiographs letterboxed to 224 px: the reference."""
    whole_images = {"profile": "study", "input_size": 224}
    reason = "the study's recipe: whole radiographs letterboxed to 224 px"
    return {
        "basic": TrainConfig(
            model="basic", **whole_images, resolution_reason=reason,
            epochs=20, batch_size=8, learning_rate=1e-3, patience=5,
            loss="bce", monitor="val_loss",
        ),
        "attention": TrainConfig(
            model="attention", **whole_images, resolution_reason=reason,
            epochs=100, batch_size=8, learning_rate=1e-4, patience=10,
            loss="dice_focal", monitor="val_best_dice", balance_ratio=0.5, augment=True,
            filters=32, dropout=0.2, reduce_lr_factor=0.5, reduce_lr_patience=5,
        ),
        "classifier": TrainConfig(
            model="classifier", **whole_images,
            epochs=30, batch_size=16, learning_rate=1e-3, patience=6,
            loss="weighted_ce", monitor="val_balanced_accuracy", augment=True, dropout=0.5,
            reduce_lr_factor=0.3, reduce_lr_patience=2, region_source_size=768,
            weights="imagenet", phase1_backbone="frozen",
            # Phase 2: the last dense block unfrozen, AdamW.
            fine_tune_epochs=20, fine_tune_learning_rate=1e-4, weight_decay=1e-4, clipnorm=1.0,
        ),
    }


#: nnU-Net's schedule: Adam 1e-3 with polynomial decay over the run, no ReduceLROnPlateau.
_POLY_SCHEDULE = {"learning_rate": 1e-3, "learning_rate_decay": "poly", "reduce_lr_factor": None}


def _patches(
    working_size: int,
    patch_size: int,
    batch_size: int,
    foreground_share: float,
    steps_per_epoch: int,
    validation_patches: int,
    reason: str,
    tta_mirror: bool = True,
) -> dict[str, Any]:
    """The settings of a segmenter trained on patches at a working size (btseg.patches): the
    patch is the training input; every patch augmented; no balanced sampling (the foreground
    share does that)."""
    return {
        "working_size": working_size, "patch_size": patch_size, "input_size": patch_size,
        "batch_size": batch_size, "foreground_share": foreground_share,
        "steps_per_epoch": steps_per_epoch, "validation_patches": validation_patches,
        "augment": True, "balance_ratio": None, "tta_mirror": tta_mirror,
        "resolution_reason": reason,
    }


def _derive(
    base: dict[str, TrainConfig], profile: str, changes: dict[str, dict[str, Any]]
) -> dict[str, TrainConfig]:
    """A profile: each of base's recipes with its changes (none for a model not named)."""
    return {
        name: dataclasses.replace(config, profile=profile, **changes.get(name, {}))
        for name, config in base.items()
    }


def _full(study: dict[str, TrainConfig]) -> dict[str, TrainConfig]:
    """The segmenters on 384 px patches of images at 1024 px (sized for a GPU); the classifier
    as in the study."""
    patches = _patches(
        1024, 384, batch_size=8, foreground_share=1 / 3, steps_per_epoch=250,
        validation_patches=128,
        reason=(
            "patches at a working resolution (nnU-Net 2D): about half of BTXRD's lesions cover "
            "under 1% of the radiograph, a few pixels once a whole image is shrunk to 224 px; at "
            "1024 px (long side) a 1%-lesion keeps about 100x100 px of texture, and 384 px "
            "patches hold a lesion with its surrounding bone, as nnU-Net plans for 2D radiographs "
            "of this size on a GPU; the whole image is predicted at 1024 px by the fully "
            "convolutional U-Net"
        ),
    )
    basic_note = (
        "full: the study's basic U-Net and loss (binary cross-entropy), trained through the same "
        "patch pipeline as the attention U-Net so that a comparison isolates the architecture and "
        "the loss"
    )
    attention_note = (
        "full: patches (see resolution_reason) instead of whole 224 px images; nnU-Net's "
        "schedule (250 steps an epoch, polynomial learning-rate decay from 1e-3) instead of Adam "
        "1e-4 with ReduceLROnPlateau"
    )
    return _derive(study, "full", {
        "basic": {**patches, "epochs": 100, "patience": 10, "notes": (basic_note,)},
        "attention": {
            **patches, **_POLY_SCHEDULE, "epochs": 100, "patience": 20, "notes": (attention_note,)
        },
    })


def _demo(study: dict[str, TrainConfig]) -> dict[str, TrainConfig]:
    """All three models on the 600-image synthetic set in minutes on 2 CPU cores."""
    patches = _patches(
        384, 128, batch_size=16, foreground_share=0.5, steps_per_epoch=100, validation_patches=64,
        reason=(
            "demo: images at long side 384 px (four times the old 96 px demo) and 128 px patches "
            "in batches of 16, as in the first patch experiment (DESIGN.md): small synthetic "
            "lesions keep their texture, and the attention U-Net trains in about 5 minutes on 2 "
            "CPU cores; the whole image is predicted at 384 px, averaged over its mirrored "
            "copies; a quarter of the patches on the bone of normal images (normal_bone_share), "
            "which on validation cut the normal images flagged at every threshold; recipe chosen "
            "on validation among those in docs/experiments.md"
        ),
    )
    patches["normal_bone_share"] = 0.25
    basic_notes = (
        "demo: the study's basic U-Net and loss (binary cross-entropy) trained through the "
        "attention U-Net's patch pipeline and step budget, so that the Compare page isolates the "
        "architecture and the loss",
    )
    attention_notes = (
        "demo: patches at 384 px (see resolution_reason), filters 8 (about 0.5 M parameters, as "
        "many as the basic U-Net) and 9 epochs of 100 steps to train in about 5 minutes on 2 CPU "
        "cores",
        "demo: Adam 1e-3 with nnU-Net's polynomial decay instead of 1e-4 with ReduceLROnPlateau, "
        "to converge in 900 steps; on validation it beat 1500 steps at a constant 1e-3 "
        "(docs/experiments.md)",
    )
    classifier_notes = (
        "demo: no ImageNet weights (nothing to download), so phase 1 trains the whole backbone "
        "from random weights instead of freezing it, and phase 2 (last block unfrozen) is skipped",
        "demo: region input (a crop around the lesion, or a sampled region of a normal image, "
        "from 256 px images, at 64 px): from random weights on 420 images the whole radiograph, "
        "where half of the lesions cover under 1% of the image, teaches a DenseNet121 nothing in "
        "minutes, while lesion regions do",
        "demo: batch norm momentum 0.9 so that validation follows the weights within a few "
        "hundred steps; 16 epochs at learning rate 3e-4",
    )
    return _derive(study, "demo", {
        "basic": {**patches, "epochs": 9, "patience": 5, "notes": basic_notes},
        "attention": {
            **patches, **_POLY_SCHEDULE, "epochs": 9, "patience": 10, "filters": 8,
            "notes": attention_notes,
        },
        "classifier": {
            "input_size": 64, "epochs": 16, "batch_size": 16, "learning_rate": 3e-4,
            "patience": 6, "reduce_lr_patience": 3, "weights": None, "phase1_backbone": "all",
            "fine_tune_epochs": 0, "input_mode": "region", "region_source_size": 256,
            "region_variants": 8, "batch_norm_momentum": 0.9, "notes": classifier_notes,
        },
    })


def _tiny(demo: dict[str, TrainConfig]) -> dict[str, TrainConfig]:
    """The demo recipes shrunk to seconds, for the tests."""
    smoke = {
        "input_size": 64, "epochs": 2, "batch_size": 4, "patience": 2, "max_images": 12,
        "max_validation_images": 6, "notes": ("tiny: a smoke test, not a model",),
    }
    patches = _patches(
        64, 32, batch_size=4, foreground_share=0.5, steps_per_epoch=3, validation_patches=8,
        reason="tiny: a smoke test at 64 px with 32 px patches", tta_mirror=False,
    )
    return _derive(demo, "tiny", {
        "basic": {**smoke, **patches},
        "attention": {**smoke, **patches, "filters": 4},
        # Tracing the full DenseNet121 gradient costs about a minute of CPU; a frozen backbone a
        # quarter.
        "classifier": {**smoke, "epochs": 1, "phase1_backbone": "frozen"},
    })


def _recipes() -> dict[str, dict[str, TrainConfig]]:
    study = _study()
    demo = _demo(study)
    return {"demo": demo, "full": _full(study), "study": study, "tiny": _tiny(demo)}


#: PROFILES[profile][model] -> TrainConfig. make_config reads this very dict at each call (the
#: tests replace a recipe in it).
PROFILES: dict[str, dict[str, TrainConfig]] = _recipes()


def model_key(name: str) -> str:
    """'basic' | 'basic_unet' -> 'basic', and so on (btseg.registry.model_for).

    Raises:
        ConfigError: for other names.
    """
    return registry.model_for(name).key


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
    bone = config.normal_bone_share
    if isinstance(bone, bool) or not isinstance(bone, int | float) or not 0 <= bone <= 1 - share:
        raise bad("normal_bone_share", bone, f"a share in [0, 1 - foreground_share = {1 - share:g}]")
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


def cache_size(config: TrainConfig) -> int:
    """Side of the cached images a run reads: the working size of a patch-trained segmenter,
    the size the regions are cropped from in region mode, else the model size."""
    if config.input_mode == "region":
        return config.region_source_size
    return config.inference_size
