"""Shared look of every btseg figure: colours, model and class names, layout helpers.

Model colours and titles come from btseg.registry (one place names a model); class colours are
the dashboard's. `style_figure` gives every Plotly figure the same template, title block and
legend; `empty_figure` says why a chart has nothing to draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from btseg import registry

TEMPLATE = "plotly_white"
FONT = dict(family="Inter, 'Source Sans Pro', 'Segoe UI', sans-serif", size=13, color="#1b2a33")
#: Grey for anything without a colour of its own (unknown models, reference lines).
NEUTRAL = "#9aa5ab"

CLASS_COLORS: dict[str, str] = {
    "normal": "#4C9A6A",
    "benign": "#E0A030",
    "malignant": "#C0392B",
}
MODEL_COLORS: dict[str, str] = {run: spec.colour for run, spec in registry.BY_RUN.items()}
MODEL_LABELS: dict[str, str] = {run: spec.title for run, spec in registry.BY_RUN.items()}


def style_figure(
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
        font=FONT,
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


def empty_figure(title: str, message: str = "No images match the filters") -> go.Figure:
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
    return style_figure(figure, title)


def legend_inside(figure: go.Figure, corner: str) -> go.Figure:
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


def hex_to_rgb(color: str | Sequence[int]) -> tuple[int, int, int]:
    """'#C0392B' -> (192, 57, 43); an (r, g, b) sequence is returned as a tuple of ints."""
    if isinstance(color, str):
        text = color.lstrip("#")
        if len(text) != 6:
            raise ValueError(f"colour {color!r} is not of the form #RRGGBB")
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    red, green, blue = (int(channel) for channel in color)
    return (red, green, blue)


def model_label(name: str) -> str:
    """'attention_unet' -> 'Attention U-Net'; unknown names are returned unchanged."""
    return MODEL_LABELS.get(name, name)


def model_color(name: str) -> str:
    """The colour of a model in every chart (grey for unknown names)."""
    return MODEL_COLORS.get(name, NEUTRAL)
