"""btseg.viz.segment: the class probability bars."""

from __future__ import annotations

import pytest

from btseg import viz


def test_class_probability_bars_follow_the_class_order_in_the_class_colours():
    figure = viz.class_probability_figure({"malignant": 0.25, "other": 0.05, "normal": 0.7})
    (bars,) = figure.data
    assert list(bars.y) == ["normal", "malignant", "other"]
    assert list(bars.x) == pytest.approx([0.7, 0.25, 0.05])
    assert list(bars.marker.color) == ["#4C9A6A", "#C0392B", "#5B6770"]
    assert list(bars.text) == ["70.0%", "25.0%", "5.0%"]
    assert figure.layout.height == 220 and not figure.layout.showlegend
    with_subtitle = viz.class_probability_figure({"benign": 1.0}, subtitle="calibrated")
    assert with_subtitle.layout.height == 250
    assert with_subtitle.layout.title.subtitle.text == "calibrated"
