"""Input pipeline, training configs, threshold choice and tiny trainings into run folders."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from btseg import pipeline, runs, train
from btseg.data import images
from btseg.errors import ConfigError

# ------------------------------------------------------------------------------------------------
# Pipeline


def _arrays(count: int = 6, size: int = 16, tumours: int = 2, seed: int = 0) -> SimpleNamespace:
    """CachedArrays-like arrays: the first `tumours` images have a 4x4 tumour, labels 1."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, size, size), np.uint8)
    masks[:tumours, 4:8, 6:10] = 1
    labels = np.zeros(count, np.int8)
    labels[:tumours] = 1
    return SimpleNamespace(
        images=rng.integers(0, 256, (count, size, size), dtype=np.uint8),
        masks=masks,
        labels=labels,
        size=size,
    )


def test_model_input_equals_images_preprocess_on_every_uint8_value():
    cached = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = images.preprocess(cached, 16)
    actual = np.asarray(pipeline.model_input(cached))
    assert actual.dtype == np.float32 and actual.shape == (16, 16, 3)
    np.testing.assert_array_equal(actual, expected)


def test_validation_batches_are_the_preprocessed_images_and_masks_in_order():
    arrays = _arrays()
    dataset, steps = pipeline.segmentation_dataset(arrays, np.array([3, 0, 1]), 2, training=False)
    batches = list(dataset)
    assert steps == 2 and [len(b[0]) for b in batches] == [2, 1]
    image_batch = np.concatenate([np.asarray(b[0]) for b in batches])
    mask_batch = np.concatenate([np.asarray(b[1]) for b in batches])
    for row, position in enumerate([3, 0, 1]):
        np.testing.assert_array_equal(image_batch[row], images.preprocess(arrays.images[position], 16))
        np.testing.assert_array_equal(mask_batch[row, ..., 0], arrays.masks[position])


def test_augmentation_moves_image_and_mask_together():
    import tensorflow as tf

    mask = np.zeros((32, 32, 1), np.float32)
    mask[5:12, 8:20] = 1.0
    augmentation = pipeline.Augmentation(rotation_degrees=25, shift_fraction=0.1, zoom_range=0.2,
                                         brightness=0.0, contrast=0.0)
    tf.random.set_seed(0)
    for _ in range(10):
        image, warped_mask = pipeline.augment_pair(tf.constant(mask), tf.constant(mask), augmentation)
        image, warped_mask = np.asarray(image), np.asarray(warped_mask)
        assert set(np.unique(warped_mask)) <= {0.0, 1.0}
        np.testing.assert_array_equal(image >= 0.5, warped_mask == 1.0)


def test_flip_only_augmentation_mirrors_exactly():
    import tensorflow as tf

    image = np.random.default_rng(0).random((16, 16, 1)).astype(np.float32)
    augmentation = pipeline.Augmentation(rotation_degrees=0, shift_fraction=0, zoom_range=0,
                                         brightness=0, contrast=0)
    seen = set()
    tf.random.set_seed(1)
    for _ in range(12):
        out = np.asarray(pipeline.augment_pair(tf.constant(image), None, augmentation)[0])
        if np.array_equal(out, image):
            seen.add("same")
        else:
            np.testing.assert_allclose(out, image[:, ::-1], atol=1e-6)
            seen.add("mirrored")
    assert seen == {"same", "mirrored"}


def test_brightness_and_contrast_change_the_image_only():
    import tensorflow as tf

    mask = np.zeros((16, 16, 1), np.float32)
    mask[4:8, 4:8] = 1
    image = np.full((16, 16, 1), 0.5, np.float32)
    augmentation = pipeline.Augmentation(flip=False, rotation_degrees=0, shift_fraction=0,
                                         zoom_range=0, brightness=0.3, contrast=0.0)
    tf.random.set_seed(2)
    out_image, out_mask = pipeline.augment_pair(tf.constant(image), tf.constant(mask), augmentation)
    np.testing.assert_array_equal(np.asarray(out_mask), mask)
    assert not np.allclose(np.asarray(out_image), 0.5)
    assert np.ptp(np.asarray(out_image)) < 1e-6  # one brightness shift for the whole image


