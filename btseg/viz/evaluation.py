"""Thresholds and Compare page figures: curves against the threshold, ROC and PR, confusion
matrices, Dice by lesion size, training histories, per-image Dice and reliability.

Inputs are plain arrays, mappings and data frames as btseg.evaluation reads them from a run's
evaluation/ folder; model keys are run names ("basic_unet", "attention_unet").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from btseg import metrics
from btseg.config import CLASS_NAMES
from btseg.formatting import format_threshold
from btseg.registry import MODELS
from btseg.viz.style import (
    CLASS_COLORS,
    NEUTRAL,
    empty_figure,
    legend_inside,
    model_color,
    model_label,
    style_figure,
)

#: Line colours of the threshold curves (pixel metrics pooled over the test split).
THRESHOLD_METRICS: dict[str, tuple[str, str]] = {
    "mean_dice": ("Mean Dice (tumour images)", "#0f6e8c"),
    "dice": ("Pooled Dice", "#5fa8c7"),
    "iou": ("Pooled IoU", "#8e7cc3"),
    "sensitivity": ("Sensitivity", "#d35400"),
    "specificity": ("Specificity", "#6b7b86"),
    "f1": ("F1", "#1b2a33"),
}
#: One colour per lesion-size bucket of btseg.metrics ("<1%", "1-5%", ">=5%"), light to dark.
SIZE_BUCKET_COLORS: dict[str, str] = dict(
    zip(metrics.LESION_SIZE_BUCKETS, ("#7fb3d5", "#2e86c1", "#1b4f72"), strict=True)
)
#: Vertical threshold markers: the slider's value, the validation choice, the best on test.
CHOSEN_COLOR = "#1b2a33"
VALIDATION_COLOR = "#1e8449"
OPTIMISTIC_COLOR = "#c0392b"
_HISTORY_TITLES = {"loss": "Loss", "dice": "Dice", "iou": "IoU", "accuracy": "Accuracy",
                   "balanced_accuracy": "Balanced accuracy"}


def _with_area(label: str, area_name: str, area: float | None) -> str:
    if area is None or not np.isfinite(area):
        return label
    return f"{label} · {area_name} {area:.3f}"


def _model_curve(name: str, x, y, legend: str, hover: str) -> go.Scatter:
    """A model's curve in its colour; `hover` formats %{x} and %{y}."""
    return go.Scatter(
        x=np.asarray(x, dtype=float),
        y=np.asarray(y, dtype=float),
        mode="lines",
        name=legend,
        line=dict(color=model_color(name), width=2.5),
        hovertemplate=hover + "<extra>" + model_label(name) + "</extra>",
    )


def _operating_point(name: str, x: float, y: float, hover: str) -> go.Scatter:
    """A model's operating point (its validation threshold) as a diamond on its curve."""
    return go.Scatter(
        x=[float(x)],
        y=[float(y)],
        mode="markers",
        name=f"{model_label(name)} at its validation threshold",
        marker=dict(color=model_color(name), size=11, symbol="diamond",
                    line=dict(color="white", width=1.5)),
        hovertemplate="operating point<br>" + hover + "<extra></extra>",
    )


