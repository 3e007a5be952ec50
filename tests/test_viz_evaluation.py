"""btseg.viz.evaluation: each Thresholds and Compare figure builds from hand-made arrays with the
values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from btseg import viz


def names(figure) -> list[str]:
    return [trace.name for trace in figure.data]


def test_roc_figure_draws_each_model_the_chance_line_and_operating_points():
    curves = {
        "basic_unet": (np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.6, 1.0])),
        "attention_unet": (np.array([0.0, 0.1, 1.0]), np.array([0.0, 0.9, 1.0])),
    }
    figure = viz.roc_figure(
        curves, areas={"basic_unet": 0.55, "attention_unet": 0.9},
        points={"attention_unet": (0.1, 0.9)},
    )
    assert names(figure) == [
        "Basic U-Net · AUC 0.550",
        "Attention U-Net · AUC 0.900",
        "chance",
        "Attention U-Net at its validation threshold",
    ]
    assert list(figure.data[1].x) == [0.0, 0.1, 1.0]
    assert list(figure.data[1].y) == [0.0, 0.9, 1.0]
    assert figure.data[0].line.color == "#7f8c8d"
    assert figure.data[1].line.color == "#0f6e8c"
    assert (figure.data[3].x[0], figure.data[3].y[0]) == (0.1, 0.9)
    assert figure.layout.xaxis.type != "log"


def test_roc_figure_on_a_log_axis_keeps_a_zero_rate_point_visible():
    figure = viz.roc_figure(
        {"basic_unet": (np.array([0.0, 1.0]), np.array([0.0, 1.0]))},
        points={"basic_unet": (0.0, 0.4)},
        log_fpr=True,
    )
    assert figure.layout.xaxis.type == "log"
    assert figure.data[-1].x[0] == 1e-5


def test_pr_figure_draws_chance_at_the_tumour_share():
    figure = viz.pr_figure(
        {"attention_unet": (np.array([1.0, 0.5, 0.0]), np.array([0.02, 0.6, 1.0]))},
        areas={"attention_unet": 0.4},
        prevalence=0.02,
        points={"attention_unet": (0.5, 0.6)},
    )
    assert names(figure) == [
        "Attention U-Net · AP 0.400",
        "chance (tumour pixels 2%)",
        "Attention U-Net at its validation threshold",
    ]
    assert list(figure.data[1].y) == [0.02, 0.02]


def sweep_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "threshold": [0.5, 1e-4, 0.01, 0.001],
            "dice": [0.2, 0.05, 0.4, 0.3],
            "iou": [0.11, 0.03, 0.25, 0.18],
            "sensitivity": [0.15, 0.99, 0.6, 0.8],
            "specificity": [1.0, 0.5, 0.99, 0.95],
            "f1": [0.2, 0.05, 0.4, 0.3],
            "mean_dice": [0.1, 0.02, 0.35, 0.3],
            "normal_fp_rate": [0.0, 1.0, 0.25, 0.5],
        }
    )


def test_threshold_curves_are_sorted_by_threshold_on_a_log_axis():
    figure = viz.threshold_curves_figure(sweep_table(), metrics=("mean_dice", "dice", "missing"))
    assert names(figure) == ["Mean Dice (tumour images)", "Pooled Dice"]
    assert list(figure.data[0].x) == [1e-4, 0.001, 0.01, 0.5]
    assert list(figure.data[0].y) == [0.02, 0.3, 0.35, 0.1]
    assert figure.layout.xaxis.type == "log"
    assert len(figure.layout.shapes) == 0


def test_threshold_markers_put_lines_at_values_and_labels_at_their_log():
    figure = viz.threshold_curves_figure(
        sweep_table(), chosen=0.01, validation_threshold=0.001, best_on_test=0.001
    )
    # One line each for chosen, validation and best on test (the last two coincide).
    assert [shape.x0 for shape in figure.layout.shapes] == [0.01, 0.001, 0.001]
    assert [shape.line.dash for shape in figure.layout.shapes] == ["solid", "dash", "dot"]
    labels = {annotation.text: annotation.x for annotation in figure.layout.annotations}
    assert labels == {
        "chosen 0.01": pytest.approx(-2.0),
        "validation (operating point) = best on test (optimistic) 0.001": pytest.approx(-3.0),
    }
    # Labels in the right half of the axis sit on the left of their line.
    late = viz.threshold_curves_figure(sweep_table(), chosen=0.5, validation_threshold=0.001)
    anchors = {annotation.text: annotation.xanchor for annotation in late.layout.annotations}
    assert anchors == {"chosen 0.5": "right", "validation (operating point) 0.001": "left"}


def test_confusion_matrix_colours_by_row_share_and_writes_counts():
    figure = viz.confusion_matrix_figure(np.array([[90, 10], [5, 15]]), ["background", "tumour"])
    (heatmap,) = figure.data
    np.testing.assert_allclose(heatmap.z, [[0.9, 0.1], [0.25, 0.75]])
    np.testing.assert_array_equal(heatmap.customdata, [[90, 10], [5, 15]])
    texts = [annotation.text for annotation in figure.layout.annotations if "<b>" in annotation.text]
    assert texts[0].startswith("<b>90</b>") and "90.0%" in texts[0]
    assert texts[3].startswith("<b>15</b>") and "75.0%" in texts[3]


def test_confusion_matrix_writes_pixel_counts_compactly_and_leaves_empty_rows_blank():
    figure = viz.confusion_matrix_figure(
        np.array([[1_234_567, 12_345], [0, 0]]), ["background", "tumour"], compact=True
    )
    texts = [annotation.text for annotation in figure.layout.annotations if "<b>" in annotation.text]
    assert texts[0].startswith("<b>1.23 M</b>")
    assert texts[1].startswith("<b>12.3 k</b>")
    assert texts[2] == "<b>0</b>"  # empty row: no share
    assert math.isnan(figure.data[0].z[1][0])


def test_confusion_matrix_refuses_a_matrix_that_does_not_fit_the_labels():
    with pytest.raises(ValueError, match="3 labels"):
        viz.confusion_matrix_figure(np.zeros((2, 2)), ["normal", "benign", "malignant"])


def test_normal_fp_figure_plots_percent_against_sorted_thresholds():
    table = sweep_table()
    figure = viz.normal_fp_figure(
        {"attention_unet": (table["threshold"], table["normal_fp_rate"])},
        chosen=0.5, n_normal_images=4,
    )
    (trace,) = figure.data
    assert list(trace.x) == [1e-4, 0.001, 0.01, 0.5]
    assert list(trace.y) == [100.0, 50.0, 25.0, 0.0]
    assert figure.layout.title.subtitle.text.startswith("4 normal test images")


def test_size_bucket_figure_averages_dice_of_tumour_images_per_bucket():
    per_image = pd.DataFrame(
        {
            "size_bucket": ["<1%", "<1%", "1-5%", ">=5%", "<1%"],
            "dice": [0.2, 0.4, 0.8, np.nan, np.nan],
        }
    )
    figure = viz.size_bucket_figure({"attention_unet": per_image})
    (bars,) = figure.data
    assert list(bars.y) == pytest.approx([0.3, 0.8, 0.0])
    assert list(bars.text) == ["0.30 (n=2)", "0.80 (n=1)", "no images"]


def test_history_figure_has_one_panel_per_metric_present():
    basic = pd.DataFrame(
        {"epoch": [0, 1], "loss": [0.7, 0.3], "dice": [0.1, 0.2], "val_loss": [0.6, 0.5],
         "val_dice": [0.0, 0.1]}
    )
    attention = pd.DataFrame({"epoch": [0, 1, 2], "loss": [0.9, 0.5, 0.4], "val_loss": [1, 0.8, 0.7]})
    figure = viz.history_figure({"basic_unet": basic, "attention_unet": attention})
    titles = [annotation.text for annotation in figure.layout.annotations]
    assert titles == ["Loss", "Dice"]  # no IoU or accuracy column anywhere
    assert names(figure) == [
        "Basic U-Net · training", "Basic U-Net · validation",
        "Attention U-Net · training", "Attention U-Net · validation",
        "Basic U-Net · training", "Basic U-Net · validation",
    ]
    assert list(figure.data[2].x) == [1.0, 2.0, 3.0]  # epochs counted from 1
    assert figure.data[1].line.dash == "dash"
    assert [trace.showlegend for trace in figure.data[4:]] == [False, False]


def test_dice_scatter_groups_by_size_and_keeps_image_ids_for_selection():
    table = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "dice_basic_unet": [0.1, 0.5, 0.0, np.nan],
            "dice_attention_unet": [0.3, 0.4, 0.6, np.nan],
            "size_bucket": ["<1%", ">=5%", "<1%", ""],
            "label": ["benign", "malignant", "benign", "normal"],
        }
    )
    figure = viz.dice_scatter_figure(table, selected="b")
    assert names(figure) == ["equal", "lesion <1% of the image", "lesion ≥5% of the image", "shown: b"]
    assert [row[0] for row in figure.data[1].customdata] == ["a", "c"]
    assert list(figure.data[1].y) == [0.3, 0.6]
    assert (figure.data[3].x[0], figure.data[3].y[0]) == (0.5, 0.4)
    assert "3 tumour images; Attention U-Net higher on 2, lower on 1" in (
        figure.layout.title.subtitle.text
    )
    by_label = viz.dice_scatter_figure(table, color_by="label")
    assert names(by_label) == ["equal", "benign", "malignant"]
    assert by_label.data[1].marker.color == "#E0A030"


def test_reliability_figure_draws_occupied_bins_and_counts():
    confidence = np.array([np.nan, 0.4, np.nan, 0.9])
    accuracy = np.array([np.nan, 0.5, np.nan, 1.0])
    count = np.array([0, 2, 0, 3])
    edges = np.linspace(0, 1, 5)
    figure = viz.reliability_figure(confidence, accuracy, count, edges, ece=0.12)
    assert names(figure)[:3] == ["accuracy", "perfect calibration", "mean confidence"]
    assert list(figure.data[0].x) == [0.375, 0.875]
    assert list(figure.data[0].y) == [0.5, 1.0]
    assert list(figure.data[3].y) == [0, 2, 0, 3]
    assert figure.layout.title.subtitle.text.startswith("Expected calibration error (ECE) 0.120")


def test_class_roc_figure_orders_classes_and_reports_macro_auc():
    curves = {
        "malignant": (np.array([0.0, 1.0]), np.array([0.0, 1.0])),
        "normal": (np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0])),
    }
    figure = viz.class_roc_figure(
        curves, areas={"normal": 1.0, "malignant": 0.5}, macro_auc=0.75, macro_ci=(0.6, 0.9)
    )
    assert names(figure) == ["normal vs rest · AUC 1.000", "malignant vs rest · AUC 0.500", "chance"]
    assert figure.data[0].line.color == "#4C9A6A"
    assert figure.data[1].line.color == "#C0392B"
    assert figure.layout.title.subtitle.text == "Macro AUC 0.750 (95% CI 0.600–0.900)"
