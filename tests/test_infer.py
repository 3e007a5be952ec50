"""btseg.infer: lesions from masks (exact values), and tiny trained models end to end."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from btseg.config import CLASS_NAMES, PROJECT_ROOT
from btseg.data.images import DecodedImage
from btseg.errors import ConfigError, ImageError, RunError
from btseg.infer import (
    MIN_LESION_AREA_PX,
    Classifier,
    LesionFinding,
    Segmenter,
    crop_box,
    findings_from_mask,
    min_lesion_area,
    threshold_probability_map,
)


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
    """A phantom radiograph shrunk to 240 x 180 (not square, not the model size)."""
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


def test_min_lesion_area_is_16_px_or_a_ten_thousandth_of_the_image():
    assert MIN_LESION_AREA_PX == 16
    assert min_lesion_area((100, 100)) == 16  # 1 px by the fraction
    assert min_lesion_area((3000, 2400)) == 720
    assert min_lesion_area((401, 400)) == 17  # 16.04 rounds up


def two_regions_and_a_speck() -> np.ndarray:
    mask = np.zeros((50, 40), dtype=np.uint8)
    mask[30:40, 5:15] = 1  # 100 px, lower
    mask[2:6, 20:26] = 1  # 24 px, upper
    mask[6, 26] = 1  # touches the upper region diagonally: same 8-connected region (25 px)
    mask[45:47, 35:37] = 1  # 4 px speck
    return mask


def test_findings_from_mask_exact_values():
    lesions = findings_from_mask(two_regions_and_a_speck(), pixel_spacing_mm=(0.5, 0.2))
    assert [lesion.index for lesion in lesions] == [1, 2]
    upper, lower = lesions
    assert upper.area_px == 25 and upper.box == (20, 2, 27, 7)
    assert lower.area_px == 100 and lower.box == (5, 30, 15, 40)
    assert lower.area_percent == pytest.approx(100 * 100 / 2000)
    assert lower.area_mm2 == pytest.approx(100 * 0.5 * 0.2)
    assert upper.area_mm2 == pytest.approx(25 * 0.1)
    assert np.isnan(lower.mean_probability)  # no probability map given


def test_findings_without_spacing_have_no_mm2_and_min_area_is_adjustable():
    mask = two_regions_and_a_speck()
    assert all(lesion.area_mm2 is None for lesion in findings_from_mask(mask))
    assert [lesion.area_px for lesion in findings_from_mask(mask, min_area_px=1)] == [25, 100, 4]
    assert [lesion.area_px for lesion in findings_from_mask(mask, min_area_px=26)] == [100]
    assert findings_from_mask(np.zeros((5, 5))) == []


def test_threshold_probability_map_exact():
    probability = np.zeros((50, 40), dtype=np.float32)
    probability[30:40, 5:15] = 0.8
    probability[30:35, 5:15] = 0.6  # region mean (50 * 0.6 + 50 * 0.8) / 100 = 0.7
    probability[2:6, 20:26] = 0.3
    probability[45:47, 35:37] = 0.9  # a 4 px speck
    mask, lesions = threshold_probability_map(probability, 0.5)
    expected = np.zeros((50, 40), dtype=np.uint8)
    expected[30:40, 5:15] = 1
    assert mask.dtype == np.uint8 and np.array_equal(mask, expected)
    assert len(lesions) == 1 and lesions[0].mean_probability == pytest.approx(0.7)
    mask, lesions = threshold_probability_map(probability, 0.3)  # >= includes 0.3
    assert [lesion.area_px for lesion in lesions] == [24, 100]
    assert lesions[0].mean_probability == pytest.approx(0.3)
    assert mask.sum() == 124
    mask, lesions = threshold_probability_map(probability, 0.95)
    assert mask.sum() == 0 and lesions == []


def test_threshold_probability_map_many_regions_means_and_areas():
    # 60 regions take the whole-image bincount path for the means.
    probability = np.zeros((100, 120), dtype=np.float32)
    for index in range(60):
        row, column = divmod(index, 10)
        probability[row * 15 : row * 15 + 5, column * 12 : column * 12 + 4] = 0.2 + index / 100
    mask, lesions = threshold_probability_map(probability, 0.1)
    assert len(lesions) == 60 and mask.sum() == 60 * 20
    means = sorted(lesion.mean_probability for lesion in lesions)
    assert np.allclose(means, 0.2 + np.arange(60) / 100)


def test_islands_in_holes_and_holes_are_handled():
    mask = np.zeros((30, 30), dtype=np.uint8)
    mask[2:28, 2:28] = 1
    mask[6:24, 6:24] = 0  # a ring of 26 * 26 - 18 * 18 = 352 px around a hole
    mask[10:20, 10:20] = 1  # an island of 100 px inside the hole
    mask[14:16, 14:16] = 0  # with a hole of its own: 96 px
    lesions = findings_from_mask(mask)
    assert [(lesion.area_px, lesion.box) for lesion in lesions] == [
        (352, (2, 2, 28, 28)),
        (96, (10, 10, 20, 20)),
    ]


@pytest.mark.parametrize("density", [0.05, 0.3, 0.6])
def test_regions_agree_with_opencv_statistics(density):
    """Random masks (few and many regions, specks, holes) against connectedComponentsWithStats."""
    rng = np.random.default_rng(int(density * 100))
    small = rng.random((40, 30)) < density
    mask = cv2.resize(small.astype(np.uint8), (90, 120), interpolation=cv2.INTER_NEAREST)
    mask[rng.random(mask.shape) < 0.01] ^= 1  # specks and pinholes
    probability = rng.random(mask.shape).astype(np.float32)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    expected = sorted(
        (
            int(y),
            int(x),
            int(x + w),
            int(y + h),
            int(area),
            float(probability[labels == label].mean()),
        )
        for label, (x, y, w, h, area) in enumerate(stats)
        if label and area >= 20
    )
    kept_mask = np.isin(labels, [label for label in range(1, count) if stats[label, 4] >= 20])
    output, lesions = threshold_probability_map(
        np.where(mask > 0, 1.0, 0.0).astype(np.float32), 0.5, min_area_px=20
    )
    np.testing.assert_array_equal(output, kept_mask.astype(np.uint8))
    lesions = findings_from_mask(mask, probability_map=probability, min_area_px=20)
    found = sorted(
        (lesion.box[1], lesion.box[0], lesion.box[2], lesion.box[3], lesion.area_px,
         lesion.mean_probability)
        for lesion in lesions
    )  # fmt: skip
    assert [row[:5] for row in found] == [row[:5] for row in expected]
    np.testing.assert_allclose([row[5] for row in found], [row[5] for row in expected], rtol=1e-6)
    assert [lesion.index for lesion in lesions] == list(range(1, len(lesions) + 1))


def test_threshold_is_checked():
    with pytest.raises(ConfigError, match="between 0 and 1"):
        threshold_probability_map(np.zeros((4, 4)), 1.5)
    with pytest.raises(ConfigError):
        threshold_probability_map(np.zeros((4, 4)), float("nan"))


def test_rethreshold_of_a_3000x2400_map_is_fast():
    rng = np.random.default_rng(0)
    small = rng.random((96, 72)).astype(np.float32)
    probability = cv2.resize(small, (2400, 3000), interpolation=cv2.INTER_LINEAR)
    threshold_probability_map(probability, 0.5)
    timings = []
    for threshold in (0.3, 0.5, 0.9):
        start = time.perf_counter()
        mask, lesions = threshold_probability_map(probability, threshold)
        timings.append(time.perf_counter() - start)
        assert mask.shape == (3000, 2400) and lesions
    # About 40 ms on an idle core; the bound leaves room for a busy shared machine.
    assert min(timings) < 0.5


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
def test_batched_and_single_maps_agree(segmenter, runs):
    paths = sorted((runs["data"] / "images").iterdir())[:5]
    images = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in paths]
    batched = segmenter.probability_maps(images, batch_size=3)  # batches of 3 and 2
    for image, together in zip(images, batched, strict=True):
        (alone,) = segmenter.probability_maps([image], batch_size=1)
        assert together.shape == image.shape
        np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.slow
def test_segment_mask_lesions_and_rethreshold(segmenter, xray):
    spacing = (0.2, 0.1)
    image = DecodedImage(xray, "x.png", "PNG", 8, spacing, "L")
    probability = segmenter.probability_maps([xray])[0]
    threshold = float(np.quantile(probability, 0.85))  # a cut that leaves several regions
    result = segmenter.segment(image, threshold=threshold)
    np.testing.assert_array_equal(result.probability_map, probability)
    assert result.model_name == "attention_unet" and result.threshold == threshold

    above = probability >= threshold
    labels, count = ndimage.label(above, structure=np.ones((3, 3)))
    areas = np.bincount(labels.ravel())
    kept = areas >= min_lesion_area(xray.shape)
    kept[0] = False
    assert count > 0 and kept.any()
    np.testing.assert_array_equal(result.mask, kept[labels].astype(np.uint8))

    assert sum(lesion.area_px for lesion in result.lesions) == int(result.mask.sum())
    assert result.lesion_area_percent == pytest.approx(100 * result.mask.mean())
    for lesion in result.lesions:
        assert lesion.area_mm2 == pytest.approx(lesion.area_px * 0.02)
        assert threshold <= lesion.mean_probability <= 1.0
        x0, y0, x1, y1 = lesion.box
        assert result.mask[y0:y1, x0:x1].sum() >= lesion.area_px

    mask, lesions = threshold_probability_map(probability, threshold, pixel_spacing_mm=spacing)
    np.testing.assert_array_equal(mask, result.mask)
    assert lesions == result.lesions
    again = segmenter.segment(image, threshold=0.3).at_threshold(threshold)
    np.testing.assert_array_equal(again.mask, result.mask)
    assert again.lesions == result.lesions


@pytest.mark.slow
def test_segment_defaults_to_the_validation_threshold(segmenter, runs, xray):
    import json

    stored = json.loads((runs["attention"] / "threshold.json").read_text())["threshold"]
    assert segmenter.threshold == stored
    assert segmenter.segment(xray).threshold == stored


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
    np.testing.assert_allclose(batch[1], list(cropped.values()), atol=1e-5)
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


def test_a_region_classifier_is_given_the_largest_lesion():
    def finding(index, area, box):
        return LesionFinding(index, area, 0.0, None, box, 0.5)

    lesions = [finding(1, 30, (0, 0, 5, 6)), finding(2, 80, (10, 10, 20, 18)),
               finding(3, 80, (30, 30, 40, 38))]  # fmt: skip
    assert Classifier.lesion_to_classify(lesions) is lesions[1]  # ties: the first
    assert Classifier.lesion_to_classify(lesions).box == (10, 10, 20, 18)
    assert Classifier.lesion_to_classify([]) is None


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