def roc_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    areas: Mapping[str, float] | None = None,
    points: Mapping[str, tuple[float, float]] | None = None,
    log_fpr: bool = False,
    title: str = "Pixel ROC on the test split",
    subtitle: str | None = None,
) -> go.Figure:
    """Pixel ROC curves, one line per model, and the chance diagonal.

    Args:
        curves: model -> (false-positive rates, true-positive rates), each (K,) in [0, 1].
        areas: model -> AUC, shown in the legend.
        points: model -> (fpr, tpr) of the operating point (the validation threshold), drawn
            as a marker on the curve.
        log_fpr: log false-positive-rate axis (pixel ROCs of small lesions live near 0).

    Traces: one line per model, in order, then "chance", then one marker per operating point.
    """
    areas = areas or {}
    figure = go.Figure()
    for name, (fpr, tpr) in curves.items():
        figure.add_trace(
            _model_curve(name, fpr, tpr, _with_area(model_label(name), "AUC", areas.get(name)),
                         "FPR %{x:.4f}<br>TPR %{y:.3f}")
        )
    low = 1e-5 if log_fpr else 0.0
    figure.add_trace(
        go.Scatter(
            x=np.logspace(-5, 0, 50) if log_fpr else [0.0, 1.0],
            y=np.logspace(-5, 0, 50) if log_fpr else [0.0, 1.0],
            mode="lines",
            name="chance",
            line=dict(color=NEUTRAL, dash="dot", width=1),
            hoverinfo="skip",
        )
    )
    for name, (fpr, tpr) in (points or {}).items():
        x = max(float(fpr), low) if log_fpr else float(fpr)
        figure.add_trace(_operating_point(name, x, tpr, "FPR %{x:.4f}<br>TPR %{y:.3f}"))
    if log_fpr:
        decades = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
        figure.update_xaxes(type="log", range=[-5, 0], tickvals=decades,
                            ticktext=[f"{value:g}" if value >= 1e-4 else "0.00001" for value in decades])
    else:
        figure.update_xaxes(range=[0, 1])
    figure.update_yaxes(range=[0, 1.02])
    figure = style_figure(
        figure,
        title,
        "False-positive rate (background pixels called tumour)" + (", log scale" if log_fpr else ""),
        "True-positive rate (sensitivity)",
        subtitle=subtitle,
        height=420,
    )
    return legend_inside(figure, "bottom")


def pr_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    areas: Mapping[str, float] | None = None,
    prevalence: float | None = None,
    points: Mapping[str, tuple[float, float]] | None = None,
    title: str = "Pixel precision-recall on the test split",
    subtitle: str | None = None,
) -> go.Figure:
    """Pixel precision-recall curves, one line per model.

    Args:
        curves: model -> (recall, precision), each (K,) in [0, 1].
        areas: model -> average precision, shown in the legend.
        prevalence: share of tumour pixels; the precision of a model that guesses (a flat line).
        points: model -> (recall, precision) at the validation threshold.

    Traces: one line per model, then "chance" when `prevalence` is given, then the markers.
    """
    areas = areas or {}
    figure = go.Figure()
    for name, (recall, precision) in curves.items():
        figure.add_trace(
            _model_curve(name, recall, precision,
                         _with_area(model_label(name), "AP", areas.get(name)),
                         "recall %{x:.3f}<br>precision %{y:.3f}")
        )
    if prevalence is not None:
        figure.add_trace(
            go.Scatter(
                x=[0.0, 1.0],
                y=[float(prevalence)] * 2,
                mode="lines",
                name=f"chance (tumour pixels {100 * float(prevalence):.2g}%)",
                line=dict(color=NEUTRAL, dash="dot", width=1),
                hoverinfo="skip",
            )
        )
    for name, (recall, precision) in (points or {}).items():
        figure.add_trace(
            _operating_point(name, recall, precision, "recall %{x:.3f}<br>precision %{y:.3f}")
        )
    figure.update_xaxes(range=[0, 1])
    figure.update_yaxes(range=[0, 1.02])
    figure = style_figure(figure, title, "Recall (sensitivity)", "Precision", subtitle=subtitle, height=420)
    return legend_inside(figure, "top")


def class_roc_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    areas: Mapping[str, float] | None = None,
    macro_auc: float | None = None,
    macro_ci: tuple[float, float] | None = None,
    title: str = "Classifier ROC, one class against the rest",
) -> go.Figure:
    """One-vs-rest ROC curve per class in the class colours, with the chance diagonal.

    Args:
        curves: class name -> (fpr, tpr) arrays in [0, 1].
        areas: class name -> AUC (legend).
        macro_auc, macro_ci: mean of the per-class AUCs and its 95% interval (subtitle).

    Traces: one line per class in CLASS_NAMES order (then unknown names), then "chance".
    """
    areas = areas or {}
    order = [name for name in CLASS_NAMES if name in curves]
    order += [name for name in curves if name not in CLASS_NAMES]
    figure = go.Figure()
    for name in order:
        fpr, tpr = curves[name]
        figure.add_trace(
            go.Scatter(
                x=np.asarray(fpr, dtype=float), y=np.asarray(tpr, dtype=float), mode="lines",
                name=_with_area(f"{name} vs rest", "AUC", areas.get(name)),
                line=dict(color=CLASS_COLORS.get(name, NEUTRAL), width=2.5, shape="hv"),
                hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<extra>" + name + "</extra>",
            )
        )
    figure.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", hoverinfo="skip",
                   line=dict(color=NEUTRAL, dash="dot", width=1))
    )
    subtitle = None
    if macro_auc is not None and np.isfinite(macro_auc):
        subtitle = f"Macro AUC {macro_auc:.3f}"
        if macro_ci is not None and all(v is not None and np.isfinite(v) for v in macro_ci):
            subtitle += f" (95% CI {macro_ci[0]:.3f}–{macro_ci[1]:.3f})"
    figure.update_xaxes(range=[0, 1])
    figure.update_yaxes(range=[0, 1.02])
    figure = style_figure(figure, title, "False-positive rate", "True-positive rate", subtitle=subtitle,
                    height=420)
    return legend_inside(figure, "bottom")


