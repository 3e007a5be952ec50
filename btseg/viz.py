"""Figures and overlays for the dashboard: pure functions, no Streamlit.

Figure builders take the tidy BTXRD table (see btseg.data.btxrd) or plain arrays and return a
plotly Figure. Overlay helpers take (H, W) or (H, W, 3) uint8 images and return (H, W, 3) uint8
RGB images. Every function here can be called from a test without a running app.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from btseg import registry
from btseg.config import CLASS_NAMES

TEMPLATE = "plotly_white"

CLASS_COLORS: dict[str, str] = {
    "normal": "#4C9A6A",
    "benign": "#E0A030",
    "malignant": "#C0392B",
}
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
_FONT = dict(family="Inter, 'Source Sans Pro', 'Segoe UI', sans-serif", size=13, color="#1b2a33")


# --------------------------------------------------------------------------------------------
# Filtering (the sidebar filters of the Dataset page, as a pure function)


@dataclass(frozen=True)
class TableFilter:
    """A selection of images. Empty tuples and None mean "no restriction".

    labels: classes to keep. sites: keep images naming any of these sites (normal images name
    none, so a site selection keeps tumour images only). centers, genders: values to keep.
    age_range: inclusive (min, max) in years.
    """

    labels: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    centers: tuple[int, ...] = ()
    genders: tuple[str, ...] = ()
    age_range: tuple[float, float] | None = None

    @property
    def active(self) -> bool:
        return bool(
            self.labels or self.sites or self.centers or self.genders or self.age_range is not None
        )


def filter_table(table: pd.DataFrame, selection: TableFilter) -> pd.DataFrame:
    """Rows of the tidy table that match `selection`, in their original order."""
    keep = pd.Series(True, index=table.index)
    if selection.labels:
        keep &= table["label"].isin(selection.labels)
    if selection.sites:
        wanted = set(selection.sites)
        keep &= table["sites"].map(lambda sites: bool(wanted.intersection(sites)))
    if selection.centers:
        keep &= table["center"].isin(selection.centers)
    if selection.genders:
        keep &= table["gender"].isin(selection.genders)
    if selection.age_range is not None:
        low, high = selection.age_range
        keep &= table["age"].between(low, high, inclusive="both")
    return table[keep]


def site_options(table: pd.DataFrame) -> list[str]:
    """Every site named in the table, most frequent first (ties alphabetical)."""
    counts = Counter(site for sites in table["sites"] for site in sites)
    return [site for site, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


# --------------------------------------------------------------------------------------------
# Shared figure styling


def _style(
    figure: go.Figure,
    title: str,
    x_title: str | None = None,
    y_title: str | None = None,
    subtitle: str | None = None,
    height: int = 380,
) -> go.Figure:
    """Shared look: white template, title and subtitle at the top left, the legend on its own
    line just above the plot area (so it never covers the subtitle)."""
    title_spec: dict = {
        "text": title,
        "x": 0.0,
        "xanchor": "left",
        "xref": "container",
        "y": 1.0,
        "yref": "container",
        "yanchor": "top",
        "pad": {"t": 12, "l": 4},
        "font": {"size": 16},
    }
    if subtitle:
        title_spec["subtitle"] = {"text": subtitle, "font": {"size": 12, "color": "#5b6b75"}}
    figure.update_layout(
        template=TEMPLATE,
        title=title_spec,
        height=height,
        font=_FONT,
        margin=dict(l=10, r=16, t=104 if subtitle else 80, b=10),
        legend=dict(
            orientation="h",
            yanchor="bottom",
            y=1.02,
            xanchor="right",
            x=1.0,
            title=None,
            traceorder="normal",
        ),
        hoverlabel=dict(bgcolor="white", font_size=13),
        showlegend=True,  # also for one trace: a filtered chart still names its colour
        bargap=0.25,
        uniformtext=dict(minsize=10, mode="hide"),
    )
    if x_title is not None:
        figure.update_xaxes(title_text=x_title)
    if y_title is not None:
        figure.update_yaxes(title_text=y_title)
    return figure


def _empty_figure(title: str, message: str = "No images match the filters") -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(
        text=message,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font=dict(size=14, color="#5b6b75"),
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return _style(figure, title)


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


# --------------------------------------------------------------------------------------------
# Dataset figures


def class_distribution_figure(table: pd.DataFrame) -> go.Figure:
    """Images per class (normal, benign, malignant): one bar trace, heights are counts."""
    title = "Class distribution"
    if table.empty:
        return _empty_figure(title)
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
    return _style(figure, title, "Class", "Images", subtitle=f"{total} images")


def age_by_class_figure(table: pd.DataFrame, bin_years: float = 5.0) -> go.Figure:
    """Age by class: box plots (top) over a stacked histogram in `bin_years` bins (bottom).

    Traces: one Box per present class, then one Histogram per present class (x = ages, years).
    """
    from plotly.subplots import make_subplots

    title = "Age by class"
    ages = table[["label", "age"]].dropna() if not table.empty else table
    if ages.empty:
        return _empty_figure(title)
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.38, 0.62], vertical_spacing=0.04
    )
    classes = _present_classes(ages)
    for name in classes:
        values = ages.loc[ages["label"] == name, "age"].to_numpy(dtype=float)
        figure.add_trace(
            go.Box(
                x=values,
                name=name,
                marker_color=CLASS_COLORS[name],
                boxpoints=False,
                orientation="h",
                showlegend=False,
                legendgroup=name,
                hovertemplate=f"<b>{name}</b><br>%{{x}} years<extra></extra>",
            ),
            row=1,
            col=1,
        )
    for name in classes:
        values = ages.loc[ages["label"] == name, "age"].to_numpy(dtype=float)
        figure.add_trace(
            go.Histogram(
                x=values,
                name=name,
                marker_color=CLASS_COLORS[name],
                xbins=dict(start=0, size=bin_years),
                legendgroup=name,
                hovertemplate=f"<b>{name}</b><br>age %{{x}} years: %{{y}} images<extra></extra>",
            ),
            row=2,
            col=1,
        )
    figure.update_layout(barmode="stack", bargap=0.05)
    figure.update_yaxes(title_text="Images", row=2, col=1)
    figure.update_xaxes(title_text="Age (years)", row=2, col=1)
    medians = ", ".join(
        f"{name} {np.median(ages.loc[ages['label'] == name, 'age']):g}" for name in classes
    )
    return _style(figure, title, subtitle=f"Median age (years): {medians}", height=420)


def gender_by_class_figure(table: pd.DataFrame) -> go.Figure:
    """Images per class and gender: one Bar trace per gender (F, M), x = class, y = count."""
    title = "Gender by class"
    if table.empty:
        return _empty_figure(title)
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
    return _style(figure, title, "Class", "Images", subtitle="Bar labels: share of the class")


def site_frequency_figure(table: pd.DataFrame) -> go.Figure:
    """Anatomical sites of tumour images, multi-hot (an image naming two sites counts twice).

    Horizontal bars stacked by class (benign, malignant), sites sorted by total, most frequent on top.
    """
    title = "Tumour sites"
    tumours = table[table["label"] != "normal"] if not table.empty else table
    counts: dict[str, Counter] = {name: Counter() for name in CLASS_NAMES}
    for label, sites in zip(tumours["label"], tumours["sites"], strict=True):
        counts[label].update(sites)
    totals = counts["benign"] + counts["malignant"]
    if not totals:
        return _empty_figure(title, "No tumour images with a recorded site")
    order = sorted(totals, key=lambda site: (-totals[site], site))
    classes = [name for name in ("benign", "malignant") if counts[name]]
    figure = _stacked_class_bars(order, counts, classes, "images", horizontal=True)
    # Most frequent on top: Plotly draws the first category at the bottom unless reversed.
    figure.update_yaxes(autorange="reversed")
    multi = int(sum(len(sites) > 1 for sites in tumours["sites"]))
    return _style(
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
        return _empty_figure(title)
    views = table["view"].replace("", _NOT_RECORDED)
    present = set(views)
    order = [view for view in VIEW_ORDER if view in present]
    order += sorted(present - set(VIEW_ORDER))
    counts = {name: Counter(views[table["label"] == name]) for name in CLASS_NAMES}
    figure = _stacked_class_bars(order, counts, _present_classes(table), "images")
    return _style(figure, title, "View", "Images")


def center_figure(table: pd.DataFrame) -> go.Figure:
    """Images per source centre (1 Chinese hospitals, 2 Radiopaedia, 3 MedPix), stacked by class."""
    title = "Source centres"
    if table.empty:
        return _empty_figure(title)
    names = table["center"].map(lambda center: _center_name(center))
    present = set(table["center"])
    order = [_center_name(center) for center in sorted(present, key=_center_sort_key)]
    counts = {name: Counter(names[table["label"] == name]) for name in CLASS_NAMES}
    figure = _stacked_class_bars(order, counts, _present_classes(table), "images")
    return _style(figure, title, "Centre", "Images")


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
    tumours = table[table["label"] != "normal"] if not table.empty else table
    counts: dict[str, Counter] = {"benign": Counter(), "malignant": Counter()}
    for label, subtypes in zip(tumours["label"], tumours["subtypes"], strict=True):
        counts[label].update(subtypes)
    totals = counts["benign"] + counts["malignant"]
    if not totals:
        return _empty_figure(title, "No tumour images match the filters")
    order = sorted(totals, key=lambda subtype: (-totals[subtype], subtype))
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
    return _style(
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
        return _empty_figure(title, "No annotated images match the filters")
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
    return _style(
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
        return _empty_figure(title)
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
    return _style(
        figure,
        title,
        None,
        "Images",
        subtitle="Grouped by surrogate patient, stratified by class",
    )


# --------------------------------------------------------------------------------------------
# Image overlays


def hex_to_rgb(color: str | Sequence[int]) -> tuple[int, int, int]:
    """'#C0392B' -> (192, 57, 43); an (r, g, b) sequence is returned as a tuple of ints."""
    if isinstance(color, str):
        text = color.lstrip("#")
        if len(text) != 6:
            raise ValueError(f"colour {color!r} is not of the form #RRGGBB")
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    red, green, blue = (int(channel) for channel in color)
    return (red, green, blue)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 -> new (H, W, 3) uint8 RGB array."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")


def downscale(image: np.ndarray, max_side: int = 384) -> tuple[np.ndarray, float]:
    """Shrink so the longest side is at most `max_side` pixels (never enlarges).

    Returns (image, scale) where scale = new size / original size (1.0 when unchanged).
    """
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def draw_outlines(
    image: np.ndarray,
    lesions: Iterable,
    color: str | Sequence[int] = CLASS_COLORS["malignant"],
    scale: float = 1.0,
    thickness: int | None = None,
    fill_alpha: float = 0.0,
    antialias: bool = True,
) -> np.ndarray:
    """Lesion outlines drawn on a copy of `image`.

    Args:
        image: (H, W) or (H, W, 3) uint8.
        lesions: objects with `.polygon` ((N, 2) x, y pixels, or None) and `.box`
            ((x0, y0, x1, y1) or None), as btseg.data.labelme.Lesion; the polygon is drawn where
            there is one, else the box.
        color: '#RRGGBB' or (r, g, b).
        scale: factor from the lesions' pixel coordinates to `image` (for a downscaled image).
        thickness: line width in pixels (default: about 0.6% of the longest side, at least 1).
        fill_alpha: opacity of a fill inside each outline, 0 for outlines only.
        antialias: smooth edges (False draws exact, hard-edged pixels).

    Returns (H, W, 3) uint8 RGB.
    """
    canvas = to_rgb(image)
    rgb = hex_to_rgb(color)
    if thickness is None:
        thickness = max(1, round(max(canvas.shape[:2]) * 0.006))
    shapes = []
    for lesion in lesions:
        polygon = getattr(lesion, "polygon", None)
        box = getattr(lesion, "box", None)
        if polygon is not None and len(polygon) >= 3:
            points = np.asarray(polygon, dtype=np.float64) * scale
        elif box is not None:
            x0, y0, x1, y1 = (float(value) * scale for value in box)
            points = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        else:
            continue
        shapes.append(np.round(points).astype(np.int32).reshape(-1, 1, 2))
    if not shapes:
        return canvas
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    if fill_alpha > 0:
        filled = canvas.copy()
        cv2.fillPoly(filled, shapes, rgb, lineType=line_type)
        canvas = cv2.addWeighted(filled, fill_alpha, canvas, 1.0 - fill_alpha, 0.0)
    cv2.polylines(canvas, shapes, isClosed=True, color=rgb, thickness=thickness, lineType=line_type)
    return canvas


def pad_to_square(image: np.ndarray, side: int, value: int = 0) -> np.ndarray:
    """Centre an image of at most `side` x `side` pixels on a (side, side[, C]) canvas of `value`."""
    height, width = image.shape[:2]
    if height > side or width > side:
        raise ValueError(f"image of {height}x{width} pixels does not fit in {side}x{side}")
    canvas = np.full((side, side, *image.shape[2:]), value, dtype=image.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = image
    return canvas


# --------------------------------------------------------------------------------------------
# Tables for the page


def gallery_sample(table: pd.DataFrame, count: int = 8, seed: int = 0) -> pd.DataFrame:
    """Up to `count` rows with an image, classes interleaved (benign, malignant, normal, ...).

    Rows are drawn at random (seeded) within each class; a class that runs out leaves its turn to
    the others. Rows without an image file (has_image False) are never chosen.
    """
    if table.empty:
        return table
    usable = table[table["has_image"].astype(bool)] if "has_image" in table.columns else table
    rng = np.random.default_rng(seed)
    queues = []
    for name in ("benign", "malignant", "normal"):
        positions = np.flatnonzero((usable["label"] == name).to_numpy())
        queues.append(list(rng.permutation(positions)))
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return usable.iloc[chosen]


def problems_table(problems: Iterable) -> pd.DataFrame:
    """One row per problem kind, most frequent first: kind, count, first_ids (up to 5), details.

    `problems` are btseg.data.btxrd.Problem objects (.kind, .message, .image_ids, .count); count
    sums their counts (rows, files or columns concerned; 1 for a problem that names none).
    """
    grouped: dict[str, list] = {}
    for problem in problems:
        grouped.setdefault(problem.kind, []).append(problem)
    rows = []
    for kind, items in grouped.items():
        ids: list[str] = []
        for item in items:
            ids.extend(str(image_id) for image_id in item.image_ids if str(image_id) not in ids)
        count = sum(int(getattr(item, "count", 0) or len(item.image_ids) or 1) for item in items)
        rows.append(
            {
                "kind": kind,
                "count": count,
                "first_ids": ", ".join(ids[:5]) + (" …" if len(ids) > 5 else ""),
                "details": " ".join(item.message for item in items),
            }
        )
    rows.sort(key=lambda row: (-row["count"], row["kind"]))
    return pd.DataFrame(rows, columns=["kind", "count", "first_ids", "details"])


# --- Segmentation figures (Segment page) ---
#
# The Segment page computes masks, maps and metrics at the X-ray's original resolution and draws
# them on a display copy of at most DISPLAY_MAX_SIDE pixels: these functions bring masks and maps
# to the display size and draw on it.

#: Longest side, in pixels, of the images the Segment page draws.
DISPLAY_MAX_SIDE = 1200
#: Outline and tint colours of the Segment page: model prediction, ground truth, a drawn outline.
SEGMENT_COLORS: dict[str, str] = {
    "prediction": "#19B6D8",
    "truth": "#FFD400",
    "drawn": "#FF7F0E",
}
#: Lowest probability the heatmap tells apart (the threshold slider's lower end).
HEATMAP_FLOOR = 1e-4


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) mask (non-zero = lesion) -> (h, w) uint8 {0, 1} of `shape`.

    A display pixel is lesion when any original pixel under it is (for up to 510 original
    pixels per display pixel), so that a lesion smaller than a display pixel still shows.
    """
    mask = np.asarray(mask)
    height, width = (int(value) for value in shape[:2])
    if mask.shape == (height, width):
        return (mask > 0).astype(np.uint8)
    shrinking = height <= mask.shape[0] and width <= mask.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_NEAREST
    # 0/255 bytes: the area average of one lesion pixel among n rounds to >= 1 while n <= 510.
    scaled = (mask > 0).astype(np.uint8) * 255
    resized = cv2.resize(scaled, (width, height), interpolation=interpolation)
    return (resized > 0).astype(np.uint8)


