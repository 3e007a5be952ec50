"""btseg.infer: lesions from masks (exact values), and tiny trained models end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from btseg.config import CLASS_NAMES, PROJECT_ROOT
from btseg.data.regions import crop_box
from btseg.errors import ImageError, RunError
from btseg.infer import Classifier, Segmenter


def tiny_runs(trained_models) -> dict[str, Path]:
    """The session's tiny dataset and its tiny attention U-Net and classifier runs
    (tests/model_fixtures.py), shared with test_predict.py."""
    return {
        "data": trained_models.data_dir,
        "attention": trained_models.models_dir / "attention_unet",
        "classifier": trained_models.models_dir / "classifier",
    }


@pytest.fixture(scope="module")
def runs(trained_models):
    return tiny_runs(trained_models)


@pytest.fixture(scope="module")
def segmenter(runs):
    return Segmenter.from_run(runs["attention"])


@pytest.fixture(scope="module")
def classifier(runs):
    return Classifier.from_run(runs["classifier"])


@pytest.fixture(scope="module")
def xray(runs):
    """A synthetic radiograph shrunk to 240 x 180 (not square, not the model size)."""
    path = sorted((runs["data"] / "images").iterdir())[0]
    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(pixels, (180, 240), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------------
# No model


def test_import_does_not_import_tensorflow():
    code = "import sys, btseg.infer; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_crop_box_adds_15_percent_each_side_and_clips():
    assert crop_box((400, 300), (100, 100, 200, 300)) == (85, 70, 215, 330)
    assert crop_box((400, 300), (0, 350, 290, 400)) == (0, 342, 300, 400)
    assert crop_box((400, 300), (200, 300, 100, 100)) == (85, 70, 215, 330)  # corners swapped
    with pytest.raises(ImageError, match="no area"):
        crop_box((400, 300), (500, 500, 600, 600))
    with pytest.raises(ImageError):
        crop_box((400, 300), (10, 10, 10, 10))


# ------------------------------------------------------------------------------------------------
# Tiny trained models


@pytest.mark.slow
def test_probability_map_has_the_original_shape_and_range(segmenter, xray):
    (probability,) = segmenter.probability_maps([xray])
    assert probability.shape == xray.shape and probability.dtype == np.float32
    assert 0.0 <= probability.min() <= probability.max() <= 1.0
    assert probability.std() > 0


@pytest.mark.slow
def test_classifier_probabilities_and_box(classifier, xray):
    probabilities = classifier.predict(xray)
    assert list(probabilities) == list(CLASS_NAMES)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= value <= 1.0 for value in probabilities.values())

    box = (40, 60, 140, 160)  # 100 x 100 -> widened by 15 px each side
    cropped = classifier.predict(xray[45:175, 25:155])
    assert classifier.predict(xray, box=box) == pytest.approx(cropped, abs=1e-6)
    batch = classifier.predict_batch([xray, xray[45:175, 25:155]], batch_size=2)
    assert batch.shape == (2, 3)
    # predict_batch gives the model's own probabilities; predict calibrates them when the run
    # has a temperature (fitted by btseg evaluate).
    raw = classifier.predict(xray[45:175, 25:155], calibrated=False)
    np.testing.assert_allclose(batch[1], list(raw.values()), atol=1e-5)
    with pytest.raises(ImageError):
        classifier.predict(xray, box=(500, 500, 600, 600))


@pytest.mark.slow
def test_grad_cam_shape_and_range(classifier, xray):
    heatmap = classifier.grad_cam(xray)
    assert heatmap.shape == xray.shape and heatmap.dtype == np.float32
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0
    for class_index in range(3):
        other = classifier.grad_cam(xray, class_index=class_index)
        assert other.shape == xray.shape and 0.0 <= other.min() <= other.max() <= 1.0
    with pytest.raises(ValueError):
        classifier.grad_cam(xray, class_index=3)


@pytest.mark.slow
def test_grad_cam_of_a_box_is_that_of_its_region_and_zero_outside(classifier, xray):
    box = (40, 60, 140, 160)
    heatmap = classifier.grad_cam(xray, class_index=1, box=box)
    assert heatmap.shape == xray.shape
    region = classifier.grad_cam(np.ascontiguousarray(xray[45:175, 25:155]), class_index=1)
    np.testing.assert_allclose(heatmap[45:175, 25:155], region, atol=1e-5)
    outside = np.ones(xray.shape, bool)
    outside[45:175, 25:155] = False
    assert not heatmap[outside].any()


@pytest.mark.slow
def test_the_demo_recipe_classifier_knows_it_classifies_regions(classifier, runs):
    assert classifier.classifies_regions and classifier.input_mode == "region"


@pytest.mark.slow
def test_runs_of_the_wrong_kind_or_missing_are_run_errors(runs, tmp_path):
    with pytest.raises(RunError, match="classification run, not a segmentation"):
        Segmenter.from_run(runs["classifier"])
    with pytest.raises(RunError, match="segmentation run, not a classification"):
        Classifier.from_run(runs["attention"])
    with pytest.raises(RunError, match="btseg train --model attention"):
        Segmenter.from_run(tmp_path / "attention_unet")


@pytest.mark.slow
def test_grad_cam_matches_an_eager_computation(classifier, runs):
    """At model size (no letterbox), the heatmap is the normalised Grad-CAM map upsampled."""
    import keras
    import tensorflow as tf

    from btseg.data.images import preprocess
    from btseg.models.classifier import CLASSIFIER_GRADCAM_LAYER

    size = classifier.input_size
    path = sorted((runs["data"] / "images").iterdir())[1]
    image = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (size, size))
    layer = classifier.model.get_layer(CLASSIFIER_GRADCAM_LAYER)
    model = keras.Model(classifier.model.inputs, [layer.output, classifier.model.output])
    batch = tf.constant(preprocess(image, size)[None])
    for class_index in (None, 2):
        with tf.GradientTape() as tape:
            activations, probabilities = model(batch, training=False)
            chosen = int(np.argmax(probabilities[0])) if class_index is None else class_index
            score = probabilities[:, chosen]
        gradients = tape.gradient(score, activations)[0].numpy()
        cam = np.maximum((activations[0].numpy() * gradients.mean(axis=(0, 1))).sum(axis=-1), 0)
        if cam.max() > 0:
            cam = cam / cam.max()
        expected = np.clip(cv2.resize(cam.astype(np.float32), (size, size)), 0, 1)
        heatmap = classifier.grad_cam(image, class_index=class_index)
        np.testing.assert_allclose(heatmap, expected, atol=1e-4)


def test_crop_box_refuses_non_numbers():
    with pytest.raises(ImageError):
        crop_box((400, 300), (float("nan"), 0, 10, 10))
    with pytest.raises(ImageError, match="four numbers"):
        crop_box((400, 300), (1, 2, 3))