def test_balanced_sampling_draws_tumour_images_at_the_balance_ratio():
    arrays = _arrays(count=20, tumours=2)
    dataset, steps = pipeline.segmentation_dataset(
        arrays, np.arange(20), 10, training=True, tumour_fraction=0.5, seed=0
    )
    assert steps == 2
    with_tumour = [
        bool(mask.any()) for _, masks in dataset.take(40) for mask in np.asarray(masks)
    ]
    assert len(with_tumour) == 400
    assert 0.42 < np.mean(with_tumour) < 0.58  # 2 of 20 images (0.1) without balancing


def test_class_weights_are_inverse_frequency_normalised_to_mean_one():
    np.testing.assert_allclose(pipeline.class_weights(np.array([0, 0, 0, 1]), 3), [2 / 3, 2.0, 0.0])
    weights = pipeline.class_weights(np.array([0, 0, 1, 2, 2, 2]), 3)
    counts = np.array([2, 1, 3])
    assert np.dot(weights, counts) == pytest.approx(6)
    with pytest.raises(ValueError):
        pipeline.class_weights(np.array([0, 3]), 3)


def test_classification_batches_hold_images_and_labels():
    arrays = _arrays()
    dataset, steps = pipeline.classification_dataset(arrays, np.arange(6), 4, training=False)
    image_batch, label_batch = next(iter(dataset))
    assert steps == 2
    assert image_batch.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(np.asarray(label_batch), [1, 1, 0, 0])


def test_classification_batches_repeat_for_a_fixed_number_of_steps():
    arrays = _arrays(count=6)
    dataset, steps = pipeline.classification_dataset(
        arrays, np.arange(6), 4, training=True, steps_per_epoch=5, seed=0
    )
    assert steps == 5
    labels = np.concatenate([np.asarray(batch) for _, batch in dataset.take(steps * 2)])
    assert labels.size == 40  # past one pass over the 6 images
    assert np.bincount(labels, minlength=2).tolist() == pytest.approx([40 * 4 / 6, 40 * 2 / 6], abs=6)


def test_region_mode_trains_on_lesion_crops_and_validates_on_one_fixed_crop_per_image():
    arrays = _arrays(count=6, size=64)
    arrays.image_ids = [f"IMG{i}" for i in range(6)]
    data = SimpleNamespace(arrays=arrays, train=np.array([0, 2, 3, 5]), validation=np.array([1, 4]))
    config = train.make_config("classifier", "demo", {"input_size": 32, "region_variants": 3})
    inputs = train.classification_inputs(config, data)
    assert inputs.train.images.shape == (12, 32, 32) and inputs.validation.images.shape == (2, 32, 32)
    np.testing.assert_array_equal(inputs.train.labels, np.repeat(arrays.labels[data.train], 3))
    np.testing.assert_array_equal(inputs.validation.labels, arrays.labels[data.validation])
    assert inputs.steps_per_epoch == 1  # 4 training images in batches of 16
    assert inputs.region["source_size"] == 256 and inputs.region["seed"] == config.seed
    # The validation crop of the tumour image is its lesion box with the margin, letterboxed.
    from btseg.data.regions import crop

    expected = images.letterbox_image(np.ascontiguousarray(crop(arrays.images[1], (6, 4, 10, 8))), 32)
    np.testing.assert_array_equal(inputs.validation.images[0], expected)
    again = train.classification_inputs(config, data)
    np.testing.assert_array_equal(again.train.images, inputs.train.images)
    whole = train.classification_inputs(train.make_config("classifier", "full"), data)
    assert whole.train is arrays and whole.steps_per_epoch is None and whole.region is None


def test_region_mode_is_for_the_classifier_only():
    with pytest.raises(ConfigError, match="--input-mode"):
        train.make_config("attention", "demo", {"input_mode": "region"})
    with pytest.raises(ConfigError, match="--input-mode"):
        train.make_config("classifier", "demo", {"input_mode": "crops"})
    with pytest.raises(ConfigError, match="--batch-norm-momentum"):
        train.make_config("classifier", "demo", {"batch_norm_momentum": 1.5})


# ------------------------------------------------------------------------------------------------
# Configs and thresholds


def test_every_profile_configures_every_model():
    for profile in ("demo", "full", "study", "tiny"):
        for model in train.MODELS:
            config = train.make_config(model, profile)
            assert config.model == model and config.profile == profile


