"""Figures and overlays for the dashboard: pure functions, no Streamlit, by page family.

    style       colours, model and class names (models from btseg.registry), shared layout
    dataset     Dataset page figures
    images      overlays on X-rays: outlines, masks, probability heatmap, Grad-CAM, resizing
    segment     Segment page figures (class probabilities)
    evaluation  Thresholds and Compare page figures

Figure builders return a plotly Figure; overlay helpers take (H, W) or (H, W, 3) uint8 images
and return (H, W, 3) uint8 RGB images. Every public name is importable from btseg.viz itself,
and every function can be called from a test without a running app.
"""

from __future__ import annotations

from btseg.viz.dataset import (
    CENTER_NAMES,
    GENDER_COLORS,
    GENDER_NAMES,
    SMALL_LESION_PERCENT,
    SPLIT_COLORS,
    SPLIT_PARTS,
    VIEW_ORDER,
    age_by_class_figure,
    center_figure,
    class_distribution_figure,
    gender_by_class_figure,
    lesion_area_figure,
    site_frequency_figure,
    split_composition_figure,
    subtype_figure,
    view_figure,
)
from btseg.viz.evaluation import (
    CHOSEN_COLOR,
    OPTIMISTIC_COLOR,
    SIZE_BUCKET_COLORS,
    THRESHOLD_METRICS,
    VALIDATION_COLOR,
    class_roc_figure,
    confusion_matrix_figure,
    dice_scatter_figure,
    history_figure,
    normal_fp_figure,
    pr_figure,
    reliability_figure,
    roc_figure,
    size_bucket_figure,
    threshold_curves_figure,
)
from btseg.viz.images import (
    DISPLAY_MAX_SIDE,
    HEATMAP_FLOOR,
    SEGMENT_COLORS,
    downscale,
    draw_outlines,
    gradcam_overlay,
    heatmap_legend,
    log_probability_scale,
    outline_mask,
    pad_to_square,
    prediction_overlay,
    probability_heatmap,
    resize_map,
    resize_mask,
    segmentation_overlay,
    to_rgb,
)
from btseg.viz.segment import class_probability_figure
from btseg.viz.style import (
    CLASS_COLORS,
    MODEL_COLORS,
    MODEL_LABELS,
    TEMPLATE,
    hex_to_rgb,
    model_color,
    model_label,
)

__all__ = [
    # style
    "CLASS_COLORS", "MODEL_COLORS", "MODEL_LABELS", "TEMPLATE", "hex_to_rgb", "model_color",
    "model_label",
    # dataset
    "CENTER_NAMES", "GENDER_COLORS", "GENDER_NAMES", "SMALL_LESION_PERCENT", "SPLIT_COLORS",
    "SPLIT_PARTS", "VIEW_ORDER", "age_by_class_figure", "center_figure",
    "class_distribution_figure", "gender_by_class_figure", "lesion_area_figure",
    "site_frequency_figure", "split_composition_figure", "subtype_figure", "view_figure",
    # images
    "DISPLAY_MAX_SIDE", "HEATMAP_FLOOR", "SEGMENT_COLORS", "downscale", "draw_outlines",
    "gradcam_overlay", "heatmap_legend", "log_probability_scale", "outline_mask",
    "pad_to_square", "prediction_overlay", "probability_heatmap", "resize_map", "resize_mask",
    "segmentation_overlay", "to_rgb",
    # segment
    "class_probability_figure",
    # evaluation
    "CHOSEN_COLOR", "OPTIMISTIC_COLOR", "SIZE_BUCKET_COLORS", "THRESHOLD_METRICS",
    "VALIDATION_COLOR", "class_roc_figure", "confusion_matrix_figure", "dice_scatter_figure",
    "history_figure", "normal_fp_figure", "pr_figure",
    "reliability_figure", "roc_figure", "size_bucket_figure", "threshold_curves_figure",
]
