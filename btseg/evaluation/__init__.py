"""Test-split evaluation: `btseg evaluate` writes models/<run>/evaluation/, and everything else
reads it back without TensorFlow. Each artifact's writer sits beside its reader:

    files            folder and file names, schema version, shared reading and writing helpers
    segmentation     segmenters: scoring at original resolution; SegmentationEvaluation
    classification   the classifier: ClassifierEvaluation
    verdict          the image-level verdict of the whole pipeline (verdict.json)
    runner           evaluate_run, evaluate_all, the up-to-date rule, the test data
    report           metric tables and the text `btseg evaluate` prints
    compare          tables and judgements the dashboard pages draw (two models side by side,
                     operating points, whether an evaluation is current)

    evaluate_all("models", "data/synthetic")                     # writes, imports TensorFlow
    load_segmentation_evaluation("models/attention_unet")         # reads, no TensorFlow
"""

from btseg.evaluation.classification import ClassifierEvaluation, load_classifier_evaluation
from btseg.evaluation.compare import (
    COMPARISON_ROWS,
    CurvePoints,
    comparison_table,
    curve_points,
    gallery_ids,
    paired_per_image,
    pixel_accuracy_explanation,
    split_mismatch,
    staleness,
)
from btseg.evaluation.files import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CLASSIFIER_FILES,
    CURVES_FILE,
    EVALUATION_FOLDER,
    FLOAT16_KEYS,
    HISTOGRAM_FILE,
    MAX_CURVE_POINTS,
    OPTIMISTIC_NOTE,
    PER_IMAGE_FILE,
    PER_IMAGE_SWEEP_FILE,
    PREDICTIONS_CSV_FILE,
    PREDICTIONS_NPZ_FILE,
    RELIABILITY_FILE,
    ROC_FILE,
    SCHEMA_VERSION,
    SEGMENTATION_FILES,
    SUMMARY_FILE,
    SWEEP_FILE,
    VERDICT_CSV_FILE,
    VERDICT_FILE,
    Log,
    Progress,
    evaluate_command,
    evaluation_dir,
    is_evaluated,
    model_fingerprint,
    read_summary,
)
from btseg.evaluation.report import (
    METRIC_TABLE_COLUMNS,
    format_classifier_summary,
    format_evaluation_report,
    format_metric_table,
    format_verdict_summary,
    load_evaluation,
    metric_table,
)
from btseg.evaluation.runner import (
    EvaluationInputs,
    evaluate_all,
    evaluate_run,
    evaluation_inputs,
    out_of_date_reasons,
    stage_progress,
)
from btseg.evaluation.segmentation import (
    SegmentationEvaluation,
    confusion_from_histogram,
    curves_from_histogram,
    downsample_curve,
    float16_key_values,
    load_segmentation_evaluation,
    nearest_threshold_index,
)
from btseg.evaluation.verdict import read_verdict

# Alike in shape to btseg/metrics/__init__.py on purpose: both packages re-export their
# modules' public names in one list.
__all__ = [
    "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "CLASSIFIER_FILES", "COMPARISON_ROWS", "CURVES_FILE",
    "EVALUATION_FOLDER", "FLOAT16_KEYS", "HISTOGRAM_FILE", "MAX_CURVE_POINTS", "METRIC_TABLE_COLUMNS",
    "OPTIMISTIC_NOTE", "PER_IMAGE_FILE", "PER_IMAGE_SWEEP_FILE", "PREDICTIONS_CSV_FILE",
    "PREDICTIONS_NPZ_FILE", "RELIABILITY_FILE", "ROC_FILE", "SCHEMA_VERSION", "SEGMENTATION_FILES",
    "SUMMARY_FILE", "SWEEP_FILE", "VERDICT_CSV_FILE", "VERDICT_FILE",
    "ClassifierEvaluation", "CurvePoints", "EvaluationInputs", "Log", "Progress",
    "SegmentationEvaluation",
    "comparison_table", "confusion_from_histogram", "curve_points", "curves_from_histogram",
    "downsample_curve", "evaluate_all", "evaluate_command", "evaluate_run", "evaluation_dir",
    "evaluation_inputs", "float16_key_values", "format_classifier_summary",
    "format_evaluation_report", "format_metric_table", "format_verdict_summary", "gallery_ids",
    "is_evaluated", "load_classifier_evaluation", "load_evaluation",
    "load_segmentation_evaluation", "metric_table", "model_fingerprint",
    "nearest_threshold_index", "out_of_date_reasons", "paired_per_image",
    "pixel_accuracy_explanation", "read_summary", "read_verdict", "split_mismatch",
    "stage_progress", "staleness",
]