def test_study_profile_follows_the_studys_recipes():
    basic = train.make_config("basic", "study")
    assert (basic.loss, basic.learning_rate, basic.batch_size, basic.epochs, basic.patience,
            basic.monitor) == ("bce", 1e-3, 8, 20, 5, "val_loss")
    attention = train.make_config("attention", "study")
    assert (attention.loss, attention.learning_rate, attention.balance_ratio, attention.augment,
            attention.patience, attention.monitor) == ("dice_focal", 1e-4, 0.5, True, 10,
                                                       "val_best_dice")
    assert attention.reduce_lr_factor is not None and attention.filters == 32
    for config in (basic, attention):
        assert (config.input_size, config.working_size, config.patch_size) == (224, None, None)
        assert not config.patches and config.inference_size == 224 and config.resolution_reason
    classifier = train.make_config("classifier", "study")
    assert classifier.phase1_backbone == "frozen" and classifier.reduce_lr_factor == 0.3
    assert classifier.clipnorm == 1.0 and classifier.weight_decay > 0
    assert classifier.loss == "weighted_ce" and classifier.fine_tune_epochs > 0


def test_demo_and_full_segmenters_train_on_patches_at_a_working_size():
    for profile, working, patch in (("demo", 384, 128), ("full", 1024, 384), ("tiny", 64, 32)):
        for model in train.SEGMENTERS:
            config = train.make_config(model, profile)
            assert config.patches and (config.working_size, config.patch_size) == (working, patch)
            assert config.input_size == patch and config.inference_size == working
            assert config.resolution_reason and config.max_normal_flagged == 0.10
            assert config.steps_per_epoch and 0 < config.foreground_share < 1
            assert train.cache_size(config) == working
        basic = train.make_config("basic", profile)
        attention = train.make_config("attention", profile)
        assert basic.loss == "bce"  # the study's baseline, through the same patch pipeline
        assert (basic.working_size, basic.patch_size, basic.foreground_share, basic.batch_size,
                basic.steps_per_epoch) == (attention.working_size, attention.patch_size,
                                           attention.foreground_share, attention.batch_size,
                                           attention.steps_per_epoch)
    assert train.make_config("classifier", "demo").working_size is None


def test_patch_settings_are_checked():
    config = train.make_config("attention", "demo", {"input_size": 96})
    assert (config.patch_size, config.input_size, config.working_size) == (96, 96, 384)
    config = train.make_config("attention", "demo", {"working_size": 256, "patch_size": 64})
    assert (config.input_size, train.cache_size(config)) == (64, 256)
    for overrides, flag in (
        ({"patch_size": 72}, "--input-size"),
        ({"patch_size": 512}, "--patch-size"),
        ({"working_size": 100}, "--working-size"),
        ({"foreground_share": 1.5}, "--foreground-share"),
        ({"normal_bone_share": 0.6}, "--normal-bone-share"),  # demo foreground share 0.5
        ({"max_normal_flagged": -0.1}, "--max-normal-flagged"),
        ({"inference_window": 400}, "--inference-window"),
        ({"learning_rate_decay": "cosine"}, "--learning-rate-decay"),
        ({"tta_mirror": "yes"}, "--tta-mirror"),
    ):
        with pytest.raises(ConfigError, match=flag):
            train.make_config("attention", "demo", overrides)
    with pytest.raises(ConfigError, match="--working-size"):
        train.make_config("classifier", "demo", {"working_size": 256})
    with pytest.raises(ConfigError, match="--patch-size"):
        train.make_config("attention", "study", {"patch_size": 64})


def test_overrides_replace_fields_and_bad_ones_are_config_errors():
    config = train.make_config("attention_unet", "demo", {"epochs": 3, "input_size": 96, "batch_size": None})
    assert (config.epochs, config.input_size) == (3, 96)
    with pytest.raises(ConfigError, match="unknown training setting"):
        train.make_config("basic", "demo", {"epoch": 3})
    with pytest.raises(ConfigError, match="--input-size"):
        train.make_config("attention", "demo", {"input_size": 100})
    with pytest.raises(ConfigError, match="--epochs"):
        train.make_config("basic", "demo", {"epochs": 0})
    with pytest.raises(ConfigError, match="unknown model"):
        train.make_config("resnet")
    with pytest.raises(ConfigError, match="unknown profile"):
        train.make_config("basic", "huge")


