"""The models btseg trains, evaluates and serves: one table, read by the CLI, training,
evaluation, the pages and the tests.

    registry.MODELS["attention"].run        # "attention_unet": its folder under models/
    registry.model_for("basic_unet").title  # "Basic U-Net"
    registry.SEGMENTERS                     # the two U-Nets, the one a user sees first first

Adding a model means one row here (and its builder in btseg.models, its recipes in
btseg.train); nothing else lists the models.
"""

from __future__ import annotations

from dataclasses import dataclass

from btseg.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """One model.

    Attributes:
        key: the --model value ("basic", "attention", "classifier").
        run: its run folder name under the models folder.
        title: how pages and reports name it.
        long_title: its name where there is room (the home page's cards).
        colour: its colour in every figure (hex).
        task: "segmentation" or "classification".
        builder: the function in btseg.models that builds it.
        loss: the loss of its recipes, in words.
        summary: one line on what it is.
    """

    key: str
    run: str
    title: str
    colour: str
    task: str
    builder: str
    loss: str
    summary: str
    long_title: str = ""

    @property
    def is_segmenter(self) -> bool:
        return self.task == "segmentation"


#: In training and evaluation order (the classifier last: its verdict uses the attention U-Net).
MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec(
            key="basic",
            run="basic_unet",
            title="Basic U-Net",
            colour="#7f8c8d",
            task="segmentation",
            builder="btseg.models.unet.build_basic_unet",
            loss="binary cross-entropy (the study's baseline)",
            summary="the study's baseline U-Net",
        ),
        ModelSpec(
            key="attention",
            run="attention_unet",
            title="Attention U-Net",
            colour="#0f6e8c",
            task="segmentation",
            builder="btseg.models.attention_unet.build_attention_unet",
            loss="Dice + focal",
            summary="the study's improved U-Net: attention gates, batch norm, dropout",
        ),
        ModelSpec(
            key="classifier",
            run="classifier",
            title="Classifier",
            long_title="DenseNet121 classifier",
            colour="#8e44ad",
            task="classification",
            builder="btseg.models.classifier.build_classifier",
            loss="class-weighted cross-entropy",
            summary="DenseNet121: normal, benign or malignant",
        ),
    )
}

#: Run folder name -> spec.
BY_RUN: dict[str, ModelSpec] = {spec.run: spec for spec in MODELS.values()}
#: The segmenters, the one the pages show first first.
SEGMENTERS: tuple[ModelSpec, ...] = (MODELS["attention"], MODELS["basic"])
#: Run names in training and evaluation order.
RUN_ORDER: tuple[str, ...] = tuple(spec.run for spec in MODELS.values())
SEGMENTATION_RUNS: tuple[str, ...] = tuple(
    spec.run for spec in MODELS.values() if spec.is_segmenter
)
CLASSIFIER_RUN = MODELS["classifier"].run


def model_for(name: str) -> ModelSpec:
    """The spec of a model key or run name ("basic", "basic_unet", "Attention" ...).

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
    """
    text = str(name).strip().lower()
    spec = MODELS.get(text) or BY_RUN.get(text)
    if spec is None:
        raise ConfigError(
            f"unknown model {name!r}",
            where="--model",
            fix=f"choose {', '.join(MODELS)} or all",
        )
    return spec


def title_of(run: str) -> str:
    """The title of a run name (the name itself for a folder that is no known model)."""
    spec = BY_RUN.get(run)
    return spec.title if spec is not None else run
