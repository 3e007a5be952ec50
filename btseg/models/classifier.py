"""DenseNet121 classifier for normal / benign / malignant radiographs.

The backbone's layers sit flat in the model's graph (not nested as a sub-model), so Grad-CAM
can reach the last convolutional activation by name: CLASSIFIER_GRADCAM_LAYER.
"""

from __future__ import annotations

from pathlib import Path

from btseg.config import CLASS_NAMES
from btseg.errors import ConfigError

#: Last activation of the DenseNet121 backbone, (H/32, W/32, 1024): the Grad-CAM target.
CLASSIFIER_GRADCAM_LAYER = "relu"
#: Prefix of the layers of the last dense block, unfrozen in fine-tuning.
LAST_DENSE_BLOCK_PREFIX = "conv5_"
#: File name under which Keras caches the ImageNet weights without the top (~/.keras/models/).
IMAGENET_WEIGHTS_FILE = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
#: ImageNet channel statistics of the DenseNet weights (inputs scaled to [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_CLASSIFIER_SIZE = 32


def build_classifier(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    weights: str | Path | None = None,
    dropout: float = 0.5,
    num_classes: int = len(CLASS_NAMES),
    batch_norm_momentum: float | None = None,
):
    """DenseNet121 classifier: (H, W, 3) float32 in [0, 1] -> (num_classes,) softmax probabilities.

    The image is normalised with the ImageNet channel statistics (a Normalization layer), then
    DenseNet121 without its top and with global average pooling, then the head
    Dense(512) -> batch norm -> ReLU -> dropout -> Dense(256, ReLU) -> Dense(num_classes, softmax).

    Args:
        input_shape: (height, width, 3); height and width at least 32.
        weights: None (random), "imagenet" (downloaded or taken from the Keras cache) or the
            path of a local DenseNet121 no-top weights file (.h5).
        dropout: dropout rate of the head.
        num_classes: number of output classes.
        batch_norm_momentum: momentum of every batch norm layer (backbone and head); None keeps
            Keras' default 0.99. A lower value lets inference statistics follow the weights in
            short trainings from random weights.

    Raises:
        ConfigError: the weights file is missing, cannot be downloaded or does not fit.
        ValueError: the input shape is too small or not 3-channel.
    """
    import keras
    from keras import layers

    if len(input_shape) != 3 or input_shape[2] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape}")
    if min(input_shape[0], input_shape[1]) < MIN_CLASSIFIER_SIZE:
        raise ValueError(
            f"DenseNet121 needs inputs of at least {MIN_CLASSIFIER_SIZE}x{MIN_CLASSIFIER_SIZE}, "
            f"got {input_shape[0]}x{input_shape[1]}"
        )
    inputs = keras.Input(shape=input_shape, name="image")
    normalised = layers.Normalization(
        mean=list(IMAGENET_MEAN),
        variance=[std**2 for std in IMAGENET_STD],
        name="imagenet_normalization",
    )(inputs)
    backbone = keras.applications.DenseNet121(
        include_top=False, weights=None, input_tensor=normalised, pooling="avg"
    )
    x = backbone.output
    x = layers.Dense(512, name="head_dense1")(x)
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.Activation("relu", name="head_relu")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(256, activation="relu", name="head_dense2")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="output")(x)
    model = keras.Model(inputs, outputs, name="classifier")
    if batch_norm_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = float(batch_norm_momentum)
    if weights is not None:
        _load_backbone_weights(model, input_shape, weights)
    return model


def backbone_layers(model) -> list:
    """The DenseNet121 layers of a classifier built by build_classifier (not input, not head)."""
    return [
        layer
        for layer in model.layers
        if not layer.name.startswith("head_")
        and layer.name not in ("image", "imagenet_normalization", "output")
    ]


def set_backbone_trainable(model, mode: str) -> None:
    """Freeze or unfreeze the backbone: mode "frozen", "last_block" (conv5_*, batch norms kept
    frozen so their statistics survive small batches) or "all". The head stays trainable."""
    from keras import layers

    if mode not in ("frozen", "last_block", "all"):
        raise ValueError(f"mode must be 'frozen', 'last_block' or 'all', got {mode!r}")
    for layer in backbone_layers(model):
        if mode == "all":
            layer.trainable = True
        elif mode == "frozen":
            layer.trainable = False
        else:
            layer.trainable = layer.name.startswith(LAST_DENSE_BLOCK_PREFIX) and not isinstance(
                layer, layers.BatchNormalization
            )


def _load_backbone_weights(model, input_shape: tuple[int, int, int], weights) -> None:
    """Load DenseNet121 weights into a standalone backbone, then copy them layer by layer."""
    import keras

    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(
                "the DenseNet121 weights file does not exist",
                where=str(path),
                fix=f"pass the path of a local {IMAGENET_WEIGHTS_FILE}, or use weights=None",
            )
        weights = str(path)
    try:
        source = keras.applications.DenseNet121(
            include_top=False, weights=weights, input_shape=input_shape, pooling="avg"
        )
    except (OSError, ValueError) as error:
        if weights != "imagenet":
            raise ConfigError(
                f"cannot load DenseNet121 no-top weights ({error})",
                where=str(weights),
                fix=f"pass a DenseNet121 no-top weights file such as {IMAGENET_WEIGHTS_FILE}",
            ) from error
        raise _imagenet_error(error) from error
    except Exception as error:  # urllib and http errors when offline
        if weights != "imagenet":
            raise
        raise _imagenet_error(error) from error
    by_name = {layer.name: layer for layer in source.layers}
    for layer in backbone_layers(model):
        if layer.weights:
            layer.set_weights(by_name[layer.name].get_weights())


def _imagenet_error(error: Exception) -> ConfigError:
    cache = Path("~/.keras/models").expanduser() / IMAGENET_WEIGHTS_FILE
    return ConfigError(
        f"the ImageNet weights of DenseNet121 could not be downloaded ({error})",
        where=str(cache),
        fix=(
            f"on a machine with network access download {IMAGENET_WEIGHTS_FILE} from "
            "https://storage.googleapis.com/tensorflow/keras-applications/densenet/ and copy it "
            f"to {cache}, or pass its path with --weights PATH, or train with weights=None"
        ),
    )