class _Doubling:
    """A stand-in model: predict_on_batch gives half the first channel."""

    def __init__(self):
        self.shapes = []

    def predict_on_batch(self, batch):
        self.shapes.append(batch.shape)
        return batch[..., :1] * 0.5


def test_validation_maps_are_whole_images_cropped_to_their_content():
    size = 32
    originals = [np.full((16, 32), 100, np.uint8), np.full((32, 8), 200, np.uint8),
                 np.full((32, 32), 50, np.uint8)]
    arrays = SimpleNamespace(
        images=np.stack([images.letterbox_image(image, size) for image in originals]),
        masks=np.zeros((3, size, size), np.uint8),
        labels=np.array([1, 0, 2], np.int8),
    )
    arrays.masks[0, 10:14, 4:8] = 1
    data = SimpleNamespace(
        arrays=arrays, validation=np.array([0, 1, 2]),
        shapes=np.array([[16, 32], [32, 8], [32, 32]]),
    )
    data.content_boxes = lambda positions: train.TrainingData.content_boxes(data, positions)
    config = train.make_config("attention", "tiny", {"working_size": 32, "patch_size": 16})
    model = _Doubling()
    truths, maps, normal, seconds = train.validation_maps(model, config, data)
    assert [m.shape for m in maps] == [(16, 32), (32, 8), (32, 32)]
    assert [t.shape for t in truths] == [(16, 32), (32, 8), (32, 32)]
    np.testing.assert_allclose(maps[0], 0.5 * 100 / 255, rtol=1e-6)  # no padding left
    np.testing.assert_allclose(maps[1], 0.5 * 200 / 255, rtol=1e-6)
    assert truths[0].sum() == 16 and truths[0][2:6, 4:8].all()  # rows 10..14 - top 8
    np.testing.assert_array_equal(normal, [False, True, False])
    assert {shape[1:3] for shape in model.shapes} == {(32, 32)} and seconds >= 0
    mirrored = train.validation_maps(model, config, data, mirror=True)[1]
    np.testing.assert_allclose(mirrored[0], maps[0], rtol=1e-6)
    assert len(model.shapes) == 1 + 4


def test_the_operating_point_counts_normal_images_and_fills_threshold_json():
    # 16 x 16 images: the smallest lesion is 16 px (decisions.MIN_LESION_AREA_PX).
    truths = [np.zeros((16, 16), np.uint8) for _ in range(4)]
    truths[0][2:6, 2:6] = 1
    truths[1][9:13, 1:5] = 1
    maps = [np.zeros((16, 16), np.float32) for _ in range(4)]
    maps[0][2:6, 2:6] = 0.7
    maps[1][9:13, 1:5] = 0.4
    maps[2][0:5, 0:5] = 0.3   # a normal image: flagged up to 0.3
    normal = np.array([False, False, True, True])
    validation, threshold_json = train.operating_point_on_validation(truths, maps, normal, 0.10)
    # Below 0.3 the normal image is flagged (50% > 10%): the point is above 0.3, where image 1
    # (0.4) and image 0 (0.7) are both found up to 0.4.
    assert 0.3 < threshold_json["threshold"] <= 0.4
    assert validation["mean_dice"] == 1.0 and validation["normal_flagged"] == 0.0
    assert validation["tumour_found"] == 1.0
    assert (validation["tumour_images"], validation["normal_images"], validation["images"]) == (2, 2, 4)
    assert {"threshold", "min_lesion_fraction", "criterion", "split", "max_normal_flagged",
            "images", "table"} <= set(threshold_json)
    assert threshold_json["split"] == "val" and threshold_json["max_normal_flagged"] == 0.10
    assert "10%" in threshold_json["criterion"]
    from btseg.decisions import OperatingPoint

    point = OperatingPoint.from_json(threshold_json)
    assert point.threshold == validation["threshold"]
    assert point.min_lesion_fraction == validation["min_lesion_fraction"]
    loose = train.operating_point_on_validation(truths, maps, normal, 0.5)[0]
    assert loose["normal_flagged"] <= 0.5


