"""Patch sampling and whole-image prediction (btseg.patches)."""

from __future__ import annotations

import numpy as np
import pytest

from btseg import patches
from btseg.data import images


def _letterboxed(count: int = 8, size: int = 64, tumours: int = 4, seed: int = 0):
    """Letterboxed images of 40 x 64 originals (content rows 12..52) with a 3x3 lesion on each
    of the first `tumours` images; the others are normal."""
    rng = np.random.default_rng(seed)
    originals = rng.integers(1, 256, (count, 40, 64), dtype=np.uint8)
    boxed = np.stack([images.letterbox_image(image, size) for image in originals])
    masks = np.zeros((count, size, size), np.uint8)
    for index in range(tumours):
        row, column = 14 + 8 * index, 5 + 12 * index
        masks[index, row : row + 3, column : column + 3] = 1
    boxes = np.array([patches.content_box((40, 64), size)] * count)
    return boxed, masks, boxes


def test_content_box_is_the_letterbox_geometry_and_can_be_estimated_from_pixels():
    assert patches.content_box((40, 64), 64) == (12, 0, 52, 64)
    assert patches.content_box((64, 21), 64) == (0, 21, 64, 42)  # odd padding at the right
    for shape in ((40, 64), (64, 21), (64, 64), (33, 64)):
        image = images.letterbox_image(np.full(shape, 200, np.uint8), 64)
        assert patches.estimate_content_box(image) == patches.content_box(shape, 64)
    # A black border of the radiograph on one side is not taken for padding.
    original = np.full((40, 64), 200, np.uint8)
    original[:6] = 0
    assert patches.estimate_content_box(images.letterbox_image(original, 64)) == (12, 0, 52, 64)


def test_sampler_reaches_the_foreground_share_and_samples_normal_images():
    boxed, masks, boxes = _letterboxed()
    sampler = patches.PatchSampler(boxed, masks, np.arange(8), 16, 1 / 3, boxes=boxes, seed=0)
    drawn = sampler.draw(3000)
    assert drawn.images.shape == (3000, 16, 16) and drawn.masks.shape == (3000, 16, 16)
    assert drawn.foreground.mean() == pytest.approx(1 / 3, abs=0.03)
    # Every lesion-centred patch holds lesion pixels (the jitter is a quarter of the patch).
    assert drawn.masks[drawn.foreground].reshape(-1, 256).any(axis=1).all()
    # The random patches come from every image, the normal ones (4..7) included.
    assert set(drawn.positions[~drawn.foreground]) == set(range(8))
    assert set(drawn.positions[drawn.foreground]) == {0, 1, 2, 3}
    with_lesion = drawn.masks.reshape(3000, -1).any(axis=1).mean()
    assert with_lesion > drawn.foreground.mean()  # random patches sometimes hold a lesion too


def test_bone_patches_are_centred_on_the_bright_bone_of_normal_images():
    size = 64
    boxed, masks, boxes = _letterboxed(size=size)
    # A bright vertical "bone" in columns 40..47 of every image's content, dark elsewhere.
    boxed[:, 12:52, :] = 30
    boxed[:, 12:52, 40:48] = 220
    plain = patches.PatchSampler(boxed, masks, np.arange(8), 16, 0.5, boxes=boxes, seed=4)
    same = patches.PatchSampler(boxed, masks, np.arange(8), 16, 0.5, boxes=boxes, seed=4,
                                normal_bone_share=0.0)  # fmt: skip
    np.testing.assert_array_equal(plain.draw(200).origins, same.draw(200).origins)
    bone = patches.PatchSampler(boxed, masks, np.arange(8), 16, 0.5, boxes=boxes, seed=4,
                                normal_bone_share=0.5)  # fmt: skip
    drawn = bone.draw(2000)
    assert drawn.foreground.mean() == pytest.approx(0.5, abs=0.04)
    background = ~drawn.foreground
    assert set(drawn.positions[background]) == {4, 5, 6, 7}  # normal images only
    centres = drawn.origins[background, 1] + 8  # the jitter is at most a quarter patch
    assert np.all((centres >= 40 - 4) & (centres < 48 + 4))
    pixels = patches.bone_pixels(boxed[4], boxes[4])
    rows, columns = np.divmod(pixels, size)
    assert rows.min() >= 12 and rows.max() < 52 and set(np.unique(columns)) <= set(range(40, 48))
    with pytest.raises(ValueError, match="normal_bone_share"):
        patches.PatchSampler(boxed, masks, np.arange(8), 16, 0.6, boxes=boxes, normal_bone_share=0.5)


