"""The one fit scaffold: a training is a list of phases, each one compile and one model.fit of
the same model, on one device, with one set of callbacks and one best checkpoint.

    plan = plan_for(config, data)      # Plan: phases, batches, losses
    outcome = fit_phases(config, plan, folder, device(), print)   # Outcome: float32 best model

The segmenters train in one phase. The classifier trains in one or two: phase 1 with the
backbone as the recipe says (frozen, last block or all), phase 2 (fine-tuning) with the last
dense block unfrozen, AdamW and no ReduceLROnPlateau. A phase after the first continues from
the best checkpoint so far: it loads its weights, has to beat its value to write a new one,
appends to history.csv and counts its epochs on.

The outcome's model holds the best checkpoint's weights, in float32 whatever the device.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from btseg.config import CLASS_NAMES
from btseg.runs import HISTORY_FILE
from btseg.train.data import (
    Batches,
    TrainingData,
    classification_batches,
    classification_inputs,
    segmentation_batches,
)
from btseg.train.recipes import TrainConfig

BEST_WEIGHTS_FILE = "best.weights.h5"

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


def loss_and_metrics(config: TrainConfig, class_weights: Sequence[float] | None = None):
    """Fresh (loss, metrics) of a config: the segmenters' Dice, IoU and best-threshold Dice, the
    classifier's accuracy and balanced accuracy (class_weights: of the weighted_ce loss)."""
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
class Device:
    """Where a training runs: its distribution strategy, and whether it computes in float16."""

    strategy: Any
    mixed_precision: bool
    description: str
    replicas: int


