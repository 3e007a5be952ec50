"""btseg.formatting: numbers as reports and pages show them."""

from __future__ import annotations

import math

import numpy as np

from btseg.formatting import format_number, format_threshold


def test_numbers_have_three_decimals_and_a_dash_when_undefined():
    assert format_number(0.71234) == "0.712"
    assert format_number(np.float32(0.5)) == "0.500"
    assert format_number(1) == "1.000"
    assert format_number(0.71234, 2) == "0.71"
    for undefined in (None, math.nan, np.float32("nan"), math.inf):
        assert format_number(undefined) == "–"
    assert format_number(None, missing="—") == "—"


def test_thresholds_have_four_significant_digits():
    assert [format_threshold(value) for value in (0.5, 0.001, 0.0001, 0.31622776, 1e-5)] == [
        "0.5", "0.001", "0.0001", "0.3162", "1e-05"]
    assert format_threshold(None) == format_threshold(math.nan) == "–"