def test_patches_stay_inside_the_image_content_and_match_the_arrays():
    boxed, masks, boxes = _letterboxed()
    sampler = patches.PatchSampler(boxed, masks, np.arange(8), 24, 0.5, boxes=boxes, seed=3)
    drawn = sampler.draw(500)
    rows, columns = drawn.origins[:, 0], drawn.origins[:, 1]
    assert rows.min() >= 12 and (rows + 24).max() <= 52  # content rows 12..52 of 64
    assert columns.min() >= 0 and (columns + 24).max() <= 64
    for index in range(0, 500, 37):
        row, column, position = rows[index], columns[index], drawn.positions[index]
        np.testing.assert_array_equal(
            drawn.images[index], boxed[position, row : row + 24, column : column + 24]
        )
        np.testing.assert_array_equal(
            drawn.masks[index], masks[position, row : row + 24, column : column + 24]
        )
    assert (drawn.images > 0).all()  # no padding in any patch


def test_a_patch_larger_than_the_content_is_centred_on_it():
    boxed, masks, boxes = _letterboxed()
    sampler = patches.PatchSampler(boxed, masks, np.arange(8), 48, 0.5, boxes=boxes, seed=0)
    drawn = sampler.draw(200)
    assert set(drawn.origins[:, 0]) == {8}  # content 12..52 (40 rows) centred in 48
    assert drawn.origins[:, 1].min() >= 0 and drawn.origins[:, 1].max() <= 16


def test_sampling_is_deterministic_by_seed():
    boxed, masks, boxes = _letterboxed()

    def draw(seed):
        sampler = patches.PatchSampler(boxed, masks, np.arange(8), 16, 0.5, boxes=boxes, seed=seed)
        return sampler.draw(50)

    first, again, other = draw(5), draw(5), draw(6)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.origins, again.origins)
    assert not np.array_equal(first.origins, other.origins)
    sampler = patches.PatchSampler(boxed, masks, np.arange(8), 16, 0.5, boxes=boxes, seed=5)
    one = [next(iter_) for iter_ in [sampler.stream()] for _ in range(20)]
    two = [next(iter_) for iter_ in [sampler.stream()] for _ in range(20)]
    for (image_a, mask_a), (image_b, mask_b) in zip(one, two, strict=True):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(mask_a, mask_b)


def test_only_normal_images_give_random_patches_and_bad_settings_are_refused():
    boxed, masks, boxes = _letterboxed()
    sampler = patches.PatchSampler(boxed, masks, np.arange(4, 8), 16, 0.9, boxes=boxes[4:], seed=0)
    assert sampler.tumour_images == 0 and not sampler.draw(50).foreground.any()
    with pytest.raises(ValueError, match="patch_size"):
        patches.PatchSampler(boxed, masks, np.arange(8), 65)
    with pytest.raises(ValueError, match="foreground_share"):
        patches.PatchSampler(boxed, masks, np.arange(8), 16, 1.5)
    with pytest.raises(ValueError, match="no images"):
        patches.PatchSampler(boxed, masks, [], 16)


def test_patch_dataset_gives_augmented_batches_of_the_patch_size():
    boxed, masks, boxes = _letterboxed()
    sampler = patches.PatchSampler(boxed, masks, np.arange(8), 16, 1.0, boxes=boxes, seed=0)
    dataset = patches.patch_dataset(sampler, 8, augment=True)
    batches = list(dataset.take(3))
    for image_batch, mask_batch in batches:
        image_batch, mask_batch = np.asarray(image_batch), np.asarray(mask_batch)
        assert image_batch.shape == (8, 16, 16, 3) and mask_batch.shape == (8, 16, 16, 1)
        assert image_batch.min() >= 0.0 and image_batch.max() <= 1.0
        assert set(np.unique(mask_batch)) <= {0.0, 1.0}
        assert mask_batch.reshape(8, -1).any(axis=1).mean() > 0.5  # lesion-centred patches
    plain = np.asarray(next(iter(patches.patch_dataset(sampler, 4, augment=False)))[0])
    first = sampler.draw(1)  # the stream's first patch, before mirroring
    assert plain.shape == (4, 16, 16, 3)
    np.testing.assert_allclose(plain[0, ..., 0], first.images[0] / 255.0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# predict_whole


def _inputs(count: int = 3, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, size, size, 3), dtype=np.float32)


def test_predict_whole_without_a_window_is_a_direct_call():
    def call(batch):
        return batch[..., :1] * 0.5 + 0.25 * batch[..., 1:2]

    inputs = _inputs()
    expected = call(inputs)[..., 0]
    actual = patches.predict_whole(call, inputs)
    assert actual.shape == (3, 64, 64) and actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(patches.predict_whole(call, inputs, batch_size=1), actual)
    np.testing.assert_array_equal(patches.predict_whole(call, inputs, window=64), actual)


