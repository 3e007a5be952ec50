"""A per-case report a clinician can print or attach: one self-contained HTML file.

    case = ReportCase.from_prediction(prediction, image, "knee.png", runs, dataset)
    Path("knee.html").write_text(html_report(case), encoding="utf-8")
    study_report([frontal, lateral], StudySummary("malignant", "...", rule="..."))

Everything is inside the file: the images as base64 PNG data URIs, the CSS inline, no fonts,
scripts or links, so it opens offline and can be attached to a record as it is. A print
stylesheet lays one case out on one A4 page (a study: a summary page, then a page per view).

PDF: btseg writes none. WeasyPrint needs the system's Pango library; xhtml2pdf draws through
ReportLab and lays out neither grid nor flexbox. A browser's Print -> "Save as PDF" uses the
print stylesheet and gives the one-page A4 layout.

The images are drawn with btseg.viz (the Segment page's overlay and heatmap) on a copy of at
most REPORT_MAX_SIDE pixels; the numbers (areas, boxes, probabilities) are those of the original
resolution. No Streamlit, no TensorFlow.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from btseg import __version__, viz
from btseg.config import CLASS_NAMES
from btseg.decisions import LesionFinding, OperatingPoint, Verdict, min_lesion_area
from btseg.formatting import format_threshold

if TYPE_CHECKING:
    from btseg.data.images import DecodedImage
    from btseg.predict import Prediction

__all__ = [
    "REPORT_MAX_SIDE",
    "RESEARCH_NOTICE",
    "ReportCase",
    "StudySummary",
    "dataset_summary",
    "html_report",
    "run_summary",
    "study_report",
]

#: Longest side, in pixels, of the images embedded in a report.
REPORT_MAX_SIDE = 900
RESEARCH_NOTICE = "Research use only — not a medical device, not for diagnosis"

#: Badge colours of the verdicts (the class colours of the dashboard for the three classes).
VERDICT_COLORS: dict[str, str] = {
    **viz.CLASS_COLORS,
    "tumour": "#B35C1E",
    "inconclusive": "#5B6770",
}
_OVERLAY_ALPHA = 0.35


def _now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ------------------------------------------------------------------------------------------------
# What a report shows


def _lesion_from_dict(row: Mapping[str, Any], position: int, shape: tuple[int, int],
                      pixel_spacing_mm: tuple[float, float] | None) -> LesionFinding:
    missing = [key for key in ("area_px", "box") if key not in row]
    if missing:
        raise ValueError(f"lesion {position} has no {', '.join(missing)} (keys: {sorted(row)})")
    area = int(row["area_px"])
    area_mm2 = row.get("area_mm2")
    if area_mm2 is None and pixel_spacing_mm is not None:
        area_mm2 = area * float(np.prod(pixel_spacing_mm))
    box = tuple(int(value) for value in row["box"])
    if len(box) != 4:
        raise ValueError(f"lesion {position} box {row['box']!r} is not (x0, y0, x1, y1)")
    return LesionFinding(
        index=int(row.get("index", position)),
        area_px=area,
        area_percent=float(row.get("area_percent", 100.0 * area / (shape[0] * shape[1]))),
        area_mm2=None if area_mm2 is None else float(area_mm2),
        box=box,  # type: ignore[arg-type]
        mean_probability=float(row.get("mean_probability", math.nan)),
    )


def _check_map(name: str, values: np.ndarray | None, shape: tuple[int, int]) -> None:
    if values is None:
        return
    if values.shape != shape:
        raise ValueError(f"{name} of shape {values.shape} does not match the X-ray {shape}")
    if not np.issubdtype(values.dtype, np.number) or values.dtype == bool:
        raise ValueError(f"{name} must hold numbers in [0, 1], got dtype {values.dtype}")
    if values.size and (not np.isfinite(values).all() or values.min() < 0 or values.max() > 1):
        raise ValueError(f"{name} must hold finite values in [0, 1]")


@dataclass(frozen=True, eq=False)
class ReportCase:
    """One X-ray and what btseg said about it, as plain data.

    Attributes:
        file_name: the input's name as the user knows it (shown escaped).
        image: (H, W) uint8 X-ray, display-ready (btseg.data.images.DecodedImage.pixels).
        mask: (H, W) lesion mask, non-zero inside.
        probability_map: (H, W) float in [0, 1].
        verdict_label: normal / benign / malignant / tumour / inconclusive.
        verdict_reason: the rule that gave it, in words.
        lesions: LesionFinding or dicts with area_px and box (x0, y0, x1, y1, exclusive, original
            pixels) and optionally index (default: the position, from 1), area_percent, area_mm2,
            mean_probability; indices 1 to n; stored as LesionFindings in index order.
        class_probabilities: {class: probability} behind the verdict (None: no classifier).
        calibrated_probabilities, calibration_note: the same after calibration, and how.
        operating_point: {"threshold", "min_lesion_fraction", "criterion"} (an OperatingPoint is
            taken too); empty when unknown.
        runs: {role ("segmentation", "classifier"): {field: value}}, see run_summary.
        dataset: what the models were trained on, see dataset_summary.
        notes: what was done to the input (decoding, input gate).
        uncertainty_map: optional (H, W) float in [0, 1], shown as a third panel.
        pixel_spacing_mm: (row, column) mm per pixel when known.
        verdict_lesion_index: the lesion the classifier was given (marked in the table).
        models_run: False when the input gate refused the image: the maps are then not shown.
        created_utc, btseg_version: when and by what the report was made.

    Raises:
        ValueError: an array of the wrong shape, type or range; a lesion without area or box;
            lesion indices other than 1 to n.
    """

    file_name: str
    image: np.ndarray
    mask: np.ndarray
    probability_map: np.ndarray
    verdict_label: str
    verdict_reason: str
    lesions: Sequence[LesionFinding | Mapping[str, Any]] = ()
    class_probabilities: Mapping[str, float] | None = None
    calibrated_probabilities: Mapping[str, float] | None = None
    calibration_note: str = ""
    operating_point: Mapping[str, Any] | OperatingPoint = field(default_factory=dict)
    runs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    dataset: Mapping[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()
    uncertainty_map: np.ndarray | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    verdict_lesion_index: int | None = None
    models_run: bool = True
    created_utc: str = field(default_factory=_now_utc)
    btseg_version: str = __version__

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim != 2 or image.dtype != np.uint8:
            raise ValueError(
                f"the X-ray must be an (H, W) uint8 array, got shape {image.shape} {image.dtype}"
            )
        shape = (int(image.shape[0]), int(image.shape[1]))
        mask = np.asarray(self.mask)
        if mask.shape != shape:
            raise ValueError(f"mask of shape {mask.shape} does not match the X-ray {shape}")
        probability_map = np.asarray(self.probability_map)
        _check_map("probability_map", probability_map, shape)
        uncertainty = None if self.uncertainty_map is None else np.asarray(self.uncertainty_map)
        _check_map("uncertainty_map", uncertainty, shape)
        point = self.operating_point
        if isinstance(point, OperatingPoint):
            point = point.to_json()
        lesions = [
            lesion if isinstance(lesion, LesionFinding)
            else _lesion_from_dict(lesion, position, shape, self.pixel_spacing_mm)
            for position, lesion in enumerate(self.lesions, start=1)
        ]
        indices = sorted(lesion.index for lesion in lesions)
        if indices != list(range(1, len(lesions) + 1)):
            raise ValueError(
                f"lesion indices {indices} are not 1 to {len(lesions)} (the overlay numbers the "
                "lesions in index order)"
            )
        set_ = object.__setattr__  # frozen: normalised once, here
        set_(self, "image", image)
        set_(self, "mask", mask)
        set_(self, "probability_map", probability_map)
        set_(self, "uncertainty_map", uncertainty)
        set_(self, "lesions", tuple(sorted(lesions, key=lambda lesion: lesion.index)))
        set_(self, "operating_point", dict(point))
        set_(self, "notes", tuple(str(note) for note in self.notes))
        set_(self, "runs", {str(role): dict(info) for role, info in self.runs.items()})
        set_(self, "dataset", dict(self.dataset))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    @classmethod
    def from_prediction(
        cls,
        prediction: Prediction,
        image: DecodedImage | np.ndarray,
        file_name: str,
        runs: Mapping[str, Mapping[str, Any]] | None = None,
        dataset: Mapping[str, Any] | None = None,
        uncertainty_map: np.ndarray | None = None,
        calibrated_probabilities: Mapping[str, float] | None = None,
        calibration_note: str = "",
    ) -> ReportCase:
        """The report of a btseg.predict.Prediction of ``image``.

        ``runs`` is keyed by role ("segmentation", "classifier"); the Prediction's run names are
        filled in where the caller gives none.
        """
        pixels = np.asarray(getattr(image, "pixels", image))
        merged: dict[str, dict[str, Any]] = {"segmentation": {"run": prediction.segmentation_run}}
        if prediction.classifier_run:
            merged["classifier"] = {"run": prediction.classifier_run}
        for role, info in (runs or {}).items():
            merged[role] = {**merged.get(role, {}), **dict(info)}
        verdict = prediction.verdict
        probabilities = prediction.class_probabilities or verdict.probabilities or None
        return cls(
            file_name=file_name,
            image=pixels,
            mask=prediction.mask,
            probability_map=prediction.probability_map,
            verdict_label=verdict.label,
            verdict_reason=verdict.reason,
            lesions=list(prediction.lesions),
            class_probabilities=probabilities,
            calibrated_probabilities=calibrated_probabilities,
            calibration_note=calibration_note,
            operating_point=prediction.point,
            runs=merged,
            dataset=dict(dataset or {}),
            notes=prediction.notes,
            uncertainty_map=uncertainty_map,
            pixel_spacing_mm=prediction.pixel_spacing_mm,
            verdict_lesion_index=verdict.lesion_index,
            models_run=prediction.gate.accepted,
        )


@dataclass(frozen=True)
class StudySummary:
    """The verdict for a study of several views of one patient.

    Attributes:
        label: normal / benign / malignant / tumour / inconclusive.
        reason: why, in words (which view decided it).
        rule: how the views' verdicts were combined, in words.
        probabilities: optional {class: probability} for the study.
        title: what the study is called (an accession or a patient code; shown escaped).
        notes: anything else the reader should know.
    """

    label: str
    reason: str
    rule: str
    probabilities: Mapping[str, float] | None = None
    title: str = "Study"
    notes: tuple[str, ...] = ()

    @classmethod
    def from_verdict(cls, verdict: Verdict, rule: str, title: str = "Study") -> StudySummary:
        """From the Verdict that combines the views (e.g. btseg.studies.study_verdict with its
        STUDY_RULE)."""
        return cls(verdict.label, verdict.reason, rule, dict(verdict.probabilities) or None, title)


def run_summary(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a report says about a run, from its config.json (btseg.runs.read_run_info's
    "config"): run, model, created_utc, data and split fingerprints, btseg version."""
    data = config.get("data") or {}
    versions = config.get("versions") or {}
    summary = {
        "run": config.get("run"),
        "model": config.get("model"),
        "created_utc": config.get("created_utc"),
        "data_fingerprint": data.get("fingerprint"),
        "split_id": data.get("split_id"),
        "split_fingerprint": data.get("split_fingerprint"),
        "btseg_version": versions.get("btseg"),
    }
    return {key: value for key, value in summary.items() if value not in (None, "")}


