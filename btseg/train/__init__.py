"""Training of the three models into run folders, with the study's recipes.

    train_model("attention", data_dir, models_dir, profile="demo") -> models_dir/attention_unet

A run trains into models_dir/.tmp-<run>-<pid>/ and is renamed to models_dir/<run>/ only when
every file is written, so an interrupted run never leaves a folder that looks complete; an older
run of the same model stays in place until that moment. A run folder holds model.keras (the
best checkpoint, float32, loads with safe_mode=True), config.json, history.csv and, for the
segmenters, threshold.json (the operating point: threshold and minimum lesion size chosen on
every validation image, normal images counted; see btseg.decisions.choose_operating_point).

Modules:
    recipes:     TrainConfig, the profiles below (PROFILES, make_config) and their checks.
    data:        the split's cached train and validation images (prepare_data) and the batches
                 each model trains on: patches, whole images, the classifier's lesion regions.
    fit:         the one fit scaffold: the device, callbacks, learning-rate schedule and best
                 checkpoint, and a training as a list of phases (fit_phases); the segmenters
                 train in one phase, the classifier in one or two.
    validation:  the segmenters' operating point on the validation images, the classifier's
                 validation metrics.
    run:         run folders (train_model, train_all) and their console lines.

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

Nothing here imports TensorFlow until a model is built or trained.
"""

from btseg.train.data import (
    ClassificationInputs,
    ClassifierImages,
    TrainingData,
    classification_inputs,
    original_shape,
    patch_inputs,
    prepare_data,
)
from btseg.train.fit import BEST_WEIGHTS_FILE, Phase, Plan, build_model, fit_phases, plan_for
from btseg.train.recipes import (
    LEARNING_RATE_DECAYS,
    MODELS,
    PROFILES,
    SEGMENTERS,
    TrainConfig,
    cache_size,
    make_config,
    model_key,
)
from btseg.train.run import format_validation, train_all, train_model, validation_comparison
from btseg.train.validation import (
    THRESHOLD_CRITERION,
    operating_point_on_validation,
    segmentation_validation,
    validation_maps,
    whole_image_inputs,
)

__all__ = [
    "BEST_WEIGHTS_FILE",
    "LEARNING_RATE_DECAYS",
    "MODELS",
    "PROFILES",
    "SEGMENTERS",
    "THRESHOLD_CRITERION",
    "ClassificationInputs",
    "ClassifierImages",
    "Phase",
    "Plan",
    "TrainConfig",
    "TrainingData",
    "build_model",
    "cache_size",
    "classification_inputs",
    "fit_phases",
    "format_validation",
    "make_config",
    "model_key",
    "operating_point_on_validation",
    "original_shape",
    "patch_inputs",
    "plan_for",
    "prepare_data",
    "segmentation_validation",
    "train_all",
    "train_model",
    "validation_comparison",
    "validation_maps",
    "whole_image_inputs",
]
