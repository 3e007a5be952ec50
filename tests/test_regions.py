"""btseg.data.regions: lesion boxes, sampled regions of normal images, jitter and crops."""

from __future__ import annotations

import numpy as np
import pytest

from btseg.data import regions
from btseg.data.images import letterbox_image
from btseg.errors import ImageError


def _mask(shape=(100, 120), rectangles=()):
    mask = np.zeros(shape, dtype=np.uint8)
    for x0, y0, x1, y1 in rectangles:
        mask[y0:y1, x0:x1] = 1
    return mask


def test_lesion_boxes_are_exclusive_and_ordered_by_area():
    mask = _mask(rectangles=[(5, 5, 10, 8), (50, 40, 80, 90)])
    assert regions.lesion_boxes(mask) == [(50, 40, 80, 90), (5, 5, 10, 8)]
    assert regions.largest_lesion_box(mask) == (50, 40, 80, 90)
    assert regions.lesion_boxes(_mask()) == []
    assert regions.largest_lesion_box(_mask()) is None


def test_diagonal_neighbours_are_one_lesion():
    mask = _mask()
    mask[10, 10] = mask[11, 11] = mask[12, 12] = 1
    assert regions.lesion_boxes(mask) == [(10, 10, 13, 13)]


def test_crop_box_adds_the_margin_and_crop_takes_those_pixels():
    pixels = np.arange(400 * 300, dtype=np.uint32).reshape(400, 300)
    assert regions.crop_box((400, 300), (100, 100, 200, 300)) == (85, 70, 215, 330)
    piece = regions.crop(pixels, (100, 100, 200, 300))
    assert piece.shape == (260, 130)
    assert piece[0, 0] == pixels[70, 85] and piece[-1, -1] == pixels[329, 214]
    with pytest.raises(ImageError, match="no area"):
        regions.crop(pixels, (500, 500, 600, 600))


def test_relative_side_and_side_range_follow_the_lesions():
    assert regions.relative_side((0, 0, 30, 10), (100, 200)) == pytest.approx(0.15)
    masks = [_mask(rectangles=[(0, 0, side, side)]) for side in (6, 12, 24, 48, 96)]
    low, high = regions.side_range(masks + [_mask()], quantiles=(0.0, 1.0))
    assert (low, high) == pytest.approx((6 / 120, 96 / 120))
    assert regions.side_range([_mask()]) == regions.DEFAULT_SIDE_RANGE


def test_sampled_regions_sit_on_bright_pixels_with_a_side_in_range():
    image = np.zeros((200, 300), dtype=np.uint8)
    image[50:150, 100:130] = 40  # soft tissue
    image[80:120, 200:220] = 250  # bone
    rng = np.random.default_rng(0)
    for _ in range(50):
        x0, y0, x1, y1 = regions.sample_region(image, (0.05, 0.1), rng)
        centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
        assert 199 <= centre_x <= 221 and 79 <= centre_y <= 121
        assert 0.05 * 300 - 2 <= max(x1 - x0, y1 - y0) <= 0.1 * 300 + 2
    blank = regions.sample_region(np.zeros((50, 50), np.uint8), (0.2, 0.2), rng)
    assert blank == (20, 20, 30, 30)  # no content: the centre


def test_jitter_varies_a_box_within_its_ranges_and_the_image():
    rng = np.random.default_rng(1)
    boxes = [regions.jitter_box((40, 40, 60, 80), (100, 100), rng) for _ in range(200)]
    widths = np.array([x1 - x0 for x0, _, x1, _ in boxes])
    assert widths.min() >= 20 * regions.JITTER_SCALE[0] - 2
    assert widths.max() <= 20 * regions.JITTER_SCALE[1] + 2
    assert len(set(boxes)) > 50
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 100


def test_region_crops_are_reproducible_per_image_and_take_the_largest_lesion():
    images = np.zeros((3, 64, 64), dtype=np.uint8)
    images[:, 20:40, 10:50] = 200
    images[0, 30:34, 30:34] = 255
    masks = np.zeros_like(images)
    masks[0, 28:36, 28:36] = 1
    masks[0, 2:4, 2:4] = 1  # a smaller second lesion
    ids = ["IMG1", "IMG2", "IMG3"]
    crops = regions.region_crops(images, masks, [0, 1, 2], ids, 32, (0.1, 0.2), seed=3)
    assert crops.shape == (3, 32, 32) and crops.dtype == np.uint8
    expected = letterbox_image(np.ascontiguousarray(regions.crop(images[0], (28, 28, 36, 36))), 32)
    np.testing.assert_array_equal(crops[0], expected)
    again = regions.region_crops(images, masks, [2, 1], ["IMG3", "IMG2"], 32, (0.1, 0.2), seed=3)
    np.testing.assert_array_equal(again, crops[[2, 1]])  # per image, whatever the order
    draw = regions.image_rng(3, "IMG2").random(4)
    np.testing.assert_array_equal(draw, regions.image_rng(3, "IMG2").random(4))
    assert not np.array_equal(draw, regions.image_rng(4, "IMG2").random(4))
    assert not np.array_equal(draw, regions.image_rng(3, "IMG3").random(4))
    variants = regions.region_crops(
        images, masks, [0], ["IMG1"], 32, (0.1, 0.2), seed=3, variants=6, jitter=True
    )
    assert variants.shape == (6, 32, 32)
    assert len({variant.tobytes() for variant in variants}) > 1
    with pytest.raises(ValueError, match="image ids"):
        regions.region_crops(images, masks, [0, 1], ["IMG1"], 32, (0.1, 0.2), seed=3)
