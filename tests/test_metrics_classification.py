"""Classification report and confusion matrix (btseg.metrics.classification) against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from btseg import metrics


def _classifier_outputs(n: int = 240, seed: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=[0.5, 0.4, 0.1])
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[labels]
    logits = np.round(logits, 1)  # ties between samples
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


def test_classification_report_agrees_with_sklearn():
    labels, probabilities = _classifier_outputs()
    predicted = probabilities.argmax(axis=1)
    report = metrics.classification_report(labels, probabilities, ("normal", "benign",
                                                                   "malignant"))
    precision, recall, f1_score, support = skm.precision_recall_fscore_support(labels, predicted)
    for index, name in enumerate(("normal", "benign", "malignant")):
        row = report["per_class"][name]
        assert row["precision"] == pytest.approx(precision[index], abs=1e-12)
        assert row["recall"] == pytest.approx(recall[index], abs=1e-12)
        assert row["f1"] == pytest.approx(f1_score[index], abs=1e-12)
        assert row["support"] == support[index]
        assert row["roc_auc"] == pytest.approx(
            skm.roc_auc_score(labels == index, probabilities[:, index]), abs=1e-12)
        assert row["average_precision"] == pytest.approx(
            skm.average_precision_score(labels == index, probabilities[:, index]), abs=1e-12)
    assert report["macro_auc"] == pytest.approx(
        skm.roc_auc_score(labels, probabilities, multi_class="ovr"), abs=1e-12)
    assert report["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(labels, predicted), abs=1e-12)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=1e-12)
    macro = skm.precision_recall_fscore_support(labels, predicted, average="macro")
    assert (report["macro_precision"], report["macro_recall"], report["macro_f1"]) == (
        pytest.approx(macro[0], abs=1e-12), pytest.approx(macro[1], abs=1e-12),
        pytest.approx(macro[2], abs=1e-12))
    np.testing.assert_array_equal(report["confusion_matrix"],
                                  skm.confusion_matrix(labels, predicted))
    binary = report["normal_vs_tumour"]
    assert binary["auc"] == pytest.approx(
        skm.roc_auc_score(labels != 0, 1 - probabilities[:, 0]), abs=1e-12)
    assert binary["sensitivity"] == pytest.approx(
        skm.recall_score(labels != 0, predicted != 0), abs=1e-12)
    assert binary["specificity"] == pytest.approx(
        skm.recall_score(labels == 0, predicted == 0), abs=1e-12)
    assert binary["n_tumour"] + binary["n_normal"] == labels.size


def test_classification_report_with_an_absent_class_and_bad_input():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.3, 0.6, 0.1],
                              [0.2, 0.2, 0.6]])
    report = metrics.classification_report(labels, probabilities)
    assert math.isnan(report["per_class"]["malignant"]["roc_auc"])
    assert report["macro_auc_classes"] == ["normal", "benign"]
    assert math.isnan(report["per_class"]["malignant"]["recall"])
    assert report["per_class"]["malignant"]["precision"] == 0.0
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        metrics.classification_report(np.array([0, 3, 1, 1]), probabilities)
    with pytest.raises(ValueError, match=r"y_true \(3,\) and probabilities \(4, 3\)"):
        metrics.classification_report(labels[:3], probabilities)
    with pytest.raises(ValueError, match="class_names"):
        metrics.classification_report(labels, probabilities, ("a", "b"))


def test_confusion_matrix_by_hand():
    matrix = metrics.confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])
