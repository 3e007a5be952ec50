"""btseg.viz.images: overlays drawn on small hand-made images, pixels checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from btseg import viz
from btseg.data.labelme import Lesion


def test_to_rgb():
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    rgb = viz.to_rgb(gray)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == gray).all() and (rgb[..., 2] == gray).all()
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    assert viz.to_rgb(rgba).shape == (2, 2, 3)
    with pytest.raises(ValueError, match="uint8"):
        viz.to_rgb(gray.astype(np.float32))


def square(x0: float, y0: float, x1: float, y1: float) -> Lesion:
    polygon = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    return Lesion(label="osteosarcoma", polygon=polygon, box=(x0, y0, x1, y1))


def test_draw_outlines_draws_the_polygon_in_the_colour_and_leaves_the_rest():
    image = np.zeros((20, 20), dtype=np.uint8)
    drawn = viz.draw_outlines(
        image, [square(5, 5, 14, 14)], color="#C0392B", thickness=1, antialias=False
    )
    assert drawn.shape == (20, 20, 3) and drawn.dtype == np.uint8
    assert tuple(drawn[5, 10]) == (192, 57, 43)  # on the top edge (row y=5)
    assert tuple(drawn[14, 10]) == (192, 57, 43)  # bottom edge
    assert tuple(drawn[10, 10]) == (0, 0, 0)  # inside, no fill
    assert tuple(drawn[0, 0]) == (0, 0, 0)
    assert image.max() == 0  # the input is not changed
    smooth = viz.draw_outlines(image, [square(5, 5, 14, 14)], color="#C0392B", thickness=1)
    assert smooth[5, 10, 0] > 150 and smooth[10, 10].max() == 0


def test_draw_outlines_fill_and_scale_and_box_only_lesions():
    image = np.zeros((20, 20), dtype=np.uint8)
    filled = viz.draw_outlines(
        image,
        [square(10, 10, 28, 28)],
        "#C0392B",
        scale=0.5,
        thickness=1,
        fill_alpha=0.5,
        antialias=False,
    )
    assert tuple(filled[5, 9]) == (192, 57, 43)  # scaled top edge at y=5
    assert tuple(filled[10, 10]) == (96, 28, 22)  # half-opacity fill: round(0.5 * colour)
    assert tuple(filled[18, 18]) == (0, 0, 0)
    box_only = Lesion("tumor", None, (2.0, 2.0, 8.0, 8.0))
    boxed = viz.draw_outlines(image, [box_only], (0, 255, 0), thickness=1, antialias=False)
    assert tuple(boxed[2, 5]) == (0, 255, 0)
    assert viz.draw_outlines(image, [], (0, 255, 0)).max() == 0


def test_downscale_and_pad_to_square():
    image = np.zeros((1000, 500), dtype=np.uint8)
    small, scale = viz.downscale(image, 384)
    assert small.shape == (384, 192) and scale == pytest.approx(0.384)
    same, scale = viz.downscale(image[:100, :50], 384)
    assert same.shape == (100, 50) and scale == 1.0
    tile = np.full((2, 4, 3), 200, dtype=np.uint8)
    padded = viz.pad_to_square(tile, 4)
    assert padded.shape == (4, 4, 3)
    assert padded[1:3].min() == 200 and padded[0].max() == 0 and padded[3].max() == 0
    with pytest.raises(ValueError, match="does not fit"):
        viz.pad_to_square(tile, 3)


def test_prediction_overlay_tints_inside_outlines_the_border_and_leaves_the_rest():
    image = np.full((10, 10), 100, dtype=np.uint8)
    probability = np.zeros((10, 10), dtype=np.float32)
    probability[3:7, 3:7] = 0.25  # exactly the threshold: predicted (score >= threshold)
    overlay = viz.prediction_overlay(image, probability, 0.25, color="#C86400", alpha=0.5)
    assert overlay.shape == (10, 10, 3) and overlay.dtype == np.uint8
    assert tuple(overlay[0, 0]) == (100, 100, 100)  # outside: unchanged
    assert tuple(overlay[3, 3]) == (200, 100, 0)  # border of the mask: the full colour
    assert tuple(overlay[4, 4]) == (150, 100, 50)  # inside: half image, half colour
    assert (overlay[..., 0] != 100).sum() == 16


def test_prediction_overlay_outlines_the_truth_and_checks_shapes():
    image = np.zeros((8, 8), dtype=np.uint8)
    truth = np.zeros((8, 8), dtype=np.uint8)
    truth[1:4, 1:4] = 1
    overlay = viz.prediction_overlay(image, np.zeros((8, 8)), 0.5, truth=truth, truth_color="#FFD400")
    assert tuple(overlay[1, 1]) == (255, 212, 0)
    assert tuple(overlay[2, 2]) == (0, 0, 0)  # inside the outline, nothing predicted
    with pytest.raises(ValueError, match="does not match the image"):
        viz.prediction_overlay(image, np.zeros((4, 4)), 0.5)


def test_outline_mask_draws_only_the_border_of_the_mask():
    mask = np.zeros((7, 7), dtype=np.uint8)
    mask[2:5, 2:5] = 1
    outlined = viz.outline_mask(np.zeros((7, 7), dtype=np.uint8), mask, "#FF0000", thickness=1)
    red = outlined[..., 0] == 255
    assert red.sum() == 8  # the 3x3 square's border, not its centre
    assert not red[3, 3] and red[2, 2]
