"""Dataset page figures: class, age, gender, site, view, centre, subtype, lesion area and split.

Each builder takes the tidy BTXRD table (see btseg.data.btxrd), usually already filtered with
btseg.data.queries.filter_table, and returns a Plotly figure; an empty selection gives a figure
that says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from btseg.config import CLASS_NAMES
from btseg.viz.style import CLASS_COLORS, empty_figure, style_figure

SPLIT_PARTS: tuple[str, ...] = ("train", "val", "test")
SPLIT_COLORS: dict[str, str] = {
    "train": "#2F6F8F",
    "val": "#8A6FBF",
    "test": "#5B6770",
}
GENDER_NAMES: dict[str, str] = {"F": "Female", "M": "Male"}
GENDER_COLORS: dict[str, str] = {"F": "#A05C8C", "M": "#4A7FB0"}
CENTER_NAMES: dict[int, str] = {1: "Chinese hospitals", 2: "Radiopaedia", 3: "MedPix"}
VIEW_ORDER: tuple[str, ...] = ("frontal", "lateral", "oblique")
#: Lesions under this share of the image are "small" (about half of BTXRD's tumour images).
SMALL_LESION_PERCENT = 1.0

_NOT_RECORDED = "not recorded"


def _percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def _present_classes(table: pd.DataFrame) -> list[str]:
    present = set(table["label"])
    return [name for name in CLASS_NAMES if name in present]


def _stacked_class_bars(
    categories: Sequence[str],
    counts: Mapping[str, Mapping[str, int]],
    classes: Sequence[str],
    unit: str,
    horizontal: bool = False,
) -> go.Figure:
    """One bar trace per class over `categories`; counts[class][category] -> bar height."""
    totals = {
        category: sum(counts[name].get(category, 0) for name in classes) for category in categories
    }
    figure = go.Figure()
    for name in classes:
        values = [int(counts[name].get(category, 0)) for category in categories]
        shares = [
            _percent(value, totals[category])
            for value, category in zip(values, categories, strict=True)
        ]
        position = "%{y}" if horizontal else "%{x}"
        value_ref = "%{x}" if horizontal else "%{y}"
        bar = go.Bar(
            name=name,
            marker_color=CLASS_COLORS[name],
            customdata=np.array(shares).reshape(-1, 1),
            hovertemplate=(
                f"<b>{position}</b><br>{name}: {value_ref} {unit} "
                "(%{customdata[0]:.0f}% of this bar)<extra></extra>"
            ),
        )
        if horizontal:
            bar.update(x=values, y=list(categories), orientation="h")
        else:
            bar.update(x=list(categories), y=values)
        figure.add_trace(bar)
    figure.update_layout(barmode="stack")
    return figure


def class_distribution_figure(table: pd.DataFrame) -> go.Figure:
    """Images per class (normal, benign, malignant): one bar trace, heights are counts."""
    title = "Class distribution"
    if table.empty:
        return empty_figure(title)
    counts = table["label"].value_counts()
    values = [int(counts.get(name, 0)) for name in CLASS_NAMES]
    total = sum(values)
    shares = [_percent(value, total) for value in values]
    figure = go.Figure(
        go.Bar(
            x=list(CLASS_NAMES),
            y=values,
            marker_color=[CLASS_COLORS[name] for name in CLASS_NAMES],
            text=[f"{value} ({share:.1f}%)" for value, share in zip(values, shares, strict=True)],
            textposition="outside",
            cliponaxis=False,
            customdata=np.array(shares).reshape(-1, 1),
            hovertemplate="<b>%{x}</b><br>%{y} images (%{customdata[0]:.1f}%)<extra></extra>",
            showlegend=False,
        )
    )
    figure.update_yaxes(range=[0, max(values) * 1.18 + 1])
    return style_figure(figure, title, "Class", "Images", subtitle=f"{total} images")


def age_by_class_figure(table: pd.DataFrame, bin_years: float = 5.0) -> go.Figure:
    """Age by class: box plots (top) over a stacked histogram in `bin_years` bins (bottom).

    Traces: one Box per present class, then one Histogram per present class (x = ages, years).
    """
    from plotly.subplots import make_subplots

    title = "Age by class"
    ages = table[["label", "age"]].dropna() if not table.empty else table
    if ages.empty:
        return empty_figure(title)
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.38, 0.62], vertical_spacing=0.04
    )
    classes = _present_classes(ages)
    per_class = {
        name: ages.loc[ages["label"] == name, "age"].to_numpy(dtype=float) for name in classes
    }
    for name, values in per_class.items():  # row 1: one box per class
        hover = f"<b>{name}</b><br>%{{x}} years<extra></extra>"
        box = go.Box(x=values, name=name, marker_color=CLASS_COLORS[name], boxpoints=False,
                     orientation="h", showlegend=False, legendgroup=name, hovertemplate=hover)
        figure.add_trace(box, row=1, col=1)
    for name, values in per_class.items():  # row 2: the stacked histogram
        hover = f"<b>{name}</b><br>age %{{x}} years: %{{y}} images<extra></extra>"
        bars = go.Histogram(x=values, name=name, marker_color=CLASS_COLORS[name],
                            xbins=dict(start=0, size=bin_years), legendgroup=name,
                            hovertemplate=hover)
        figure.add_trace(bars, row=2, col=1)
    figure.update_layout(barmode="stack", bargap=0.05)
    figure.update_yaxes(title_text="Images", row=2, col=1)
    figure.update_xaxes(title_text="Age (years)", row=2, col=1)
    medians = ", ".join(
        f"{name} {np.median(ages.loc[ages['label'] == name, 'age']):g}" for name in classes
    )
    return style_figure(figure, title, subtitle=f"Median age (years): {medians}", height=420)


def gender_by_class_figure(table: pd.DataFrame) -> go.Figure:
    """Images per class and gender: one Bar trace per gender (F, M), x = class, y = count."""
    title = "Gender by class"
    if table.empty:
        return empty_figure(title)
    classes = _present_classes(table)
    counts = table.groupby(["gender", "label"]).size()
    class_totals = table["label"].value_counts()
    figure = go.Figure()
    genders = [gender for gender in GENDER_NAMES if gender in set(table["gender"])]
    genders += sorted(set(table["gender"]) - set(GENDER_NAMES))
    for gender in genders:
        values = [int(counts.get((gender, name), 0)) for name in classes]
        shares = [
            _percent(value, class_totals[name]) for value, name in zip(values, classes, strict=True)
        ]
        figure.add_trace(
            go.Bar(
                name=GENDER_NAMES.get(gender, str(gender)),
                x=classes,
                y=values,
                marker_color=GENDER_COLORS.get(gender, "#9aa5ab"),
                text=[f"{share:.0f}%" for share in shares],
                textposition="inside",
                customdata=np.array(shares).reshape(-1, 1),
                hovertemplate=(
                    f"<b>%{{x}}</b><br>{GENDER_NAMES.get(gender, gender)}: %{{y}} images "
                    "(%{customdata[0]:.0f}% of the class)<extra></extra>"
                ),
            )
        )
    figure.update_layout(barmode="group")
    return style_figure(figure, title, "Class", "Images", subtitle="Bar labels: share of the class")


def _tumour_counts(
    table: pd.DataFrame, column: str
) -> tuple[pd.DataFrame, dict[str, Counter], Counter, list[str]]:
    """(tumour rows, class -> Counter of the values of the multi-valued `column` (a row naming
    two counts once for each), their totals, the values most frequent first (ties alphabetical))."""
    tumours = table[table["label"] != "normal"] if not table.empty else table
    counts: dict[str, Counter] = {name: Counter() for name in CLASS_NAMES}
    for label, values in zip(tumours["label"], tumours[column], strict=True):
        counts[label].update(values)
    totals = counts["benign"] + counts["malignant"]
    return tumours, counts, totals, sorted(totals, key=lambda value: (-totals[value], value))


def site_frequency_figure(table: pd.DataFrame) -> go.Figure:
    """Anatomical sites of tumour images, multi-hot (an image naming two sites counts twice).

    Horizontal bars stacked by class (benign, malignant), sites sorted by total, most frequent on top.
    """
    title = "Tumour sites"
    tumours, counts, totals, order = _tumour_counts(table, "sites")
    if not totals:
        return empty_figure(title, "No tumour images with a recorded site")
    classes = [name for name in ("benign", "malignant") if counts[name]]
    figure = _stacked_class_bars(order, counts, classes, "images", horizontal=True)
    # Most frequent on top: Plotly draws the first category at the bottom unless reversed.
    figure.update_yaxes(autorange="reversed")
    multi = int(sum(len(sites) > 1 for sites in tumours["sites"]))
    return style_figure(
        figure,
        title,
        "Tumour images naming the site",
        None,
        subtitle=f"{len(tumours)} tumour images; {multi} name more than one site (counted once per site)",
        height=max(380, 130 + 24 * len(order)),
    )


def view_figure(table: pd.DataFrame) -> go.Figure:
    """Images per view (frontal, lateral, oblique), stacked by class."""
    title = "Views"
    if table.empty:
        return empty_figure(title)
    views = table["view"].replace("", _NOT_RECORDED)
    present = set(views)
    order = [view for view in VIEW_ORDER if view in present]
    order += sorted(present - set(VIEW_ORDER))
    counts = {name: Counter(views[table["label"] == name]) for name in CLASS_NAMES}
    figure = _stacked_class_bars(order, counts, _present_classes(table), "images")
    return style_figure(figure, title, "View", "Images")


def center_figure(table: pd.DataFrame) -> go.Figure:
    """Images per source centre (1 Chinese hospitals, 2 Radiopaedia, 3 MedPix), stacked by class."""
    title = "Source centres"
    if table.empty:
        return empty_figure(title)
    names = table["center"].map(lambda center: _center_name(center))
    present = set(table["center"])
    order = [_center_name(center) for center in sorted(present, key=_center_sort_key)]
    counts = {name: Counter(names[table["label"] == name]) for name in CLASS_NAMES}
    figure = _stacked_class_bars(order, counts, _present_classes(table), "images")
    return style_figure(figure, title, "Centre", "Images")


def _center_name(center: object) -> str:
    try:
        number = int(center)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return str(center)
    return f"{number} · {CENTER_NAMES[number]}" if number in CENTER_NAMES else str(number)


def _center_sort_key(center: object) -> tuple[int, str]:
    try:
        return (int(center), "")  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return (1 << 30, str(center))


def subtype_figure(table: pd.DataFrame) -> go.Figure:
    """Tumour subtypes: horizontal bars, one trace per class (benign, malignant), sorted by count.

    Counted from `subtypes`, so a row naming two subtypes counts once for each.
    """
    title = "Tumour subtypes"
    _, counts, totals, order = _tumour_counts(table, "subtypes")
    if not totals:
        return empty_figure(title, "No tumour images match the filters")
    figure = go.Figure()
    for name in ("benign", "malignant"):
        subtypes = [subtype for subtype in order if counts[name].get(subtype, 0)]
        if not subtypes:
            continue
        values = [counts[name][subtype] for subtype in subtypes]
        figure.add_trace(
            go.Bar(
                name=name,
                x=values,
                y=subtypes,
                orientation="h",
                marker_color=CLASS_COLORS[name],
                text=values,
                textposition="outside",
                cliponaxis=False,
                hovertemplate=f"<b>%{{y}}</b> ({name})<br>%{{x}} images<extra></extra>",
            )
        )
    figure.update_layout(barmode="stack")
    figure.update_yaxes(categoryorder="array", categoryarray=order, autorange="reversed")
    figure.update_xaxes(range=[0, max(totals.values()) * 1.15 + 1])
    return style_figure(
        figure,
        title,
        "Images",
        None,
        subtitle="Coloured by class",
        height=max(380, 130 + 24 * len(order)),
    )


def lesion_area_figure(
    areas: Iterable[float],
    labels: Iterable[str] | None = None,
    bins_per_decade: int = 5,
) -> go.Figure:
    """Distribution of lesion area as a percentage of the image, on a log axis.

    Args:
        areas: one value per annotated image (all its lesions together, as
            btseg.stats.lesion_measurements gives), percent of the image area. Values that are
            not positive or not finite are dropped (a log axis cannot show them).
        labels: optional class per value ("benign"/"malignant"): bars are then stacked by class.
        bins_per_decade: log-spaced bins per factor of ten.

    Bars: x = log10 of the bin centre (ticks read as percent), y = images in the bin, bins
    [low, high). The dashed line marks 1% of the image.
    """
    title = "Lesion area"
    values = np.asarray(list(areas), dtype=float)
    names = np.asarray(list(labels), dtype=object) if labels is not None else None
    if names is not None and len(names) != len(values):
        raise ValueError(f"areas has {len(values)} values but labels has {len(names)}")
    valid = np.isfinite(values) & (values > 0)
    values = values[valid]
    if names is not None:
        names = names[valid]
    if values.size == 0:
        return empty_figure(title, "No annotated images match the filters")
    logs = np.log10(values)
    step = 1.0 / bins_per_decade
    # Integer bin indices keep the edges on exact multiples of `step`; [low, high) bins.
    first, last = int(np.floor(logs.min() / step)), int(np.floor(logs.max() / step)) + 1
    edges = np.arange(first, last + 1) * step
    edges[0], edges[-1] = min(edges[0], logs.min()), max(edges[-1], logs.max())
    low, high = float(edges[0]), float(edges[-1])
    centres = (edges[:-1] + edges[1:]) / 2
    ranges = np.stack([10 ** edges[:-1], 10 ** edges[1:]], axis=1)
    figure = go.Figure()
    tallest = np.histogram(logs, bins=edges)[0].max()
    groups = (
        [(None, logs)]
        if names is None
        else [(name, logs[names == name]) for name in CLASS_NAMES if np.any(names == name)]
    )
    for name, group_logs in groups:
        counts, _ = np.histogram(group_logs, bins=edges)
        figure.add_trace(
            go.Bar(
                x=centres,
                y=counts,
                width=step * 0.92,
                name=name or "images",
                showlegend=name is not None,
                marker_color=CLASS_COLORS.get(name or "", "#2F6F8F"),
                customdata=ranges,
                hovertemplate=(
                    f"<b>{name or 'annotated images'}</b><br>lesion area "
                    "%{customdata[0]:.3g}–%{customdata[1]:.3g}% of the image: "
                    "%{y} images<extra></extra>"
                ),
            )
        )
    small = int(np.sum(values < SMALL_LESION_PERCENT))
    threshold = np.log10(SMALL_LESION_PERCENT)
    figure.add_vline(
        x=threshold,
        line_dash="dash",
        line_color="#1b2a33",
        line_width=1.5,
        annotation_text="1% of the image",
        annotation_position="top left",
    )
    decades = np.arange(np.floor(low), np.ceil(high) + 1)
    figure.update_xaxes(
        tickvals=decades.tolist(),
        ticktext=[_format_percent(10**decade) for decade in decades],
        range=[min(low, threshold - step), max(high, threshold + step)],
    )
    # Headroom above the tallest bar for the label of the 1% line.
    figure.update_yaxes(range=[0, tallest * 1.22 + 0.5])
    figure.update_layout(barmode="stack", bargap=0.0)
    return style_figure(
        figure,
        title,
        "Lesion area (% of the image, log scale)",
        "Annotated images",
        subtitle=(
            f"{values.size} annotated images; {small} ({_percent(small, values.size):.0f}%) "
            "have lesions covering less than 1% of the image"
        ),
    )


def _format_percent(value: float) -> str:
    return f"{value:g}%"


def split_composition_figure(table: pd.DataFrame, assignment: Mapping[str, str]) -> go.Figure:
    """Images per split part (train, val, test), stacked by class.

    Args:
        table: tidy table (uses image_id and label).
        assignment: image_id -> "train" | "val" | "test". Rows missing from it (an image that is
            not on disk, or filtered out of the split) are counted as "not in split".
    """
    title = "Split composition"
    if table.empty:
        return empty_figure(title)
    parts = table["image_id"].map(lambda image_id: assignment.get(image_id, "not in split"))
    present = set(parts)
    order = [part for part in SPLIT_PARTS if part in present]
    order += sorted(present - set(SPLIT_PARTS))
    counts = {name: Counter(parts[table["label"] == name]) for name in CLASS_NAMES}
    figure = _stacked_class_bars(order, counts, _present_classes(table), "images")
    for trace in figure.data:
        trace.update(text=trace.y, textposition="inside", insidetextanchor="middle", textangle=0)
    totals = Counter(parts)
    figure.update_xaxes(
        tickvals=order,
        ticktext=[
            f"<span style='color:{SPLIT_COLORS.get(part, '#5B6770')}'><b>{part}</b></span>"
            f"<br>{totals[part]} images"
            for part in order
        ],
    )
    return style_figure(
        figure,
        title,
        None,
        "Images",
        subtitle="Grouped by surrogate patient, stratified by class",
    )
