"""The study's improved model: an attention U-Net, about 8.0 M parameters at filters=32.

Four encoder levels (filters, 2f, 4f, 8f) of two 3x3 convolution + batch norm + ReLU blocks,
a 16f bottleneck with dropout, and a decoder that upsamples, gates the skip with an additive
attention gate, concatenates and convolves. Layer names: enc1_conv1, enc1_bn1, enc1_relu1,
enc1_pool, bottleneck_dropout, dec4_upsample, att_gate4_gating_conv, att_gate4_skip_conv,
att_gate4_coefficients (the (H, W, 1) attention map), att_gate4_multiply, dec4_concat,
dec4_conv1, output.
"""

from __future__ import annotations

from btseg.models.unet import _check_divisible, encode

ATTENTION_UNET_LEVELS = 4


def _conv_block(x, filters: int, prefix: str):
    """Two (3x3 convolution, batch norm, ReLU) blocks named <prefix>_conv1/_bn1/_relu1, ..."""
    from keras import layers

    for index in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=True, name=f"{prefix}_conv{index}")(x)
        x = layers.BatchNormalization(name=f"{prefix}_bn{index}")(x)
        x = layers.Activation("relu", name=f"{prefix}_relu{index}")(x)
    return x


def attention_gate(skip, gating, inter_filters: int, prefix: str):
    """Additive attention gate: weights the skip features (H, W, C) by a (H, W, 1) map in [0, 1].

    1x1 convolution + batch norm on the gating signal and on the skip, add, ReLU, 1x1
    convolution to one channel, batch norm, sigmoid, multiply the skip. The gating signal is
    the upsampled decoder feature map, so both inputs have the same height and width.
    """
    from keras import layers

    gating_features = layers.Conv2D(inter_filters, 1, name=f"{prefix}_gating_conv")(gating)
    gating_features = layers.BatchNormalization(name=f"{prefix}_gating_bn")(gating_features)
    skip_features = layers.Conv2D(inter_filters, 1, name=f"{prefix}_skip_conv")(skip)
    skip_features = layers.BatchNormalization(name=f"{prefix}_skip_bn")(skip_features)
    x = layers.Add(name=f"{prefix}_add")([gating_features, skip_features])
    x = layers.Activation("relu", name=f"{prefix}_relu")(x)
    x = layers.Conv2D(1, 1, name=f"{prefix}_psi_conv")(x)
    x = layers.BatchNormalization(name=f"{prefix}_psi_bn")(x)
    coefficients = layers.Activation("sigmoid", name=f"{prefix}_coefficients")(x)
    return layers.Multiply(name=f"{prefix}_multiply")([skip, coefficients])


def build_attention_unet(
    input_shape: tuple[int, int, int] = (224, 224, 3), filters: int = 32, dropout: float = 0.2
):
    """Attention U-Net: (H, W, C) float32 in [0, 1] -> (H, W, 1) tumour probability.

    Args:
        input_shape: (height, width, channels); height and width divisible by 16, or None
            (``(None, None, 3)``: runs on any size divisible by 16, e.g. trained on 128 px
            patches and run on 384 px images).
        filters: filters of the first level; levels use filters * (1, 2, 4, 8) and the
            bottleneck filters * 16 (32 gives 32-64-128-256 and 512, about 8.0 M parameters).
        dropout: dropout rate after the bottleneck.

    The attention gates use filters / 2 of the skip level as their intermediate width. The
    output is a 1x1 sigmoid convolution kept in float32 under mixed precision.

    Raises:
        ValueError: for a bad shape, filters < 1 or dropout outside [0, 1).
    """
    import keras
    from keras import layers

    _check_divisible(input_shape, 2**ATTENTION_UNET_LEVELS)
    if filters < 1:
        raise ValueError(f"filters must be at least 1, got {filters}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    level_filters = [filters * 2**level for level in range(ATTENTION_UNET_LEVELS)]

    inputs = keras.Input(shape=input_shape, name="image")
    x, skips = encode(inputs, level_filters, _conv_block)
    x = _conv_block(x, filters * 2**ATTENTION_UNET_LEVELS, "bottleneck")
    x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in range(ATTENTION_UNET_LEVELS, 0, -1):
        level_filter = level_filters[level - 1]
        x = layers.UpSampling2D(2, name=f"dec{level}_upsample")(x)
        gated_skip = attention_gate(
            skips[level - 1], x, max(1, level_filter // 2), f"att_gate{level}"
        )
        x = layers.Concatenate(name=f"dec{level}_concat")([x, gated_skip])
        x = _conv_block(x, level_filter, f"dec{level}")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="output")(x)
    return keras.Model(inputs, outputs, name="attention_unet")
