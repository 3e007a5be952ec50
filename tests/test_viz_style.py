"""btseg.viz.style: model colours and labels from the registry, colour conversion."""

from __future__ import annotations

import pytest

from btseg import viz


def test_model_colours_and_labels_are_the_agreed_ones():
    assert viz.model_color("basic_unet") == "#7f8c8d"
    assert viz.model_color("attention_unet") == "#0f6e8c"
    assert viz.model_label("attention_unet") == "Attention U-Net"
    assert viz.model_label("my_run") == "my_run"


def test_hex_to_rgb():
    assert viz.hex_to_rgb("#C0392B") == (192, 57, 43)
    assert viz.hex_to_rgb((1, 2, 3)) == (1, 2, 3)
    with pytest.raises(ValueError, match="#RRGGBB"):
        viz.hex_to_rgb("#fff")