def _threshold_markers(
    figure: go.Figure,
    chosen: float | None,
    validation: float | None,
    best_on_test: float | None,
) -> None:
    """Vertical lines: the chosen threshold (solid), the validation threshold (the operating
    point, dashed) and the best threshold on the test split (optimistic, dotted), each labelled
    at the top of the plot. Coinciding thresholds share one label."""
    log_axis = figure.layout.xaxis.type == "log"
    markers = [
        (chosen, CHOSEN_COLOR, "solid", "chosen"),
        (validation, VALIDATION_COLOR, "dash", "validation (operating point)"),
        (best_on_test, OPTIMISTIC_COLOR, "dot", "best on test (optimistic)"),
    ]
    labelled: list[tuple[float, list[str], str]] = []
    for value, color, dash, label in markers:
        if value is None or not np.isfinite(value) or (log_axis and value <= 0):
            continue
        # Shapes take data values on a log axis, annotations take their log10 (plotly.py #2580).
        figure.add_shape(
            type="line", xref="x", yref="paper", x0=float(value), x1=float(value), y0=0, y1=1,
            line=dict(color=color, dash=dash, width=2.2 if dash == "solid" else 1.6),
        )
        for known_value, labels, _ in labelled:
            if np.isclose(known_value, value, rtol=1e-9, atol=0):
                labels.append(label)
                break
        else:
            labelled.append((float(value), [label], color))
    low, high = figure.layout.xaxis.range or ((-4.0, 0.0) if log_axis else (0.0, 1.0))
    for position, (value, labels, color) in enumerate(labelled):
        x = float(np.log10(value)) if log_axis else value
        # In the right half the label goes on the left of its line, so it stays on the plot.
        near_right = (x - low) / (high - low) > 0.5 if high > low else False
        figure.add_annotation(
            x=x, xref="x", y=0.99 - 0.075 * position,
            yref="paper", xanchor="right" if near_right else "left", yanchor="top",
            xshift=-4 if near_right else 4, showarrow=False,
            text=f"{' = '.join(labels)} {format_threshold(value)}",
            font=dict(color=color, size=11), bgcolor="rgba(255,255,255,0.8)",
        )


def _log_threshold_axis(figure: go.Figure, thresholds: np.ndarray) -> None:
    low = float(np.min(thresholds)) if thresholds.size else 1e-4
    high = float(np.max(thresholds)) if thresholds.size else 1.0
    figure.update_xaxes(
        type="log",
        range=[np.log10(low) - 0.1, np.log10(high) + 0.05],
        tickvals=[1e-4, 1e-3, 1e-2, 1e-1, 0.5, 0.99],
        ticktext=["0.0001", "0.001", "0.01", "0.1", "0.5", "0.99"],
    )


