"""Temperature scaling: class probabilities that mean what they say.

    temperature = fit_temperature(validation_probabilities, validation_labels)
    calibrated = apply_temperature(test_probabilities, temperature)

A classifier's softmax probabilities are often over- or under-confident. Temperature scaling
(Guo et al., 2017) divides the logits by one number T fitted on validation by minimising the
negative log-likelihood; it never changes which class is most probable, so accuracy and the
verdict stay the same while the probabilities (and the expected calibration error) improve. The
classifier's outputs are probabilities, so their logarithms stand in for the logits (softmax is
invariant to the constant that separates them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Temperatures searched (log-uniformly bounded); 1 leaves the probabilities unchanged.
TEMPERATURE_RANGE = (0.05, 20.0)
CALIBRATION_FILE = "calibration.json"
_FLOOR = 1e-12


def apply_temperature(probabilities: Any, temperature: float) -> np.ndarray:
    """(N, C) or (C,) probabilities -> the same scaled by ``temperature`` (rows sum to 1)."""
    values = np.asarray(probabilities, dtype=np.float64)
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    logits = np.log(np.clip(values, _FLOOR, 1.0)) / float(temperature)
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def negative_log_likelihood(probabilities: Any, labels: Any) -> float:
    """Mean -log p(true class) of (N, C) probabilities and (N,) integer labels."""
    values = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    chosen = values[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(chosen, _FLOOR, 1.0))))


def fit_temperature(probabilities: Any, labels: Any) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` (bounded search in
    log space over TEMPERATURE_RANGE).

    Raises:
        ValueError: no samples, or shapes that disagree.
    """
    from scipy.optimize import minimize_scalar

    values = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if values.ndim != 2 or len(values) == 0 or len(values) != len(labels):
        raise ValueError(
            f"need (N, C) probabilities and N labels, got {values.shape} and {labels.shape}"
        )
    low, high = (math.log(value) for value in TEMPERATURE_RANGE)
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(apply_temperature(values, math.exp(log_t)), labels),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(math.exp(result.x))