def device() -> Device:
    """Mixed precision on a GPU, MirroredStrategy on several; TensorFlow's CPU defaults otherwise."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    description = f"{len(gpus)} GPU" + ("s" if len(gpus) > 1 else "") if gpus else "CPU"
    return Device(strategy, bool(gpus), description, int(strategy.num_replicas_in_sync))


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
    reduce_lr: bool = True,
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
    if reduce_lr and config.reduce_lr_factor is not None and config.learning_rate_decay is None:
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


def _best(checkpoint) -> float | None:
    value = getattr(checkpoint, "best", None)
    return float(value) if value is not None and np.isfinite(value) else None


def learning_rate(config: TrainConfig, steps: int):
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


# ------------------------------------------------------------------------------------------------
# Phases


@dataclass(frozen=True)
class Phase:
    """One model.fit of a training.

    Attributes:
        epochs: its maximum epochs (early stopping may end it sooner).
        optimizer: makes the phase's optimizer (called in the device's strategy scope).
        backbone: the classifier's trainable backbone in this phase ("frozen", "last_block" or
            "all"; btseg.models.classifier.set_backbone_trainable); None leaves the model as
            built.
        reduce_lr: ReduceLROnPlateau when the config sets it (reduce_lr_factor, and no
            learning-rate decay).
    """

    epochs: int
    optimizer: Callable[[], Any]
    backbone: str | None = None
    reduce_lr: bool = True


@dataclass
class Plan:
    """A training: its phases, the batches they read, and what the run folder keeps of it.

    Attributes:
        phases: run in turn on the same model.
        batches: training and validation batches of every phase.
        losses: makes (loss, metrics) afresh for each compile (metrics hold state).
        extra: more config.json entries (how the inputs were made).
        validation_inputs: classifier: (arrays, positions) to validate the final model on.
    """

    phases: list[Phase]
    batches: Batches
    losses: Callable[[], tuple[Any, list[Any]]]
    extra: dict[str, Any] = field(default_factory=dict)
    validation_inputs: Any = None


@dataclass
class Outcome:
    """What a training gives its run folder."""

    model: Any  # float32 model with the best weights
    epochs_run: int
    training_seconds: float
    best_value: float | None
    extra: dict[str, Any] = field(default_factory=dict)
    validation_inputs: Any = None  # classifier: (arrays, positions) it was validated on


def fit_phases(
    config: TrainConfig,
    plan: Plan,
    folder: Path,
    device: Device,
    progress: Callable[[str], None],
    extra_callbacks: Iterable[Any] = (),
) -> Outcome:
    """Build the config's model in the device's scope and run the plan's phases on its batches,
    with the best checkpoint in folder/BEST_WEIGHTS_FILE and the history in folder/history.csv.

    Args:
        progress: receives one line per epoch, counted over all phases.
        extra_callbacks: more Keras callbacks, in every phase.

    Returns:
        The float32 model with the best checkpoint's weights (the checkpoint file removed),
        epochs run, seconds, the best monitored value, and the plan's extra and validation
        inputs.
    """
    extra_callbacks = list(extra_callbacks)
    best_file = folder / BEST_WEIGHTS_FILE
    start = time.monotonic()
    total_epochs = sum(phase.epochs for phase in plan.phases)
    progress_callback = _progress_callback(config.run_name, total_epochs, progress, start)
    model, epochs_run, best_value = None, 0, None
    for index, phase in enumerate(plan.phases):
        continuing = index > 0  # from the best checkpoint of the phases before
        if continuing and best_file.is_file():
            _load_best_weights(model, best_file)
        with device.strategy.scope():
            if model is None:
                model = build_model(config)
            if phase.backbone is not None:
                from btseg.models.classifier import set_backbone_trainable

                set_backbone_trainable(model, phase.backbone)
            loss, metrics = plan.losses()
            model.compile(optimizer=phase.optimizer(), loss=loss, metrics=metrics)
        callbacks, checkpoint = _callbacks(
            config,
            folder,
            progress_callback,
            extra_callbacks,
            reduce_lr=phase.reduce_lr,
            append_history=continuing,
            initial_best=best_value,
        )
        history = model.fit(
            plan.batches.train,
            initial_epoch=epochs_run,
            epochs=epochs_run + phase.epochs,
            steps_per_epoch=plan.batches.steps,
            validation_data=plan.batches.validation,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,
        )
        epochs_run += len(history.epoch)
        phase_best = _best(checkpoint)
        if phase_best is not None:
            best_value = phase_best
    seconds = time.monotonic() - start
    loss, metrics = plan.losses()
    final = _final_model(config, folder, model, loss, metrics, device.mixed_precision)
    return Outcome(final, epochs_run, seconds, best_value, plan.extra, plan.validation_inputs)


# ------------------------------------------------------------------------------------------------
# The two trainings


def segmenter_plan(config: TrainConfig, data: TrainingData) -> Plan:
    """One phase: Adam at the config's learning rate (constant, or nnU-Net's polynomial decay)
    on patches or whole images (data.segmentation_batches)."""
    import keras

    batches, extra = segmentation_batches(config, data)
    phase = Phase(
        config.epochs, lambda: keras.optimizers.Adam(learning_rate(config, batches.steps))
    )
    return Plan([phase], batches, lambda: loss_and_metrics(config), extra)


def classifier_plan(config: TrainConfig, data: TrainingData) -> Plan:
    """Phase 1: the backbone as config.phase1_backbone says, Adam, ReduceLROnPlateau; phase 2
    (when fine_tune_epochs > 0): the last dense block unfrozen, AdamW with weight decay and
    gradient clipping. Class-weighted loss; whole images or lesion regions
    (data.classification_inputs)."""
    import keras

    from btseg.pipeline import class_weights

    weights = class_weights(np.asarray(data.arrays.labels)[data.train], len(CLASS_NAMES))
    inputs = classification_inputs(config, data)
    batches = classification_batches(config, inputs)
    phases = [
        Phase(
            config.epochs,
            lambda: keras.optimizers.Adam(config.learning_rate),
            backbone=config.phase1_backbone,
        )
    ]
    if config.fine_tune_epochs > 0:
        phases.append(
            Phase(
                config.fine_tune_epochs,
                lambda: keras.optimizers.AdamW(
                    learning_rate=config.fine_tune_learning_rate,
                    weight_decay=config.weight_decay,
                    clipnorm=config.clipnorm,
                ),
                backbone="last_block",
                reduce_lr=False,
            )
        )
    extra: dict[str, Any] = {"class_weights": weights.tolist()}
    if inputs.region is not None:
        extra["region"] = inputs.region
    return Plan(
        phases,
        batches,
        lambda: loss_and_metrics(config, weights),
        extra,
        validation_inputs=(inputs.validation, inputs.validation_positions),
    )


def plan_for(config: TrainConfig, data: TrainingData) -> Plan:
    """The config's training: segmenter_plan or classifier_plan."""
    return segmenter_plan(config, data) if config.is_segmenter else classifier_plan(config, data)
