"""Builders: parameter counts, output shapes, layer names, safe_mode reloads."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from btseg.errors import ConfigError
from btseg.models.attention_unet import build_attention_unet
from btseg.models.classifier import (
    CLASSIFIER_GRADCAM_LAYER,
    build_classifier,
    set_backbone_trainable,
)
from btseg.models.unet import build_basic_unet


def test_basic_unet_has_the_studys_parameter_count():
    # Hand count: encoder 16-32-64 + 128 bottleneck = 293,520; decoder 193,760; output 17.
    model = build_basic_unet((224, 224, 3))
    assert model.count_params() == 487_297
    assert abs(model.count_params() - 490_000) / 490_000 < 0.02


def test_attention_unet_has_about_eight_million_parameters_at_filters_32():
    model = build_attention_unet((224, 224, 3), filters=32)
    assert abs(model.count_params() - 8_000_000) / 8_000_000 < 0.03


@pytest.mark.parametrize("builder", [build_basic_unet, build_attention_unet])
def test_segmenters_map_an_image_to_a_probability_map_of_the_same_size(builder):
    model = builder((64, 64, 3))
    images = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (2, 64, 64, 1)
    assert probabilities.dtype == np.float32
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0


def test_segmenter_layers_have_predictable_names():
    basic = {layer.name for layer in build_basic_unet((64, 64, 3)).layers}
    assert {"enc1_conv1", "enc3_pool", "bottleneck_conv2", "dec1_upsample", "dec2_concat",
            "output"} <= basic
    attention = {layer.name for layer in build_attention_unet((64, 64, 3), filters=4).layers}
    assert {"enc4_bn2", "bottleneck_dropout", "dec4_upsample", "att_gate3_coefficients",
            "att_gate1_multiply", "dec2_concat", "output"} <= attention


def test_attention_gate_outputs_one_coefficient_map_in_0_1():
    model = build_attention_unet((32, 32, 3), filters=4)
    gate = model.get_layer("att_gate2_coefficients").output
    probe = keras.Model(model.input, gate)
    values = probe.predict(np.ones((1, 32, 32, 3), np.float32), verbose=0)
    assert values.shape == (1, 16, 16, 1)
    assert values.min() >= 0.0 and values.max() <= 1.0


def test_segmenters_refuse_sizes_the_pooling_cannot_halve():
    with pytest.raises(ValueError, match="divisible by 8"):
        build_basic_unet((60, 64, 3))
    with pytest.raises(ValueError, match="divisible by 16"):
        build_attention_unet((72, 72, 3))


def test_classifier_outputs_three_class_probabilities_at_64_px():
    model = build_classifier((64, 64, 3))
    probabilities = model.predict(np.zeros((2, 64, 64, 3), np.float32), verbose=0)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_classifier_backbone_is_flat_so_gradcam_reaches_the_last_activation():
    model = build_classifier((64, 64, 3))
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.get_layer(CLASSIFIER_GRADCAM_LAYER).output.shape == (None, 2, 2, 1024)
    assert model.get_layer("conv5_block16_2_conv") is not None


def test_freezing_the_backbone_leaves_only_the_head_trainable():
    model = build_classifier((32, 32, 3))
    set_backbone_trainable(model, "frozen")
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"head_dense1", "head_bn", "head_dense2", "output"}
    set_backbone_trainable(model, "last_block")
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert "conv5_block16_2_conv" in trainable
    assert "conv4_block24_2_conv" not in trainable
    assert not any(name.endswith("_bn") for name in trainable - {"head_bn"})


def test_classifier_refuses_inputs_smaller_than_densenet_allows():
    with pytest.raises(ValueError, match="at least 32"):
        build_classifier((16, 16, 3))


def test_missing_classifier_weights_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_classifier((32, 32, 3), weights=tmp_path / "absent.h5")


@pytest.mark.slow
def test_classifier_loads_a_local_backbone_weights_file(tmp_path):
    source = keras.applications.DenseNet121(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    path = tmp_path / "densenet.weights.h5"
    source.save_weights(str(path))
    model = build_classifier((32, 32, 3), weights=path)
    for name in ("conv1_conv", "conv5_block16_2_conv", "bn"):
        for mine, theirs in zip(model.get_layer(name).get_weights(),
                                source.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(
    "builder",
    [
        lambda: build_basic_unet((32, 32, 3)),
        lambda: build_attention_unet((32, 32, 3), filters=4),
        pytest.param(lambda: build_classifier((32, 32, 3)), marks=pytest.mark.slow),
    ],
    ids=["basic", "attention", "classifier"],
)
def test_saved_models_reload_in_safe_mode_with_identical_outputs(tmp_path, builder):
    from btseg.models import losses

    model = builder()
    segmenter = model.output.shape[-1] == 1
    if segmenter:
        model.compile(optimizer="adam", loss=losses.DiceFocalLoss(),
                      metrics=[losses.DiceCoefficient(), losses.ForegroundIoU(),
                               losses.BestThresholdDice()])
    else:
        model.compile(optimizer="adam",
                      loss=losses.WeightedCategoricalCrossEntropyLoss([0.5, 1.0, 3.0]),
                      metrics=[losses.BalancedAccuracy()])
    path = tmp_path / "model.keras"
    model.save(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
        reloaded = keras.saving.load_model(path, safe_mode=True)
    images = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(images, verbose=0), reloaded.predict(images, verbose=0))
    if segmenter:
        assert isinstance(reloaded.loss, losses.DiceFocalLoss)
    else:
        assert reloaded.loss.class_weights == [0.5, 1.0, 3.0]


@pytest.mark.parametrize(
    "builder",
    [lambda: build_basic_unet((None, None, 3)),
     lambda: build_attention_unet((None, None, 3), filters=4)],
    ids=["basic", "attention"],
)
def test_variable_size_segmenters_train_on_patches_and_run_on_whole_images(tmp_path, builder):
    from btseg.models import losses

    model = builder()
    assert model.input_shape == (None, None, None, 3)
    model.compile(optimizer="adam", loss=losses.DiceFocalLoss(), metrics=[losses.BestThresholdDice()])
    rng = np.random.default_rng(0)
    patches = rng.random((4, 32, 32, 3), dtype=np.float32)
    model.fit(patches, (patches[..., :1] > 0.5).astype(np.float32), epochs=1, verbose=0)
    for shape in ((1, 96, 96, 3), (2, 48, 80, 3)):
        assert model.predict(np.zeros(shape, np.float32), verbose=0).shape == (*shape[:3], 1)
    path = tmp_path / "model.keras"
    model.save(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
        reloaded = keras.saving.load_model(path, safe_mode=True)
    assert reloaded.input_shape == (None, None, None, 3)
    images = rng.random((1, 64, 64, 3), dtype=np.float32)
    # Same weights; oneDNN may pick another kernel for a retraced graph: equal to rounding.
    np.testing.assert_allclose(
        model.predict(images, verbose=0), reloaded.predict(images, verbose=0), atol=1e-5
    )
    fixed = {layer.name for layer in builder().layers}
    assert {layer.name for layer in reloaded.layers} == fixed  # same layer names as before


def test_variable_size_builders_skip_only_the_unknown_sides():
    with pytest.raises(ValueError, match="divisible by 16"):
        build_attention_unet((None, 72, 3))
    assert build_basic_unet((None, 64, 3)).input_shape == (None, None, 64, 3)