def threshold_curves_figure(
    sweep: pd.DataFrame,
    chosen: float | None = None,
    validation_threshold: float | None = None,
    best_on_test: float | None = None,
    metrics: Sequence[str] = ("mean_dice", "dice", "iou", "sensitivity", "specificity", "f1"),
    title: str = "Metrics against threshold",
    subtitle: str | None = None,
) -> go.Figure:
    """Metrics of the test split against the threshold (log axis), one line per metric.

    Args:
        sweep: one row per threshold with a "threshold" column and the metric columns
            (sweep.csv of an evaluation: pooled pixel metrics and per-image mean Dice).
        chosen, validation_threshold, best_on_test: thresholds marked by vertical lines.
        metrics: columns to draw, in order; columns missing from `sweep` are skipped.

    Traces: one line per drawn metric, named as THRESHOLD_METRICS, y in [0, 1].
    """
    ordered = sweep.sort_values("threshold")
    thresholds = ordered["threshold"].to_numpy(dtype=float)
    figure = go.Figure()
    for column in metrics:
        if column not in ordered.columns:
            continue
        label, color = THRESHOLD_METRICS.get(column, (column, NEUTRAL))
        # Binary pixel F1 equals pooled Dice: drawn dotted on top so that both stay visible.
        dash = "dot" if column == "f1" else None
        figure.add_trace(
            go.Scatter(
                x=thresholds,
                y=ordered[column].to_numpy(dtype=float),
                mode="lines",
                name=label,
                line=dict(color=color, width=3 if column == "mean_dice" else 2, dash=dash),
                hovertemplate=f"{label} %{{y:.3f}}<extra></extra>",
            )
        )
    _log_threshold_axis(figure, thresholds)
    figure.update_yaxes(range=[0, 1.02])
    _threshold_markers(figure, chosen, validation_threshold, best_on_test)
    figure.update_layout(hovermode="x unified")
    return style_figure(figure, title, "Threshold (log scale)", "Score", subtitle=subtitle, height=440)


def _compact_count(value: float) -> str:
    value = float(value)
    for limit, suffix in ((1e9, " G"), (1e6, " M"), (1e4, " k")):
        if abs(value) >= limit:
            return f"{value / (limit if suffix != ' k' else 1e3):.3g}{suffix}"
    return f"{value:,.0f}"


def confusion_matrix_figure(
    matrix: np.ndarray,
    labels: Sequence[str],
    title: str = "Confusion matrix",
    subtitle: str | None = None,
    compact: bool = False,
    colors: Sequence[str] | None = None,
) -> go.Figure:
    """Counts of truth (rows) against prediction (columns), coloured by the row share.

    Args:
        matrix: (K, K) counts, matrix[i, j] = items of true class i predicted as class j.
        labels: K class names.
        compact: write large counts as 1.2 M (pixel matrices).
        colors: optional K colours for the tick labels (class colours).

    One Heatmap trace: z = row shares in [0, 1] (NaN for an empty row), customdata = counts;
    each cell is annotated "count" and "share of the row".
    """
    counts = np.asarray(matrix, dtype=np.int64)
    size = len(labels)
    if counts.shape != (size, size):
        raise ValueError(f"matrix of shape {counts.shape} does not fit {size} labels")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.full(counts.shape, np.nan), where=totals > 0)
    names = list(labels)
    if colors is not None:
        ticks = [f"<span style='color:{color}'><b>{name}</b></span>"
                 for name, color in zip(names, colors, strict=True)]
    else:
        ticks = names
    figure = go.Figure(
        go.Heatmap(
            z=shares,
            x=names,
            y=names,
            customdata=counts.tolist(),  # plain ints in the JSON, not a typed array
            zmin=0,
            zmax=1,
            colorscale=[[0.0, "#f4f8fa"], [1.0, "#0f6e8c"]],
            showscale=False,
            xgap=2,
            ygap=2,
            hovertemplate=(
                "true <b>%{y}</b>, predicted <b>%{x}</b><br>%{customdata:,} "
                "(%{z:.1%} of the true %{y})<extra></extra>"
            ),
        )
    )
    for row in range(size):
        for column in range(size):
            share = shares[row, column]
            count_text = _compact_count(counts[row, column]) if compact else f"{counts[row, column]:,}"
            share_text = "" if np.isnan(share) else f"<br><span style='font-size:11px'>{100 * share:.1f}%</span>"
            figure.add_annotation(
                x=names[column],
                y=names[row],
                text=f"<b>{count_text}</b>{share_text}",
                showarrow=False,
                font=dict(color="white" if not np.isnan(share) and share > 0.55 else "#1b2a33", size=14),
            )
    figure.update_xaxes(title_text="Predicted", side="bottom", tickvals=names, ticktext=ticks)
    figure.update_yaxes(title_text="True", autorange="reversed", tickvals=names, ticktext=ticks)
    figure = style_figure(figure, title, subtitle=subtitle, height=max(320, 150 + 80 * size))
    figure.update_layout(showlegend=False)
    return figure