def resize_map(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float map (probabilities, Grad-CAM) -> (h, w) float32 of `shape` (area average
    when shrinking, linear when enlarging)."""
    values = np.asarray(values, dtype=np.float32)
    height, width = (int(value) for value in shape[:2])
    if values.shape == (height, width):
        return values
    shrinking = height <= values.shape[0] and width <= values.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(values, (width, height), interpolation=interpolation)


def _draw_numbered_boxes(
    canvas: np.ndarray, boxes: Sequence[Sequence[float]], color: str, scale: float
) -> np.ndarray:
    """Boxes (x0, y0, x1, y1 in original pixels) drawn on `canvas` with their 1-based number."""
    rgb = hex_to_rgb(color)
    thickness = max(1, round(max(canvas.shape[:2]) * 0.002))
    font_scale = max(0.4, max(canvas.shape[:2]) / 1600)
    for number, box in enumerate(boxes, start=1):
        x0, y0, x1, y1 = (int(round(float(value) * scale)) for value in box)
        cv2.rectangle(canvas, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), rgb, thickness)
        text = str(number)
        (text_width, text_height), baseline = cv2.getTextSize(
            text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
        )
        top = y0 - text_height - baseline - 2
        if top < 0:  # no room above the box: put the number inside its top-left corner
            top = y0
        cv2.rectangle(
            canvas, (x0, top), (x0 + text_width + 4, top + text_height + baseline + 2), rgb, -1
        )
        cv2.putText(canvas, text, (x0 + 2, top + text_height + 1), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return canvas


def segmentation_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.4,
    color: str = SEGMENT_COLORS["prediction"],
    truth: np.ndarray | None = None,
    truth_color: str = SEGMENT_COLORS["truth"],
    boxes: Sequence[Sequence[float]] = (),
    box_scale: float = 1.0,
) -> np.ndarray:
    """A mask tinted over an image and outlined; alpha=0 draws the outline only (contour view).

    Args:
        image: (h, w) or (h, w, 3) uint8, usually the display copy of the X-ray.
        mask: (H, W) mask (non-zero = lesion), resized to the image here (see resize_mask).
        alpha: opacity of the tint inside the mask, 0 to 1.
        truth: optional (H, W) true mask, outlined in `truth_color`.
        boxes: lesion boxes (x0, y0, x1, y1) in the mask's original pixels, drawn numbered.
        box_scale: factor from original pixels to `image` pixels (downscale's scale).

    Returns (h, w, 3) uint8 RGB.
    """
    shape = image.shape[:2]
    shown = resize_mask(mask, shape).astype(np.float32)
    fitted_truth = None if truth is None else resize_mask(truth, shape)
    canvas = prediction_overlay(
        image, shown, 0.5, color=color, alpha=float(alpha), truth=fitted_truth,
        truth_color=truth_color,
    )
    if len(boxes):
        canvas = _draw_numbered_boxes(canvas, boxes, color, box_scale)
    return canvas


def _colormap_blend(image: np.ndarray, values: np.ndarray, alpha: float) -> np.ndarray:
    """Turbo colours of `values` (h, w) in [0, 1] blended over the image with opacity
    alpha * value: high values show strongly, values near 0 leave the X-ray visible."""
    canvas = to_rgb(np.asarray(image))
    values = np.clip(resize_map(values, canvas.shape[:2]), 0.0, 1.0)
    colored = cv2.applyColorMap(np.rint(values * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB).astype(np.float32)
    weight = (float(alpha) * values)[:, :, None]
    blended = (1.0 - weight) * canvas.astype(np.float32) + weight * colored
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def log_probability_scale(probability: np.ndarray, floor: float = HEATMAP_FLOOR) -> np.ndarray:
    """Probabilities on a log scale from `floor` (0) to 1 (1): (H, W) float32 in [0, 1].
    10**-3 maps to 0.25 with the default floor of 10**-4."""
    low = np.log10(floor)
    logs = np.log10(np.maximum(np.asarray(probability, dtype=np.float32), floor))
    return np.clip((logs - low) / -low, 0.0, 1.0).astype(np.float32)


def probability_heatmap(
    image: np.ndarray, probability: np.ndarray, alpha: float = 0.7, floor: float = HEATMAP_FLOOR
) -> np.ndarray:
    """The probability map in Turbo colours over the image, on a log scale from `floor` to 1
    (matching the log threshold slider). The map is brought to the image's size first (area
    average), so a display copy is quick to draw. Returns (h, w, 3) uint8 RGB."""
    fitted = resize_map(probability, image.shape[:2])
    return _colormap_blend(image, log_probability_scale(fitted, floor), alpha)


def heatmap_legend(floor: float = HEATMAP_FLOOR, stops: int = 9) -> list[tuple[float, str]]:
    """(probability, '#RRGGBB') pairs along probability_heatmap's colour scale, low to high."""
    positions = np.linspace(0.0, 1.0, stops)
    levels = np.rint(positions * 255).astype(np.uint8).reshape(-1, 1)
    colors = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    low = np.log10(floor)
    return [
        (float(10 ** (low * (1.0 - position))), "#{:02X}{:02X}{:02X}".format(*color[0]))
        for position, color in zip(positions, colors, strict=True)
    ]


def gradcam_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """A Grad-CAM map ((H, W) in [0, 1], linear) in Turbo colours over the image."""
    return _colormap_blend(image, cam, alpha)


def class_probability_figure(
    probabilities: Mapping[str, float], title: str = "Class probabilities",
    subtitle: str | None = None,
) -> go.Figure:
    """Horizontal bars of the classifier's probabilities, one per class in CLASS_NAMES order
    (then any other class), in the class colours, labelled in percent."""
    names = [name for name in CLASS_NAMES if name in probabilities]
    names += [name for name in probabilities if name not in names]
    values = [float(probabilities[name]) for name in names]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            marker_color=[CLASS_COLORS.get(name, "#5B6770") for name in names],
            text=[f"{100 * value:.1f}%" for value in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="<b>%{y}</b>: %{x:.3f}<extra></extra>",
            name="probability",
        )
    )
    figure = _style(figure, title, x_title="Probability", subtitle=subtitle,
                    height=250 if subtitle else 220)
    figure.update_layout(showlegend=False, margin=dict(l=10, r=48, t=96 if subtitle else 56, b=10))
    figure.update_xaxes(range=[0, 1.0], tickformat=".0%", dtick=0.25)
    figure.update_yaxes(autorange="reversed")
    return figure


