"""Reliability curve and ECE (btseg.metrics.calibration) by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from btseg import metrics


def test_calibration_by_hand():
    labels = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.55, 0.45]])
    # Confidences 0.9 (right), 0.8 (right), 0.7 (wrong), 0.55 (right) with 2 bins:
    # bin (0, 0.5] is empty; bin (0.5, 1] conf 0.7375, accuracy 0.75.
    curve = metrics.reliability_curve(labels, probabilities, n_bins=2)
    np.testing.assert_array_equal(curve.count, [0, 4])
    assert math.isnan(curve.confidence[0])
    assert curve.confidence[1] == pytest.approx(0.7375)
    assert curve.accuracy[1] == 0.75
    assert metrics.expected_calibration_error(labels, probabilities, n_bins=2) == pytest.approx(
        0.0125)
    # With 10 bins each sample is alone: |1-0.9| + |1-0.8| + |0-0.7| + |1-0.55| over 4.
    assert metrics.expected_calibration_error(labels, probabilities, n_bins=10) == pytest.approx(
        (0.1 + 0.2 + 0.7 + 0.45) / 4)