def normal_fp_figure(
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    chosen: float | None = None,
    validation_threshold: float | None = None,
    n_normal_images: int | None = None,
    title: str = "False positives on normal images",
) -> go.Figure:
    """Share of normal test images with any predicted lesion, against the threshold (log x).

    Args:
        series: model -> (thresholds, fractions in [0, 1]) (sweep.csv's normal_fp_rate).
        chosen, validation_threshold: thresholds marked by vertical lines.
        n_normal_images: how many normal test images the fractions are over (subtitle).

    Traces: one line per model; y in percent.
    """
    figure = go.Figure()
    all_thresholds = []
    for name, (thresholds, rates) in series.items():
        thresholds = np.asarray(thresholds, dtype=float)
        order = np.argsort(thresholds)
        all_thresholds.append(thresholds)
        figure.add_trace(
            go.Scatter(
                x=thresholds[order],
                y=100 * np.asarray(rates, dtype=float)[order],
                mode="lines",
                name=model_label(name),
                line=dict(color=model_color(name), width=2.5, shape="hv"),
                hovertemplate="threshold %{x:.4g}<br>%{y:.1f}% of normal images flagged"
                "<extra>" + model_label(name) + "</extra>",
            )
        )
    _log_threshold_axis(figure, np.concatenate(all_thresholds) if all_thresholds else np.array([]))
    figure.update_yaxes(range=[0, 102], ticksuffix="%")
    _threshold_markers(figure, chosen, validation_threshold, None)
    subtitle = "A Dice averaged over tumour images ignores these false alarms"
    if n_normal_images is not None:
        subtitle = f"{n_normal_images} normal test images · " + subtitle
    return style_figure(figure, title, "Threshold (log scale)", "Normal images with a predicted lesion",
                  subtitle=subtitle, height=400)


def size_bucket_figure(
    per_image: Mapping[str, pd.DataFrame],
    buckets: Sequence[str] = metrics.LESION_SIZE_BUCKETS,
    title: str = "Mean Dice by lesion size",
    subtitle: str | None = None,
) -> go.Figure:
    """Mean Dice of tumour images per lesion-size bucket, one bar group per model.

    Args:
        per_image: model -> per-image table with "size_bucket" (share of the image the true
            lesion covers: "<1%", "1-5%", ">=5%") and "dice" (NaN rows, images without a
            tumour, are left out).

    Traces: one Bar per model, x = bucket, y = mean Dice (0 where a bucket is empty),
    text = "mean (n images)".
    """
    figure = go.Figure()
    for name, table in per_image.items():
        tumours = table.dropna(subset=["dice"])
        grouped = tumours.groupby("size_bucket")["dice"]
        means = grouped.mean()
        sizes = grouped.size()
        values = [float(means.get(bucket, np.nan)) for bucket in buckets]
        counts = [int(sizes.get(bucket, 0)) for bucket in buckets]
        figure.add_trace(
            go.Bar(
                x=[bucket.replace(">=", "≥") for bucket in buckets],
                y=[0.0 if np.isnan(value) else value for value in values],
                name=model_label(name),
                marker_color=model_color(name),
                text=[
                    "no images" if count == 0 else f"{value:.2f} (n={count})"
                    for value, count in zip(values, counts, strict=True)
                ],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{x}<br>mean Dice %{y:.3f}<extra>" + model_label(name) + "</extra>",
            )
        )
    figure.update_yaxes(range=[0, 1.1])
    figure.update_layout(barmode="group")
    return style_figure(figure, title, "True lesion area (share of the image)", "Mean Dice",
                  subtitle=subtitle, height=380)