# --- Evaluation figures (thresholds, comparison) ---
#
# Inputs are plain arrays, mappings and data frames as btseg.evaluation reads them from a run's
# evaluation/ folder; model keys are run names ("basic_unet", "attention_unet").

MODEL_COLORS: dict[str, str] = {run: spec.colour for run, spec in registry.BY_RUN.items()}
MODEL_LABELS: dict[str, str] = {run: spec.title for run, spec in registry.BY_RUN.items()}
#: Line colours of the threshold curves (pixel metrics pooled over the test split).
THRESHOLD_METRICS: dict[str, tuple[str, str]] = {
    "mean_dice": ("Mean Dice (tumour images)", "#0f6e8c"),
    "dice": ("Pooled Dice", "#5fa8c7"),
    "iou": ("Pooled IoU", "#8e7cc3"),
    "sensitivity": ("Sensitivity", "#d35400"),
    "specificity": ("Specificity", "#6b7b86"),
    "f1": ("F1", "#1b2a33"),
}
SIZE_BUCKET_COLORS: dict[str, str] = {"<1%": "#7fb3d5", "1-5%": "#2e86c1", ">=5%": "#1b4f72"}
#: Vertical threshold markers: the slider's value, the validation choice, the best on test.
CHOSEN_COLOR = "#1b2a33"
VALIDATION_COLOR = "#1e8449"
OPTIMISTIC_COLOR = "#c0392b"
_NEUTRAL = "#9aa5ab"
_HISTORY_TITLES = {"loss": "Loss", "dice": "Dice", "iou": "IoU", "accuracy": "Accuracy",
                   "balanced_accuracy": "Balanced accuracy"}


