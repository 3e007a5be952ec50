"""Segment page figures (the overlays it draws are in btseg.viz.images)."""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

from btseg.config import CLASS_NAMES
from btseg.viz.style import CLASS_COLORS, style_figure


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
    figure = style_figure(figure, title, x_title="Probability", subtitle=subtitle,
                    height=250 if subtitle else 220)
    figure.update_layout(showlegend=False, margin=dict(l=10, r=48, t=96 if subtitle else 56, b=10))
    figure.update_xaxes(range=[0, 1.0], tickformat=".0%", dtick=0.25)
    figure.update_yaxes(autorange="reversed")
    return figure
