"""btseg.calibration: temperature scaling on hand-made probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from btseg.calibration import apply_temperature, fit_temperature, negative_log_likelihood
from btseg.metrics import expected_calibration_error


def test_temperature_one_changes_nothing_and_argmax_is_kept():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    np.testing.assert_allclose(apply_temperature(probabilities, 1.0), probabilities)
    for temperature in (0.3, 3.0):
        scaled = apply_temperature(probabilities, temperature)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
        assert (scaled.argmax(axis=1) == probabilities.argmax(axis=1)).all()
    # A high temperature flattens towards uniform, a low one sharpens.
    assert apply_temperature(probabilities, 100.0).max() < 0.35
    assert apply_temperature(probabilities, 0.1)[0, 0] > 0.99
    with pytest.raises(ValueError):
        apply_temperature(probabilities, 0.0)


def test_an_overconfident_classifier_is_cooled_and_its_calibration_improves():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 2000)
    # Right 70% of the time but always 99% sure.
    predicted = np.where(rng.random(2000) < 0.7, labels, (labels + 1) % 3)
    probabilities = np.full((2000, 3), 0.005)
    probabilities[np.arange(2000), predicted] = 0.99
    temperature = fit_temperature(probabilities, labels)
    assert temperature > 1.5
    scaled = apply_temperature(probabilities, temperature)
    assert negative_log_likelihood(scaled, labels) < negative_log_likelihood(probabilities, labels)
    assert expected_calibration_error(labels, scaled) < expected_calibration_error(
        labels, probabilities
    )
    assert scaled.max(axis=1).mean() == pytest.approx(0.7, abs=0.03)
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((0, 3)), np.zeros(0))