# ------------------------------------------------------------------------------------------------
# Tiny trainings (a few steps at 64 px on a 30-image synthetic set)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from btseg.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic")
    return SimpleNamespace(data=generate(root / "data", n=30, seed=0), cache=root / "cache")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["basic", "attention", "classifier"])
def test_tiny_training_writes_a_complete_run_folder(synthetic, tmp_path, model):
    lines = []
    folder = train.train_model(model, synthetic.data, tmp_path, profile="tiny",
                               progress=lines.append, cache_dir=synthetic.cache)
    assert folder == tmp_path / runs.RUN_NAMES[model]
    assert runs.is_complete(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no temporary left
    config = json.loads((folder / "config.json").read_text())
    assert config["profile"] == "tiny"
    assert config["data"]["split_id"] and config["data"]["fingerprint"]
    assert config["versions"]["keras"] == keras.__version__
    assert config["hyperparameters"]["max_images"] == 12
    assert any("epoch 1/" in line and "left" in line for line in lines)
    history = (folder / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch") and len(history) >= 2
    run = runs.load_run(folder)
    if model == "classifier":
        assert run.threshold is None and run.model.output_shape == (None, 3)
        assert 0.0 <= config["validation"]["balanced_accuracy"] <= 1.0
        assert config["input_mode"] == "region" and config["region"]["source_size"] == 256
        low, high = config["region"]["side_range"]
        assert 0 < low <= high < 1
        assert config["validation"]["images"] == config["data"]["validation_images"]
        momenta = {layer.momentum for layer in run.model.layers
                   if isinstance(layer, keras.layers.BatchNormalization)}
        assert momenta == {0.9}  # saved with the model
    else:
        # Trained on 32 px patches of images letterboxed to 64 px, validated whole at 64 px.
        assert (config["input_size"], config["working_size"], config["patch_size"]) == (32, 64, 32)
        assert config["resolution_reason"] and config["input_shape"] == [None, None, 3]
        assert config["patches"]["validation_patches"] == 8
        assert config["tta_mirror"] is False and config["inference_window"] is None
        threshold = json.loads((folder / "threshold.json").read_text())
        assert {"threshold", "min_lesion_fraction", "criterion", "split", "max_normal_flagged",
                "images", "table"} <= set(threshold)
        assert threshold["split"] == "val" and threshold["max_normal_flagged"] == 0.10
        assert threshold["images"] == config["validation"]["images"]
        assert threshold["images"] == config["data"]["validation_images"]
        assert run.threshold == threshold["threshold"] == config["validation"]["threshold"]
        validation = config["validation"]
        for key in ("mean_dice", "tumour_found", "min_lesion_fraction"):
            assert 0.0 <= validation[key] <= 1.0
        if validation["normal_images"]:
            assert 0.0 <= validation["normal_flagged"] <= 1.0
        else:  # no normal image among the few validation images: nothing to count
            assert validation["normal_flagged"] is None
        assert validation["working_size"] == 64
        assert {"threshold", "min_lesion_fraction", "mean_dice_tumour", "normal_flagged",
                "tumour_found"} <= set(threshold["table"][0])
        assert run.model.output_shape == (None, None, None, 1)
        assert "normal images flagged" in lines[-1]


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


@pytest.mark.slow
def test_an_interrupted_training_keeps_the_old_run_and_leaves_nothing_that_looks_complete(synthetic, tmp_path):
    old = tmp_path / "basic_unet"
    old.mkdir()
    (old / "config.json").write_text('{"run": "basic_unet", "marker": "old"}')
    with pytest.raises(KeyboardInterrupt):
        train.train_model("basic", synthetic.data, tmp_path, profile="tiny", progress=lambda _: None,
                          cache_dir=synthetic.cache, callbacks=[_Interrupt()])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["basic_unet"]
    assert json.loads((old / "config.json").read_text())["marker"] == "old"


def test_a_temporary_folder_of_a_dead_process_is_removed(tmp_path):
    stale = tmp_path / ".tmp-basic_unet-999999999"
    stale.mkdir()
    live = tmp_path / f".tmp-basic_unet-{os.getpid()}"
    live.mkdir()
    runs.remove_dead_temporaries(tmp_path, ".tmp-basic_unet-*")
    assert not stale.exists()
    assert live.exists()
