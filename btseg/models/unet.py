"""The study's basic U-Net: three encoder levels (16-32-64), a 128 bottleneck, about 0.49 M parameters.

Layer names are predictable (enc1_conv1, enc1_pool, bottleneck_conv2, dec3_upsample,
dec3_concat, dec3_conv1, output) so tools such as Grad-CAM can find them.
"""

from __future__ import annotations

#: Filters of the encoder levels, from the full-resolution level down.
BASIC_UNET_FILTERS: tuple[int, ...] = (16, 32, 64)
BASIC_UNET_BOTTLENECK = 128


def _conv_pair(x, filters: int, prefix: str):
    """Two 3x3 ReLU convolutions named <prefix>_conv1 and <prefix>_conv2."""
    from keras import layers

    for index in (1, 2):
        x = layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=f"{prefix}_conv{index}"
        )(x)
    return x


def encode(x, level_filters, block):
    """The U-Net encoder both U-Nets share: at each level `block(x, filters, "enc<level>")`,
    kept as the level's skip, then 2x2 max-pooling named enc<level>_pool.

    Returns:
        (the pooled output of the last level, the skips from the full-resolution level down).
    """
    from keras import layers

    skips = []
    for level, filters in enumerate(level_filters, start=1):
        x = block(x, filters, f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    return x, skips


def build_basic_unet(input_shape: tuple[int, int, int] = (224, 224, 3)):
    """Basic U-Net: (H, W, C) float32 in [0, 1] -> (H, W, 1) tumour probability.

    Encoder 16-32-64 (two 3x3 ReLU convolutions, then 2x2 max-pooling), a 128-filter bottleneck,
    a decoder that upsamples (UpSampling2D, nearest) and concatenates the skip, and a 1x1
    sigmoid output kept in float32 under mixed precision. H and W must be divisible by 8, or
    None: ``(None, None, 3)`` builds a fully convolutional model that runs on any size divisible
    by 8 (trained on patches, run on whole images).

    Raises:
        ValueError: when H or W is not divisible by 8.
    """
    import keras
    from keras import layers

    _check_divisible(input_shape, 2 ** len(BASIC_UNET_FILTERS))
    inputs = keras.Input(shape=input_shape, name="image")
    x, skips = encode(inputs, BASIC_UNET_FILTERS, _conv_pair)
    x = _conv_pair(x, BASIC_UNET_BOTTLENECK, "bottleneck")
    for level in range(len(BASIC_UNET_FILTERS), 0, -1):
        x = layers.UpSampling2D(2, name=f"dec{level}_upsample")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level - 1]])
        x = _conv_pair(x, BASIC_UNET_FILTERS[level - 1], f"dec{level}")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="output")(x)
    return keras.Model(inputs, outputs, name="basic_unet")


def _check_divisible(input_shape: tuple[int, int, int], factor: int) -> None:
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    height, width = input_shape[0], input_shape[1]
    # None: any size (a fully convolutional model run on patches and on whole images); the
    # caller then passes sizes divisible by `factor`.
    if (height is not None and height % factor) or (width is not None and width % factor):
        raise ValueError(
            f"input height and width must be divisible by {factor}, got {height}x{width}"
        )