def history_figure(
    histories: Mapping[str, pd.DataFrame],
    metrics: Sequence[str] = ("loss", "dice", "iou", "accuracy"),
    title: str = "Training curves",
) -> go.Figure:
    """Per-epoch training (solid) and validation (dashed) curves, one panel per metric.

    Args:
        histories: model -> history.csv as a table ("epoch" counted from 0, metric columns and
            their "val_" twins). Metrics that no history holds get no panel.
        metrics: panels, left to right.

    Traces per panel and model: the training line, then the validation line when present;
    x = epoch counted from 1.
    """
    from plotly.subplots import make_subplots

    present = [m for m in metrics if any(m in table.columns for table in histories.values())]
    if not present:
        return empty_figure(title, "No training history")
    figure = make_subplots(
        rows=1, cols=len(present), subplot_titles=[_HISTORY_TITLES.get(m, m) for m in present],
        horizontal_spacing=0.06,
    )
    for column, metric in enumerate(present, start=1):
        for name, table in histories.items():
            if metric not in table.columns:
                continue
            epochs = (
                table["epoch"].to_numpy(dtype=float) + 1
                if "epoch" in table.columns
                else np.arange(1, len(table) + 1, dtype=float)
            )
            for prefix, dash, part in (("", None, "training"), ("val_", "dash", "validation")):
                if prefix + metric not in table.columns:
                    continue
                figure.add_trace(
                    go.Scatter(
                        x=epochs,
                        y=table[prefix + metric].to_numpy(dtype=float),
                        mode="lines+markers",
                        marker=dict(size=4),
                        name=f"{model_label(name)} · {part}",
                        legendgroup=f"{name}-{part}",
                        showlegend=column == 1,
                        line=dict(color=model_color(name), dash=dash, width=2),
                        hovertemplate=f"epoch %{{x}}<br>{part} {metric} %{{y:.4f}}"
                        f"<extra>{model_label(name)}</extra>",
                    ),
                    row=1,
                    col=column,
                )
        figure.update_xaxes(title_text="Epoch", row=1, col=column)
        if metric != "loss":
            figure.update_yaxes(range=[0, 1.02], row=1, col=column)
    figure = style_figure(figure, title, subtitle="Solid: training images · dashed: validation images",
                    height=420)
    # Below the panels: above them the legend would run into the panel titles.
    figure.update_layout(
        legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.2, yanchor="top"),
        margin=dict(t=96, b=70),
    )
    return figure


def dice_scatter_figure(
    table: pd.DataFrame,
    x_model: str = MODELS["basic"].run,
    y_model: str = MODELS["attention"].run,
    color_by: str = "size_bucket",
    selected: str | None = None,
    title: str = "Per-image Dice",
) -> go.Figure:
    """Per-image Dice of two models on the same test images, with the diagonal.

    Args:
        table: one row per image: image_id, dice_<x_model>, dice_<y_model> and the `color_by`
            column ("size_bucket" or "label"). Rows where either Dice is NaN (images without a
            tumour) are left out.
        selected: image_id to ring.

    Traces: "equal" (the diagonal), then one marker trace per group present, in bucket or
    class order, customdata[:, 0] = image_id; then the ring around `selected`.
    """
    x_column, y_column = f"dice_{x_model}", f"dice_{y_model}"
    shown = table.dropna(subset=[x_column, y_column])
    if shown.empty:
        return empty_figure(title, "No test image with a tumour")
    if color_by == "label":
        order, colors = list(CLASS_NAMES), CLASS_COLORS
    else:
        order, colors = list(SIZE_BUCKET_COLORS), SIZE_BUCKET_COLORS
    groups = [value for value in order if (shown[color_by] == value).any()]
    groups += sorted(set(shown[color_by].astype(str)) - set(order))
    figure = go.Figure(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="equal", hoverinfo="skip",
            line=dict(color=NEUTRAL, dash="dot", width=1),
        )
    )
    for group in groups:
        rows = shown[shown[color_by].astype(str) == str(group)]
        label = (f"lesion {str(group).replace('>=', '≥')} of the image"
                 if color_by == "size_bucket" else str(group))
        figure.add_trace(
            go.Scatter(
                x=rows[x_column].to_numpy(dtype=float),
                y=rows[y_column].to_numpy(dtype=float),
                mode="markers",
                name=label,
                customdata=np.stack([rows["image_id"].astype(str).to_numpy()], axis=1),
                marker=dict(color=colors.get(group, NEUTRAL), size=10, opacity=0.85,
                            line=dict(color="white", width=1)),
                hovertemplate=(
                    "<b>%{customdata[0]}</b><br>"
                    f"{model_label(x_model)} %{{x:.3f}}<br>{model_label(y_model)} %{{y:.3f}}"
                    "<extra>" + label + "</extra>"
                ),
            )
        )
    if selected is not None and (shown["image_id"] == selected).any():
        row = shown[shown["image_id"] == selected].iloc[0]
        figure.add_trace(
            go.Scatter(
                x=[float(row[x_column])], y=[float(row[y_column])], mode="markers",
                name=f"shown: {selected}", hoverinfo="skip",
                marker=dict(size=20, color="rgba(0,0,0,0)", line=dict(color=CHOSEN_COLOR, width=2.5)),
            )
        )
    better = int((shown[y_column] > shown[x_column]).sum())
    worse = int((shown[y_column] < shown[x_column]).sum())
    figure.update_xaxes(range=[-0.03, 1.03], constrain="domain")
    figure.update_yaxes(range=[-0.03, 1.03], scaleanchor="x", scaleratio=1)
    # No dragmode or clickmode here: Streamlit's point selection sets click-to-select itself,
    # and turns it off when a box-select drag mode is set.
    figure = style_figure(
        figure,
        title,
        f"{model_label(x_model)} Dice",
        f"{model_label(y_model)} Dice",
        subtitle=(
            f"{len(shown)} tumour images; {model_label(y_model)} higher on {better}, "
            f"lower on {worse}"
        ),
        height=540,
    )
    figure.data[0].showlegend = False  # the dotted diagonal explains itself
    return legend_inside(figure, "bottom")