def model_label(name: str) -> str:
    """'attention_unet' -> 'Attention U-Net'; unknown names are returned unchanged."""
    return MODEL_LABELS.get(name, name)


def model_color(name: str) -> str:
    """The colour of a model in every chart (grey for unknown names)."""
    return MODEL_COLORS.get(name, _NEUTRAL)


def _format_threshold(value: float) -> str:
    return f"{value:.4g}"


def _with_area(label: str, area_name: str, area: float | None) -> str:
    if area is None or not np.isfinite(area):
        return label
    return f"{label} · {area_name} {area:.3f}"


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
            go.Scatter(
                x=np.asarray(fpr, dtype=float),
                y=np.asarray(tpr, dtype=float),
                mode="lines",
                name=_with_area(model_label(name), "AUC", areas.get(name)),
                line=dict(color=model_color(name), width=2.5),
                hovertemplate="FPR %{x:.4f}<br>TPR %{y:.3f}<extra>" + model_label(name) + "</extra>",
            )
        )
    low = 1e-5 if log_fpr else 0.0
    figure.add_trace(
        go.Scatter(
            x=np.logspace(-5, 0, 50) if log_fpr else [0.0, 1.0],
            y=np.logspace(-5, 0, 50) if log_fpr else [0.0, 1.0],
            mode="lines",
            name="chance",
            line=dict(color=_NEUTRAL, dash="dot", width=1),
            hoverinfo="skip",
        )
    )
    for name, (fpr, tpr) in (points or {}).items():
        figure.add_trace(
            go.Scatter(
                x=[max(float(fpr), low) if log_fpr else float(fpr)],
                y=[float(tpr)],
                mode="markers",
                name=f"{model_label(name)} at its validation threshold",
                marker=dict(color=model_color(name), size=11, symbol="diamond",
                            line=dict(color="white", width=1.5)),
                hovertemplate="operating point<br>FPR %{x:.4f}<br>TPR %{y:.3f}<extra></extra>",
            )
        )
    if log_fpr:
        decades = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
        figure.update_xaxes(type="log", range=[-5, 0], tickvals=decades,
                            ticktext=[f"{value:g}" if value >= 1e-4 else "0.00001" for value in decades])
    else:
        figure.update_xaxes(range=[0, 1])
    figure.update_yaxes(range=[0, 1.02])
    figure = _style(
        figure,
        title,
        "False-positive rate (background pixels called tumour)" + (", log scale" if log_fpr else ""),
        "True-positive rate (sensitivity)",
        subtitle=subtitle,
        height=420,
    )
    return _legend_inside(figure, "bottom")


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
            go.Scatter(
                x=np.asarray(recall, dtype=float),
                y=np.asarray(precision, dtype=float),
                mode="lines",
                name=_with_area(model_label(name), "AP", areas.get(name)),
                line=dict(color=model_color(name), width=2.5),
                hovertemplate="recall %{x:.3f}<br>precision %{y:.3f}<extra>"
                + model_label(name) + "</extra>",
            )
        )
    if prevalence is not None:
        figure.add_trace(
            go.Scatter(
                x=[0.0, 1.0],
                y=[float(prevalence)] * 2,
                mode="lines",
                name=f"chance (tumour pixels {100 * float(prevalence):.2g}%)",
                line=dict(color=_NEUTRAL, dash="dot", width=1),
                hoverinfo="skip",
            )
        )
    for name, (recall, precision) in (points or {}).items():
        figure.add_trace(
            go.Scatter(
                x=[float(recall)],
                y=[float(precision)],
                mode="markers",
                name=f"{model_label(name)} at its validation threshold",
                marker=dict(color=model_color(name), size=11, symbol="diamond",
                            line=dict(color="white", width=1.5)),
                hovertemplate="operating point<br>recall %{x:.3f}<br>precision %{y:.3f}"
                "<extra></extra>",
            )
        )
    figure.update_xaxes(range=[0, 1])
    figure.update_yaxes(range=[0, 1.02])
    figure = _style(figure, title, "Recall (sensitivity)", "Precision", subtitle=subtitle, height=420)
    return _legend_inside(figure, "top")