def dataset_summary(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a report says about the training data, from a run's config.json: the data folder's
    name (not its path), fingerprint, synthetic or not, training and validation images."""
    data = config.get("data") or {}
    summary = {
        "name": Path(str(data["dir"])).name if data.get("dir") else None,
        "fingerprint": data.get("fingerprint"),
        "synthetic": data.get("synthetic"),
        "train_images": data.get("train_images"),
        "validation_images": data.get("validation_images"),
    }
    return {key: value for key, value in summary.items() if value is not None}


# ------------------------------------------------------------------------------------------------
# Images


def _png_data_uri(image: np.ndarray) -> str:
    """(H, W) gray or (H, W, 3) RGB uint8 -> "data:image/png;base64,..."."""
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise ValueError(f"the image {image.shape} cannot be encoded as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


@dataclass(frozen=True)
class _Panel:
    title: str
    alt: str
    uri: str
    caption: str
    legend: str = ""  # HTML


def _gradient_legend(colors: Sequence[str], labels: Sequence[str], name: str) -> str:
    stops = ", ".join(
        f"{color} {100 * position:.1f}%"
        for position, color in zip(np.linspace(0, 1, len(colors)), colors, strict=True)
    )
    ticks = "".join(f"<span>{_e(label)}</span>" for label in labels)
    return (
        f'<div class="legend" aria-label="{_e(name)} colour scale">'
        f'<div class="legend-bar" style="background: linear-gradient(to right, {stops})"></div>'
        f'<div class="legend-ticks">{ticks}</div></div>'
    )


def _panels(case: ReportCase) -> list[_Panel]:
    display, scale = viz.downscale(case.image, REPORT_MAX_SIDE)
    height, width = case.shape
    size = f"{width} × {height} px"
    if display.shape[:2] != case.image.shape:
        size += f", shown at {display.shape[1]} × {display.shape[0]}"
    panels = [_Panel("X-ray", "X-ray", _png_data_uri(display), size)]
    if not case.models_run:
        return panels
    boxes = [lesion.box for lesion in case.lesions]
    overlay = viz.segmentation_overlay(
        display, case.mask, alpha=_OVERLAY_ALPHA, boxes=boxes, box_scale=scale
    )
    found = len(case.lesions)
    panels.append(
        _Panel(
            "Lesions found",
            "Overlay: lesion mask over the X-ray",
            _png_data_uri(overlay),
            f"{found} lesion{'s' if found != 1 else ''} outlined and numbered as in the table"
            if found else "no lesion at the operating point",
        )
    )
    colours = [color for _, color in viz.heatmap_legend()]
    maps = [  # both in the same Turbo blend on a linear scale (as Grad-CAM is drawn)
        ("Lesion probability", "Heatmap: lesion probability over the X-ray", "probability",
         viz.probability_heatmap(display, case.probability_map), "linear scale from 0 to 1",
         ["0", "0.5", "1"]),
    ]
    if case.uncertainty_map is not None:
        maps.append(("Uncertainty", "Uncertainty map over the X-ray", "uncertainty",
                     viz.gradcam_overlay(display, case.uncertainty_map),
                     "linear scale from 0 to 1", ["0", "0.5", "1"]))
    for title, alt, quantity, picture, scale, ticks in maps:
        panels.append(
            _Panel(title, alt, _png_data_uri(picture), scale,
                   _gradient_legend(colours, ticks, quantity))
        )
    return panels


# ------------------------------------------------------------------------------------------------
# HTML pieces


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}"


def _percent(value: float) -> str:
    if value == 0:
        return "0 %"
    if value < 0.01:
        return "<0.01 %"
    return f"{value:.2f} %"


def _verdict_badge(label: str) -> str:
    color = VERDICT_COLORS.get(label, VERDICT_COLORS["inconclusive"])
    return f'<span class="verdict-label" style="background:{color}">{_e(label)}</span>'


def _dl(rows: Sequence[tuple[str, str]]) -> str:
    """A definition list; values are HTML already escaped."""
    return "<dl>" + "".join(f"<dt>{_e(key)}</dt><dd>{value}</dd>" for key, value in rows) + "</dl>"


_FIELD_NAMES = {
    "run": "run",
    "model": "model",
    "created_utc": "trained (UTC)",
    "data_fingerprint": "data fingerprint",
    "split_id": "split id",
    "split_fingerprint": "split fingerprint",
    "btseg_version": "btseg version",
    "name": "name",
    "fingerprint": "fingerprint",
    "synthetic": "synthetic",
    "train_images": "training images",
    "validation_images": "validation images",
}


def _field_rows(info: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in info.items():
        if key == "synthetic":
            text = _synthetic_text(value)
        elif isinstance(value, float):
            text = _number(value, 4)
        else:
            text = "—" if value in (None, "") else str(value)
        rows.append((_FIELD_NAMES.get(key, key.replace("_", " ")), _e(text)))
    return rows


def _synthetic_text(value: Any) -> str:
    if value is None:
        return "not recorded"
    return "yes: generated images, not patients" if bool(value) else "no: real radiographs"


def _probability_table(case: ReportCase) -> str:
    probabilities = dict(case.class_probabilities or {})
    if not probabilities:
        return '<p class="muted">No class probabilities (no classifier was run).</p>'
    calibrated = dict(case.calibrated_probabilities or {})
    names = [name for name in CLASS_NAMES if name in probabilities]
    names += [name for name in probabilities if name not in names]
    head = "<tr><th>class</th><th>probability</th>"
    head += "<th>calibrated</th></tr>" if calibrated else "</tr>"
    rows = []
    for name in names:
        value = float(probabilities[name])
        color = VERDICT_COLORS.get(name, VERDICT_COLORS["inconclusive"])
        bar = (
            f'<span class="bar"><span style="width:{100 * min(max(value, 0.0), 1.0):.1f}%;'
            f'background:{color}"></span></span>'
        )
        row = f"<tr><td>{_e(name)}</td><td class='num'>{bar} {100 * value:.1f} %</td>"
        if calibrated:
            other = calibrated.get(name)
            row += f"<td class='num'>{'—' if other is None else f'{100 * float(other):.1f} %'}</td>"
        rows.append(row + "</tr>")
    note = (
        f'<p class="small">Calibration: {_e(case.calibration_note)}</p>'
        if case.calibration_note else ""
    )
    return f'<table class="probabilities">{head}{"".join(rows)}</table>{note}'


def _operating_point_rows(case: ReportCase) -> list[tuple[str, str]]:
    point = case.operating_point
    if "threshold" not in point:
        return [("threshold", "not recorded")]
    rows = [("threshold", _e(format_threshold(point['threshold'])) + " (a pixel is lesion when "
             "its probability is at least this)")]
    fraction = point.get("min_lesion_fraction")
    if fraction is not None:
        pixels = min_lesion_area(case.shape, float(fraction))
        rows.append(("minimum lesion", _e(f"{100 * float(fraction):.3g} % of the image "
                                          f"({pixels} px here)")))
    criterion = str(point.get("criterion") or "set by hand")
    rows.append(("chosen by", _e(criterion)))
    return rows


def _lesion_table(case: ReportCase) -> str:
    if not case.models_run:
        return '<p class="muted">No lesion search: no model was run on this image.</p>'
    if not case.lesions:
        return '<p class="muted">No lesion at the operating point.</p>'
    with_mm2 = any(lesion.area_mm2 is not None for lesion in case.lesions)
    head = "<tr><th>#</th><th>area px</th><th>% of image</th>"
    head += "<th>mm²</th>" if with_mm2 else ""
    head += "<th>mean prob.</th><th>box x0, y0 – x1, y1</th></tr>"
    rows = []
    for lesion in case.lesions:
        chosen = lesion.index == case.verdict_lesion_index
        x0, y0, x1, y1 = lesion.box
        cells = [
            f"{lesion.index}" + (' <span class="tag">classified</span>' if chosen else ""),
            f"{lesion.area_px:,}",
            _percent(lesion.area_percent),
        ]
        if with_mm2:
            cells.append("—" if lesion.area_mm2 is None else f"{lesion.area_mm2:,.1f}")
        cells += [_number(lesion.mean_probability, 2), f"{x0}, {y0} – {x1}, {y1}"]
        row_class = ' class="chosen"' if chosen else ""
        rows.append(f"<tr{row_class}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    note = "" if with_mm2 else '<p class="small muted">No pixel spacing: areas in pixels only.</p>'
    return f'<table class="lesions">{head}{"".join(rows)}</table>{note}'


def _figure_row(panels: Sequence[_Panel]) -> str:
    items = []
    for panel in panels:
        items.append(
            f'<figure><figcaption class="panel-title">{_e(panel.title)}</figcaption>'
            f'<img src="{panel.uri}" alt="{_e(panel.alt)}">'
            f'<div class="small muted">{_e(panel.caption)}</div>{panel.legend}</figure>'
        )
    return (
        f'<div class="figures" style="grid-template-columns: repeat({len(panels)}, '
        f'minmax(0, 1fr))">{"".join(items)}</div>'
    )


def _synthetic_warning(dataset: Mapping[str, Any]) -> str:
    if not dataset.get("synthetic"):
        return ""
    return (
        '<p class="warning">The models were trained on synthetic (generated) images, not on '
        "patients' radiographs: this result says nothing about a real X-ray.</p>"
    )


def _case_html(case: ReportCase, heading: str) -> str:
    """One case: file name, verdict, notes, images, tables, provenance."""
    notes = "".join(f"<li>{_e(note)}</li>" for note in case.notes) or "<li>none</li>"
    refused = (
        "" if case.models_run else
        '<p class="warning">No model was run on this image: the input gate refused it '
        "(see the verdict).</p>"
    )
    runs = "".join(
        f'<div class="run"><h4>{_e(role)}</h4>{_dl(_field_rows(info))}</div>'
        for role, info in case.runs.items()
    ) or '<p class="muted">not recorded</p>'
    dataset = _dl(_field_rows(case.dataset)) if case.dataset else '<p class="muted">not recorded</p>'
    spacing = (
        "unknown" if case.pixel_spacing_mm is None
        else f"{case.pixel_spacing_mm[0]:.4g} × {case.pixel_spacing_mm[1]:.4g} mm"
    )
    return f"""
<{heading} class="file-name">{_e(case.file_name)}</{heading}>
<div class="verdict">
  <div class="verdict-head">Verdict {_verdict_badge(case.verdict_label)}</div>
  <div class="verdict-reason">{_e(case.verdict_reason)}</div>
</div>
{_synthetic_warning(case.dataset)}{refused}
<div class="input-notes"><span class="label">Input:</span> <ul>{notes}</ul></div>
{_figure_row(_panels(case))}
<div class="details">
  <div class="box"><h3>Class probabilities</h3>{_probability_table(case)}</div>
  <div class="box"><h3>Operating point</h3>{_dl(_operating_point_rows(case))}</div>
  <div class="box wide"><h3>Lesions</h3>{_lesion_table(case)}</div>
</div>
<div class="provenance">
  <div class="box"><h3>Models</h3>{runs}</div>
  <div class="box"><h3>Training data</h3>{dataset}</div>
  <div class="box"><h3>This report</h3>{_dl([
      ("created", _e(case.created_utc)),
      ("btseg", _e(case.btseg_version)),
      ("image size", _e(f"{case.shape[1]} × {case.shape[0]} px")),
      ("pixel spacing", _e(spacing)),
  ])}</div>
</div>"""


_CSS = """
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "Segoe UI", "Helvetica Neue", Arial, sans-serif; font-size: 14px;
       color: #1b2a33; margin: 0 auto; padding: 12px 20px; max-width: 1180px; line-height: 1.35; }
header.top { display: flex; justify-content: space-between; align-items: baseline;
             border-bottom: 2px solid #1b2a33; padding-bottom: 4px; margin-bottom: 8px; }
header.top .brand { font-weight: 700; font-size: 20px; letter-spacing: .02em; }
.notice { font-weight: 600; color: #8a1c1c; }
h2, h3, h4 { margin: 0; }
.file-name { font-size: 18px; margin: 4px 0 6px; word-break: break-all; }
h3 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #44525b;
     margin-bottom: 4px; }
h4 { font-size: 12px; color: #44525b; }
.verdict { display: flex; gap: 12px; align-items: center; border: 1px solid #c9d1d6;
           border-radius: 6px; padding: 6px 10px; margin-bottom: 6px; }
.verdict-head { font-weight: 600; white-space: nowrap; }
.verdict-label { display: inline-block; color: #fff; font-weight: 700; font-size: 18px;
                 padding: 2px 12px; border-radius: 4px; margin-left: 6px;
                 text-transform: uppercase; letter-spacing: .04em; }
.warning { background: #fdecea; border-left: 4px solid #c0392b; padding: 4px 8px; margin: 4px 0; }
.input-notes { font-size: 12px; color: #44525b; margin-bottom: 6px; display: flex; gap: 6px; }
.input-notes ul { margin: 0; padding-left: 16px; }
.label { font-weight: 600; }
.figures { display: grid; gap: 10px; margin-bottom: 8px; break-inside: avoid;
           page-break-inside: avoid; }
figure { margin: 0; min-width: 0; }
.panel-title { font-weight: 600; font-size: 13px; margin-bottom: 2px; }
figure img { display: block; width: 100%; height: auto; max-height: 52vh; object-fit: contain;
             background: #000; }
.legend { margin-top: 2px; }
.legend-bar { height: 8px; border-radius: 2px; }
.legend-ticks { display: flex; justify-content: space-between; font-size: 10px; color: #44525b; }
.details, .provenance { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 14px;
                        margin-bottom: 8px; }
.provenance { grid-template-columns: 1.4fr 1fr 1fr; font-size: 12px; color: #44525b; }
.box { border-top: 1px solid #c9d1d6; padding-top: 4px; min-width: 0; }
.box.wide { grid-column: 1 / -1; }
.run + .run { margin-top: 4px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 1px 10px; margin: 0; }
dt { color: #44525b; }
dd { margin: 0; word-break: break-word; }
table { border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 1px 8px 1px 0; border-bottom: 1px solid #e3e8eb; }
td.num { white-space: nowrap; }
.bar { display: inline-block; width: 80px; height: 9px; background: #e3e8eb;
       vertical-align: middle; margin-right: 4px; }
.bar span { display: block; height: 100%; }
tr.chosen td { background: #fff4d6; }
.tag { font-size: 10px; background: #1b2a33; color: #fff; border-radius: 3px; padding: 0 4px; }
.small { font-size: 11px; margin: 2px 0; }
.muted { color: #6b7880; }
footer { font-size: 11px; color: #6b7880; border-top: 1px solid #c9d1d6; padding-top: 4px; }
.study-verdict { border: 2px solid #1b2a33; border-radius: 6px; padding: 8px 12px;
                 margin-bottom: 10px; }
.study-verdict .verdict-label { font-size: 22px; }
.views td, .views th { padding-right: 14px; }
.views .verdict-label { font-size: 12px; padding: 0 8px; margin-left: 0; }
section.case { margin-top: 18px; border-top: 3px solid #1b2a33; padding-top: 6px; }
@page { size: A4; margin: 10mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 9pt; }
  header.top .brand { font-size: 13pt; }
  .file-name { font-size: 12pt; margin: 2px 0 4px; }
  .verdict-label { font-size: 12pt; }
  .study-verdict .verdict-label { font-size: 15pt; }
  h3 { font-size: 8pt; }
  table { font-size: 8.5pt; }
  .provenance { font-size: 7.5pt; }
  .input-notes { font-size: 8pt; }
  .small { font-size: 7.5pt; }
  figure img { max-height: 95mm; }
  .figures, .verdict, .details > .box, table { break-inside: avoid; page-break-inside: avoid; }
  section.case { break-before: page; page-break-before: always; border-top: none;
                 margin-top: 0; padding-top: 0; }
}
"""


def _document(title: str, body: str, created_utc: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header class="top"><span class="brand">btseg</span>
<span class="notice">{_e(RESEARCH_NOTICE)}</span></header>
{body}
<footer>Created {_e(created_utc)} · btseg {_e(__version__)} · {_e(RESEARCH_NOTICE)}.
Areas, boxes and probabilities are at the X-ray's original resolution.</footer>
</body>
</html>
"""


def html_report(case: ReportCase) -> str:
    """The report of one X-ray: a self-contained HTML document that prints on one A4 page."""
    return _document(f"btseg report: {case.file_name}", _case_html(case, "h2"), case.created_utc)


def study_report(cases: Sequence[ReportCase], study: StudySummary) -> str:
    """The report of a study of several views: the study verdict and its rule, a table of the
    views, then one section per view (a page each when printed).

    Raises:
        ValueError: no case.
    """
    if not cases:
        raise ValueError("a study report needs at least one case")
    probabilities = ""
    if study.probabilities:
        probabilities = "<p>" + " · ".join(
            f"{_e(name)} {100 * float(value):.1f} %" for name, value in study.probabilities.items()
        ) + "</p>"
    notes = "".join(f'<p class="small">{_e(note)}</p>' for note in study.notes)
    rows = "".join(
        f"<tr><td>{number}</td><td>{_e(case.file_name)}</td>"
        f"<td>{_verdict_badge(case.verdict_label)}</td><td>{len(case.lesions)}</td>"
        f"<td>{_e(case.verdict_reason)}</td></tr>"
        for number, case in enumerate(cases, start=1)
    )
    datasets = {repr(sorted(case.dataset.items())): case.dataset for case in cases}
    warning = "".join(_synthetic_warning(dataset) for dataset in datasets.values())
    summary = f"""
<h2 class="file-name">{_e(study.title)}: {len(cases)} view{'s' if len(cases) != 1 else ''}</h2>
<div class="study-verdict">
  <div class="verdict-head">Study verdict {_verdict_badge(study.label)}</div>
  <div class="verdict-reason">{_e(study.reason)}</div>
  <p class="small"><span class="label">Rule:</span> {_e(study.rule)}</p>
  {probabilities}{notes}
</div>
{warning}
<table class="views"><tr><th>#</th><th>file</th><th>verdict</th><th>lesions</th>
<th>reason</th></tr>{rows}</table>"""
    sections = "".join(
        f'<section class="case" id="view-{number}"><div class="small muted">View {number} of '
        f"{len(cases)}</div>{_case_html(case, 'h2')}</section>"
        for number, case in enumerate(cases, start=1)
    )
    return _document(f"btseg study report: {study.title}", summary + sections, _now_utc())