def reliability_figure(
    confidence: np.ndarray,
    accuracy: np.ndarray,
    count: np.ndarray,
    edges: np.ndarray,
    ece: float | None = None,
    title: str = "Reliability of the classifier",
) -> go.Figure:
    """Reliability diagram: accuracy against mean confidence per confidence bin, with counts.

    Args:
        confidence, accuracy, count: (B,) per bin (NaN where a bin is empty), as
            btseg.metrics.reliability_curve returns; edges: (B + 1,) bin edges in [0, 1].
        ece: expected calibration error, in the subtitle.

    Traces (top panel): "accuracy" bars at the bin centres (empty bins left out), "perfect
    calibration" diagonal, "mean confidence" markers; (bottom panel) "images" bars = count.
    """
    from plotly.subplots import make_subplots

    edges = np.asarray(edges, dtype=float)
    centres = (edges[:-1] + edges[1:]) / 2
    widths = np.diff(edges)
    count = np.asarray(count, dtype=np.int64)
    occupied = count > 0
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.74, 0.26],
                           vertical_spacing=0.05)
    figure.add_trace(
        go.Bar(
            x=centres[occupied], y=np.asarray(accuracy, dtype=float)[occupied],
            width=widths[occupied] * 0.94, name="accuracy", marker_color="#0f6e8c",
            customdata=np.stack([edges[:-1][occupied], edges[1:][occupied], count[occupied]], 1),
            hovertemplate="confidence %{customdata[0]:.2f}–%{customdata[1]:.2f}<br>accuracy "
            "%{y:.2f} over %{customdata[2]} images<extra></extra>",
        ),
        row=1, col=1,
    )
    figure.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                   line=dict(color=NEUTRAL, dash="dot"), hoverinfo="skip"),
        row=1, col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=np.asarray(confidence, dtype=float)[occupied],
            y=np.asarray(confidence, dtype=float)[occupied],
            mode="markers", name="mean confidence",
            marker=dict(color=OPTIMISTIC_COLOR, symbol="line-ew-open", size=14, line=dict(width=2)),
            hovertemplate="mean confidence %{x:.2f}<extra></extra>",
        ),
        row=1, col=1,
    )
    figure.add_trace(
        go.Bar(x=centres, y=count, width=widths * 0.94, name="images", marker_color=NEUTRAL,
               showlegend=False, hovertemplate="%{y} images<extra></extra>"),
        row=2, col=1,
    )
    figure.update_xaxes(range=[0, 1], row=1, col=1)
    figure.update_xaxes(range=[0, 1], title_text="Confidence (top-class probability)", row=2, col=1)
    figure.update_yaxes(range=[0, 1.02], title_text="Accuracy", row=1, col=1)
    figure.update_yaxes(title_text="Images", row=2, col=1)
    subtitle = "Bars below the diagonal: over-confident"
    if ece is not None and np.isfinite(ece):
        subtitle = f"Expected calibration error (ECE) {ece:.3f} · " + subtitle
    return style_figure(figure, title, subtitle=subtitle, height=460)