def _legend_inside(figure: go.Figure, corner: str) -> go.Figure:
    """Curve legends inside the plot, in the bottom-right or top-right corner, so that long
    entries never run into the title of a half-width chart."""
    figure.update_layout(
        legend=dict(
            orientation="v", x=0.99, xanchor="right", y=0.02 if corner == "bottom" else 0.98,
            yanchor="bottom" if corner == "bottom" else "top", bgcolor="rgba(255,255,255,0.85)",
            bordercolor="#d5dde2", borderwidth=1, font=dict(size=12),
        ),
        margin=dict(t=104 if figure.layout.title.subtitle.text else 64),
    )
    return figure


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
            text=f"{' = '.join(labels)} {_format_threshold(value)}",
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
        label, color = THRESHOLD_METRICS.get(column, (column, _NEUTRAL))
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
    return _style(figure, title, "Threshold (log scale)", "Score", subtitle=subtitle, height=440)


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
    figure = _style(figure, title, subtitle=subtitle, height=max(320, 150 + 80 * size))
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
    return _style(figure, title, "Threshold (log scale)", "Normal images with a predicted lesion",
                  subtitle=subtitle, height=400)


def size_bucket_figure(
    per_image: Mapping[str, pd.DataFrame],
    buckets: Sequence[str] = ("<1%", "1-5%", ">=5%"),
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
    return _style(figure, title, "True lesion area (share of the image)", "Mean Dice",
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
        return _empty_figure(title, "No training history")
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
    figure = _style(figure, title, subtitle="Solid: training images · dashed: validation images",
                    height=420)
    # Below the panels: above them the legend would run into the panel titles.
    figure.update_layout(
        legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.2, yanchor="top"),
        margin=dict(t=96, b=70),
    )
    return figure


def dice_scatter_figure(
    table: pd.DataFrame,
    x_model: str = "basic_unet",
    y_model: str = "attention_unet",
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
        return _empty_figure(title, "No test image with a tumour")
    if color_by == "label":
        order, colors = list(CLASS_NAMES), CLASS_COLORS
    else:
        order, colors = list(SIZE_BUCKET_COLORS), SIZE_BUCKET_COLORS
    groups = [value for value in order if (shown[color_by] == value).any()]
    groups += sorted(set(shown[color_by].astype(str)) - set(order))
    figure = go.Figure(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="equal", hoverinfo="skip",
            line=dict(color=_NEUTRAL, dash="dot", width=1),
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
                marker=dict(color=colors.get(group, _NEUTRAL), size=10, opacity=0.85,
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
    figure = _style(
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
    return _legend_inside(figure, "bottom")


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
                   line=dict(color=_NEUTRAL, dash="dot"), hoverinfo="skip"),
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
        go.Bar(x=centres, y=count, width=widths * 0.94, name="images", marker_color=_NEUTRAL,
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
    return _style(figure, title, subtitle=subtitle, height=460)


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
                line=dict(color=CLASS_COLORS.get(name, _NEUTRAL), width=2.5, shape="hv"),
                hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<extra>" + name + "</extra>",
            )
        )
    figure.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", hoverinfo="skip",
                   line=dict(color=_NEUTRAL, dash="dot", width=1))
    )
    subtitle = None
    if macro_auc is not None and np.isfinite(macro_auc):
        subtitle = f"Macro AUC {macro_auc:.3f}"
        if macro_ci is not None and all(v is not None and np.isfinite(v) for v in macro_ci):
            subtitle += f" (95% CI {macro_ci[0]:.3f}–{macro_ci[1]:.3f})"
    figure.update_xaxes(range=[0, 1])
    figure.update_yaxes(range=[0, 1.02])
    figure = _style(figure, title, "False-positive rate", "True-positive rate", subtitle=subtitle,
                    height=420)
    return _legend_inside(figure, "bottom")


def prediction_overlay(
    image_gray: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    color: str | Sequence[int] = MODEL_COLORS["attention_unet"],
    alpha: float = 0.45,
    truth: np.ndarray | None = None,
    truth_color: str | Sequence[int] = "#FFD400",
) -> np.ndarray:
    """The predicted mask (probability >= threshold) tinted over the image, outlined in full
    colour, with the true lesion outlined in `truth_color` when given.

    Args:
        image_gray: (H, W) uint8 (or (H, W, 3) uint8).
        probability: (H, W) float map in [0, 1] at the image's resolution.
        threshold: pixels with probability >= threshold are the prediction.
        alpha: opacity of the tint inside the predicted mask.
        truth: optional (H, W) {0, 1} true mask.

    Returns (H, W, 3) uint8 RGB. Raises ValueError when the shapes differ.
    """
    canvas = to_rgb(np.asarray(image_gray))
    probability = np.asarray(probability)
    if probability.ndim == 3 and probability.shape[2] == 1:
        probability = probability[..., 0]
    if probability.shape != canvas.shape[:2]:
        raise ValueError(
            f"probability map of shape {probability.shape} does not match the image "
            f"{canvas.shape[:2]}"
        )
    mask = (probability.astype(np.float64) >= float(threshold)).astype(np.uint8)
    rgb = np.array(hex_to_rgb(color), dtype=np.float32)
    thickness = max(1, round(max(canvas.shape[:2]) * 0.004))
    if mask.any():
        tinted = canvas.astype(np.float32)
        inside = mask.astype(bool)
        tinted[inside] = (1.0 - alpha) * tinted[inside] + alpha * rgb
        canvas = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, tuple(int(v) for v in rgb), thickness)
    if truth is not None:
        canvas = outline_mask(canvas, truth, truth_color, thickness)
    return canvas