def test_sliding_windows_of_a_constant_model_give_exactly_the_constant():
    calls = []

    def call(batch):
        calls.append(batch.shape)
        return np.full((*batch.shape[:3], 1), 0.3, np.float32)

    maps = patches.predict_whole(call, _inputs(2, 96), window=32, overlap=0.5)
    assert maps.shape == (2, 96, 96)
    np.testing.assert_array_equal(maps, np.float32(0.3))
    assert {shape[1:3] for shape in calls} == {(32, 32)}
    assert patches.window_starts(96, 32, 0.5) == [0, 16, 32, 48, 64]
    assert patches.window_starts(100, 32, 0.5)[-1] == 68


def test_sliding_windows_of_a_pixelwise_model_reproduce_the_pixelwise_map():
    def call(batch):  # depends on each pixel only, so every window agrees where they overlap
        return batch[..., :1] ** 2

    inputs = _inputs(2, 80)
    expected = inputs[..., 0] ** 2
    for window, overlap in ((32, 0.5), (48, 0.25), (16, 0.0)):
        maps = patches.predict_whole(call, inputs, window=window, overlap=overlap)
        np.testing.assert_allclose(maps, expected, atol=1e-6)


def test_gaussian_weights_peak_in_the_centre_and_stay_positive():
    weights = patches.gaussian_weights(32)
    assert weights.shape == (32, 32) and weights.max() == 1.0 and weights.min() >= 1e-3
    assert weights[15, 15] > weights[8, 15] > weights[8, 8] > weights[0, 0]
    np.testing.assert_array_equal(weights, weights[::-1, ::-1])


def test_mirroring_a_symmetric_call_equals_the_call_and_averages_an_asymmetric_one():
    def symmetric(batch):  # commutes with flips
        return np.clip(batch[..., :1] * 0.8, 0, 1)

    inputs = _inputs()
    plain = patches.predict_whole(symmetric, inputs)
    for window in (None, 32):
        np.testing.assert_allclose(
            patches.predict_whole(symmetric, inputs, window=window, mirror=True), plain, atol=1e-6
        )

    def left_half(batch):  # 1 on the left half of whatever it sees
        out = np.zeros((*batch.shape[:3], 1), np.float32)
        out[:, :, : batch.shape[2] // 2] = 1.0
        return out

    np.testing.assert_allclose(
        patches.predict_whole(left_half, inputs, mirror="horizontal"), 0.5, atol=1e-7
    )
    np.testing.assert_allclose(patches.predict_whole(left_half, inputs, mirror=True), 0.5, atol=1e-7)
    np.testing.assert_array_equal(
        patches.predict_whole(left_half, inputs, mirror="vertical"),
        patches.predict_whole(left_half, inputs),
    )


def test_predict_whole_refuses_bad_inputs():
    with pytest.raises(ValueError, match="inputs"):
        patches.predict_whole(lambda batch: batch[..., :1], np.zeros((2, 32, 16, 3), np.float32))
    with pytest.raises(ValueError, match="overlap"):
        patches.predict_whole(lambda batch: batch[..., :1], _inputs(), window=32, overlap=1.0)
    with pytest.raises(ValueError, match="mirror"):
        patches.predict_whole(lambda batch: batch[..., :1], _inputs(), mirror="diagonal")


def test_a_fully_convolutional_unet_trained_size_runs_on_whole_images():
    from btseg.models.attention_unet import build_attention_unet

    model = build_attention_unet((None, None, 3), filters=4)
    inputs = _inputs(2, 64)
    maps = patches.predict_whole(model.predict_on_batch, inputs)
    direct = np.asarray(model.predict_on_batch(inputs))[..., 0]
    np.testing.assert_allclose(maps, direct, atol=1e-6)
    windowed = patches.predict_whole(model.predict_on_batch, inputs, window=32, mirror=True)
    assert windowed.shape == (2, 64, 64) and 0.0 <= windowed.min() <= windowed.max() <= 1.0


def test_mirrored_predictions_are_the_views_mirrored_tta_averages():
    from btseg.patches import MIRRORS, mirrored_predictions, predict_whole

    rng = np.random.default_rng(3)
    inputs = rng.random((2, 32, 32, 3)).astype(np.float32)

    def call(batch):  # not mirror-symmetric: depends on the position of each pixel
        ramp = np.linspace(0.0, 0.5, batch.shape[2], dtype=np.float32)[None, None, :, None]
        return np.clip(0.5 * batch[..., :1] + ramp, 0.0, 1.0)

    views = mirrored_predictions(call, inputs)
    assert views.shape == (len(MIRRORS), 2, 32, 32)
    np.testing.assert_allclose(views[0], predict_whole(call, inputs), atol=1e-6)
    np.testing.assert_allclose(views.mean(axis=0), predict_whole(call, inputs, mirror=True),
                               atol=1e-6)  # fmt: skip
    assert views.std(axis=0).max() > 0.01  # the ramp flips with the image: the views differ
    windowed = mirrored_predictions(call, inputs, window=16)
    np.testing.assert_allclose(windowed.mean(axis=0),
                               predict_whole(call, inputs, window=16, mirror=True), atol=1e-5)  # fmt: skip