def outline_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: str | Sequence[int] = "#FFD400",
    thickness: int | None = None,
) -> np.ndarray:
    """The outer outline of a {0, 1} mask drawn on a copy of `image`.

    Args:
        image: (H, W) or (H, W, 3) uint8. mask: (H, W), nonzero inside.
        thickness: line width in pixels (default: about 0.4% of the longest side, at least 1).

    Returns (H, W, 3) uint8 RGB. Raises ValueError when the shapes differ.
    """
    canvas = to_rgb(np.asarray(image))
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    if binary.shape != canvas.shape[:2]:
        raise ValueError(
            f"true mask of shape {binary.shape} does not match the image {canvas.shape[:2]}"
        )
    if thickness is None:
        thickness = max(1, round(max(canvas.shape[:2]) * 0.004))
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, contours, -1, hex_to_rgb(color), thickness)
    return canvas


def empty_prediction_scores(tumour_pixels: int, background_pixels: int) -> dict[str, float]:
    """What a model that predicts no tumour anywhere scores on a set of pixels.

    Returns:
        {"tumour_share": tumour / all pixels, "pixel_accuracy": background / all (every
        background pixel is right), "keras_mean_iou": mean of background IoU
        (background / all) and tumour IoU (0): the Keras MeanIoU of an empty prediction,
        "foreground_iou": 0, "dice": 0}. NaN where there are no pixels; with no tumour pixel the
        tumour IoU is 0/0 and Keras' mean falls back to the background IoU alone (1.0).
    """
    tumour, background = int(tumour_pixels), int(background_pixels)
    total = tumour + background
    if total == 0:
        nan = float("nan")
        return {"tumour_share": nan, "pixel_accuracy": nan, "keras_mean_iou": nan,
                "foreground_iou": nan, "dice": nan}
    background_iou = background / total
    keras_mean_iou = background_iou / 2 if tumour else background_iou
    return {
        "tumour_share": tumour / total,
        "pixel_accuracy": background / total,
        "keras_mean_iou": keras_mean_iou,
        "foreground_iou": 0.0 if tumour else float("nan"),
        "dice": 0.0 if tumour else float("nan"),
    }
