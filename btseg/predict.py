"""The one prediction pipeline: an X-ray -> a Prediction (probability map, mask, lesions, class
probabilities, verdict, notes on the input).

    predictor = Predictor.from_models_dir("models")                 # attention U-Net + classifier
    prediction = predictor.predict(read_image("x.png"))            # at the operating point
    prediction.verdict.label                                       # "normal" | "benign" | ...
    again = predictor.at_point(prediction, prediction.point.at_threshold(0.3))   # no U-Net call
    run_predict(["scans/"], "out/", "models/")                     # `btseg predict`

`btseg predict`, the Segment page and `btseg evaluate` all go through ``Predictor``: the maps come
from ``Segmenter.probability_maps`` (one image per model call), the mask and lesions from
``btseg.decisions.decide`` at the run's operating point, the class probabilities from the
classifier on the region it is served (the most probable lesion for a region classifier, the
whole image otherwise), and the verdict from ``btseg.decisions.verdict_for``. So what `btseg
evaluate` scores is what `btseg predict` writes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from btseg.data.images import DecodedImage
from btseg.decisions import (
    LesionFinding,
    OperatingPoint,
    Verdict,
    check_threshold,
    decide,
    most_probable_lesion,
    verdict_for,
)
from btseg.errors import BtsegError, ConfigError, ImageError, RunError
from btseg.gate import AppearanceGate, GateResult, check_input, load_appearance_gate
from btseg.infer import Classifier, Segmenter, check_batch_size
from btseg.outputs import (
    atomic_write_bytes,
    csv_text,
    gray_png,
    labelme_json,
    mask_png,
    probability_png16,
)
from btseg.studies import STUDY_RULE, study_key, study_verdict

if TYPE_CHECKING:
    import pandas as pd

#: File extensions taken from a folder (compared case-insensitively).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm")

SUMMARY_FILE = "summary.csv"
STUDIES_FILE = "studies.csv"
STUDY_COLUMNS = ("study", "images", "files", "verdict", "reason", "rule", "report_file")
_TEXT_COLUMNS = (
    "error", "predicted_class", "verdict", "verdict_reason", "classifier_run", "mask_file",
    "annotation_file", "image_file", "report_file", "seg_file", "uncertainty_file", "notes",
    "study",
)  # fmt: skip
SUMMARY_COLUMNS = (
    "file", "status", "error", "study", "height", "width", "lesions", "lesion_area_percent",
    "prob_normal", "prob_benign", "prob_malignant", "predicted_class", "verdict",
    "verdict_reason", "threshold", "min_lesion_fraction", "segmentation_run", "classifier_run",
    "lesion_area_mm2", "mask_file", "annotation_file", "image_file", "report_file", "seg_file",
    "uncertainty_file", "notes",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Prediction:
    """Everything btseg says about one image, at original resolution.

    Attributes:
        probability_map: (H, W) float32 in [0, 1].
        point: the operating point the mask was cut at.
        mask: (H, W) uint8 {0, 1} (btseg.decisions.decide).
        lesions: one LesionFinding per region of the mask.
        class_probabilities: {class: probability} of the classified region, None when nothing
            was classified (no classifier, or a region classifier and no lesion).
        classified_lesion: the lesion the region classifier was given (None otherwise).
        verdict: normal / benign / malignant / tumour, or inconclusive when the input gate
            refused the image (no model was run; the map and mask are then empty).
        notes: what was done to the input (decoding and the gate's notes).
        segmentation_run, classifier_run: the run names ("" without a classifier).
        pixel_spacing_mm: (row, column) mm per pixel when known (DICOM).
    """

    probability_map: np.ndarray
    point: OperatingPoint
    mask: np.ndarray
    lesions: list[LesionFinding]
    class_probabilities: dict[str, float] | None
    classified_lesion: LesionFinding | None
    verdict: Verdict
    notes: tuple[str, ...]
    segmentation_run: str
    classifier_run: str
    pixel_spacing_mm: tuple[float, float] | None = None
    gate: GateResult = GateResult(True)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.mask.shape[0]), int(self.mask.shape[1]))

    @property
    def lesion_area_px(self) -> int:
        return int(self.mask.sum(dtype=np.int64))

    @property
    def lesion_area_percent(self) -> float:
        """Share of the image covered by the mask, in percent."""
        return 100.0 * self.lesion_area_px / self.mask.size

    @property
    def lesion_area_mm2(self) -> float | None:
        if self.pixel_spacing_mm is None:
            return None
        return self.lesion_area_px * float(np.prod(self.pixel_spacing_mm))



def _check_segmentation_model(model: str) -> None:
    from btseg.runs import SEGMENTATION_RUNS, run_name_for

    if run_name_for(model) not in SEGMENTATION_RUNS:
        raise ConfigError(
            f"unknown segmentation model {model!r}",
            where="--model",
            fix="choose attention or basic",
        )


def _pixels(image: DecodedImage | np.ndarray) -> np.ndarray:
    return image.pixels if isinstance(image, DecodedImage) else np.asarray(image)


def compose_prediction(
    image: DecodedImage | np.ndarray,
    probability_map: np.ndarray,
    point: OperatingPoint,
    decided: tuple[np.ndarray, list[LesionFinding]],
    classified: tuple[dict[str, float] | None, LesionFinding | None],
    *,
    segmentation_run: str,
    classifier_run: str,
    gate: GateResult | None = None,
) -> Prediction:
    """The Prediction of an image from its decided mask and lesions (btseg.decisions.decide)
    and what the classifier said of it (Predictor.classify): the verdict (verdict_for), the
    notes on the input and its pixel spacing are added here, for Predictor.finish and for a
    page that caches the model calls itself."""
    mask, lesions = decided
    probabilities, lesion = classified
    gate = GateResult(True) if gate is None else gate
    decoded = isinstance(image, DecodedImage)
    # Alike in shape to btseg/data/images.py (DecodedImage) on purpose: a dataclass filled by
    # keyword, field by field.
    return Prediction(
        probability_map=probability_map,
        point=point,
        mask=mask,
        lesions=lesions,
        class_probabilities=probabilities,
        classified_lesion=lesion,
        verdict=verdict_for(lesions, probabilities, lesion),
        notes=(tuple(image.notes) if decoded else ()) + gate.notes,
        segmentation_run=segmentation_run,
        classifier_run=classifier_run,
        pixel_spacing_mm=image.pixel_spacing_mm if decoded else None,
        gate=gate,
    )


class Predictor:
    """A segmenter and (optionally) a classifier, used together as btseg serves them."""

    def __init__(
        self,
        segmenter: Segmenter,
        classifier: Classifier | None = None,
        allow_any_modality: bool = False,
        appearance: AppearanceGate | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.classifier = classifier
        self.allow_any_modality = allow_any_modality
        self.appearance = appearance

    @classmethod
    def from_models_dir(
        cls, models_dir: str | Path, model: str = "attention"
    ) -> tuple[Predictor, list[str]]:
        """(Predictor, warnings): the segmenter ``model`` and, when usable, the classifier and
        the fitted input gate (models_dir/input_gate.json).

        Raises:
            RunError: the segmentation run is missing or broken (the message gives the fix).
            ConfigError: ``model`` is not a segmenter.
        """
        from btseg.runs import run_name_for

        _check_segmentation_model(model)
        models_dir = Path(models_dir)
        segmenter = Segmenter.from_run(models_dir / run_name_for(model))
        notes: list[str] = []
        try:
            classifier: Classifier | None = Classifier.from_run(
                models_dir / run_name_for("classifier")
            )
        except RunError as error:
            classifier = None
            notes.append(f"no class probabilities: {error}")
        try:
            appearance = load_appearance_gate(models_dir)
        except RunError as error:
            appearance = None
            notes.append(f"no appearance check: {error}")
        if appearance is None:
            notes.append(
                "no appearance check: the input gate is not fitted (btseg fit-gate fits it); "
                "only the modality, size and content are checked"
            )
        return cls(segmenter, classifier, appearance=appearance), notes

    @property
    def operating_point(self) -> OperatingPoint:
        return self.segmenter.operating_point

    def point(self, threshold: float | None = None) -> OperatingPoint:
        """The run's operating point, or the same minimum lesion size at ``threshold``."""
        if threshold is None:
            return self.operating_point
        return self.operating_point.at_threshold(check_threshold(threshold))

    def classify(
        self, image: DecodedImage | np.ndarray, lesions: Sequence[LesionFinding]
    ) -> tuple[dict[str, float] | None, LesionFinding | None]:
        """(class probabilities, the lesion classified) as served: a region classifier gets the
        most probable lesion (nothing without one), an image classifier the whole image."""
        if self.classifier is None:
            return None, None
        if not self.classifier.classifies_regions:
            return self.classifier.predict(image), None
        lesion = most_probable_lesion(lesions)
        if lesion is None:
            return None, None
        return self.classifier.predict(image, box=lesion.box), lesion

    def gate(self, image: DecodedImage | np.ndarray) -> GateResult:
        """The input gate's answer for an image (btseg.gate); arrays are taken as radiographs
        and only checked for size and content."""
        if not isinstance(image, DecodedImage):
            image = DecodedImage(np.asarray(image), "array", "array", 8, None, "L")
        return check_input(image, self.allow_any_modality, self.appearance)

    def refused(self, image: DecodedImage | np.ndarray, gate: GateResult) -> Prediction:
        """The Prediction of an image the gate refused: verdict inconclusive, nothing found."""
        shape = _pixels(image).shape[:2]
        return Prediction(
            probability_map=np.zeros(shape, dtype=np.float32),
            point=self.operating_point,
            mask=np.zeros(shape, dtype=np.uint8),
            lesions=[],
            class_probabilities=None,
            classified_lesion=None,
            verdict=Verdict("inconclusive", f"the image {gate.reason}; {gate.fix}"),
            notes=tuple(image.notes) if isinstance(image, DecodedImage) else (),
            segmentation_run=self.segmenter.name,
            classifier_run=self.classifier.name if self.classifier is not None else "",
            pixel_spacing_mm=image.pixel_spacing_mm if isinstance(image, DecodedImage) else None,
            gate=gate,
        )

    def finish(
        self,
        image: DecodedImage | np.ndarray,
        probability_map: np.ndarray,
        point: OperatingPoint | None = None,
        gate: GateResult | None = None,
    ) -> Prediction:
        """The Prediction of an image whose probability map is known (no U-Net call)."""
        point = self.operating_point if point is None else point
        gate = self.gate(image) if gate is None else gate
        spacing = image.pixel_spacing_mm if isinstance(image, DecodedImage) else None
        mask, lesions = decide(probability_map, point, pixel_spacing_mm=spacing)
        probabilities, lesion = self.classify(image, lesions)
        return compose_prediction(
            image,
            probability_map,
            point,
            (mask, lesions),
            (probabilities, lesion),
            segmentation_run=self.segmenter.name,
            classifier_run=self.classifier.name if self.classifier is not None else "",
            gate=gate,
        )

    def at_point(
        self, prediction: Prediction, point: OperatingPoint, image: DecodedImage | np.ndarray
    ) -> Prediction:
        """The same image at another operating point (a slider move): no U-Net call."""
        if not prediction.gate.accepted:
            return prediction
        return self.finish(image, prediction.probability_map, point, prediction.gate)

    def predict(
        self, image: DecodedImage | np.ndarray, point: OperatingPoint | None = None
    ) -> Prediction:
        """Gate, segment, decide, classify: one image. An image the gate refuses gets the
        verdict "inconclusive" and no model is run."""
        gate = self.gate(image)
        if not gate.accepted:
            return self.refused(image, gate)
        probability_map = self.segmenter.probability_maps([_pixels(image)])[0]
        return self.finish(image, probability_map, point, gate)

    def predict_batch(
        self, images: Sequence[DecodedImage | np.ndarray], point: OperatingPoint | None = None
    ) -> list[Prediction]:
        """predict for several images (one U-Net call per image)."""
        return [self.predict(image, point) for image in images]


# ------------------------------------------------------------------------------------------------
# Folders of images: `btseg predict`


@dataclass(frozen=True)
class InputFile:
    """A file to predict; ``skipped`` holds the reason when it is not processed."""

    path: Path
    skipped: str = ""


def expand_paths(paths: Iterable[str | Path]) -> list[InputFile]:
    """Files to predict, in order: a file as given; a folder's top-level files sorted by name
    (not its subfolders), those without an image extension listed as skipped. Hidden files
    (".DS_Store", "._x.jpg") in folders are left out."""
    entries: list[InputFile] = []
    for item in paths:
        path = Path(item)
        if not path.is_dir():
            entries.append(InputFile(path))
            continue
        for child in sorted(path.iterdir(), key=lambda child: child.name):
            if child.name.startswith("."):
                continue
            if child.is_dir():
                entries.append(
                    InputFile(child, "is a subfolder; folders are not searched recursively")
                )
            elif child.suffix.lower() not in IMAGE_SUFFIXES:
                entries.append(
                    InputFile(
                        child, f"not an image file name (accepted: {', '.join(IMAGE_SUFFIXES)})"
                    )
                )
            else:
                entries.append(InputFile(child))
    return entries


def _output_stems(entries: list[InputFile]) -> list[str]:
    """Unique output stems: the file's stem, then stem-ext, then stem-ext-2 ... on collisions."""
    used: set[str] = set()
    stems = []
    for entry in entries:
        stem = entry.path.stem or entry.path.name or "image"
        candidates = [stem, f"{stem}-{entry.path.suffix.lstrip('.').lower() or 'file'}"]
        chosen = next((name for name in candidates if name.lower() not in used), None)
        number = 2
        while chosen is None:
            candidate = f"{candidates[1]}-{number}"
            chosen = candidate if candidate.lower() not in used else None
            number += 1
        used.add(chosen.lower())
        stems.append(chosen)
    return stems


def _decode(entry: InputFile) -> DecodedImage:
    from btseg.data.images import read_image

    try:
        return read_image(entry.path)
    except ImageError:
        raise
    except Exception:  # one odd file must not end a batch of thousands
        raise ImageError(
            "could not be decoded: its content is not a JPEG, PNG or DICOM image btseg can read",
            where=entry.path.name,
            fix="Open it in an image viewer; if it shows, export it again as PNG or JPEG",
        ) from None


def _decode_chunk(
    entries: list[InputFile], chunk: list[int]
) -> tuple[dict[int, DecodedImage], dict[int, tuple[str, str]]]:
    """({position: image}, {position: (status, reason)}) for the files of one chunk."""
    decoded: dict[int, DecodedImage] = {}
    problems: dict[int, tuple[str, str]] = {}
    for position in chunk:
        entry = entries[position]
        if entry.skipped:
            problems[position] = ("skipped", entry.skipped)
            continue
        try:
            decoded[position] = _decode(entry)
        except ImageError as error:
            problems[position] = ("error", str(error))
    return decoded, problems


def write_prediction(
    prediction: Prediction,
    out_dir: Path,
    stem: str,
    image_name: str,
    image: DecodedImage | None = None,
) -> dict[str, Any]:
    """Write <stem>_mask.png and <stem>.json (LabelMe) for one prediction; its summary values.

    LabelMe cannot open DICOM, so for a DICOM ``image`` the 8-bit picture the models saw is
    written as <stem>.png beside them and the LabelMe file points at it."""
    height, width = prediction.shape
    mask_file, annotation_file = f"{stem}_mask.png", f"{stem}.json"
    image_file = ""
    if image is not None and image.format == "DICOM":
        image_file = f"{stem}.png"
        atomic_write_bytes(out_dir / image_file, gray_png(image.pixels))
        image_name = image_file
    atomic_write_bytes(out_dir / mask_file, mask_png(prediction.mask))
    atomic_write_bytes(
        out_dir / annotation_file,
        labelme_json(prediction.mask, image_name, prediction.verdict.lesion_label),
    )
    values: dict[str, Any] = {
        "height": height,
        "width": width,
        "lesions": len(prediction.lesions),
        "lesion_area_percent": prediction.lesion_area_percent,
        "lesion_area_mm2": prediction.lesion_area_mm2,
        "verdict": prediction.verdict.label,
        "verdict_reason": prediction.verdict.reason,
        "mask_file": mask_file,
        "annotation_file": annotation_file,
        "image_file": image_file,
        "notes": "; ".join(prediction.notes),
    }
    if prediction.class_probabilities is not None:
        for name, value in prediction.class_probabilities.items():
            values[f"prob_{name}"] = float(value)
        probabilities = prediction.class_probabilities
        values["predicted_class"] = max(probabilities, key=probabilities.__getitem__)
    return values


def predict_paths(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    predictor: Predictor,
    threshold: float | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    study_groups: Mapping[str, str] | None = None,
    report: bool = False,
    dicom_seg: bool = False,
    uncertainty: bool = False,
) -> pd.DataFrame:
    """Predict images and folders of images; write the results to ``out_dir``.

    For each readable image: ``<stem>_mask.png`` (0/255 at the original resolution) and
    ``<stem>.json`` (LabelMe 5.x, one rectangle + polygon per lesion, labelled with the verdict
    when it is benign or malignant, else "tumor"). Then ``summary.csv`` with one row per file,
    in input order (SUMMARY_COLUMNS; status "ok", "error" (unreadable), "refused" (the input
    gate: not a radiograph, too small, blank; verdict "inconclusive") or "skipped", with the
    reason in "error"). Unreadable or refused files never stop the batch. Files are decoded ``batch_size`` at a time
    in a thread while the models run.

    Args:
        paths: image files (any extension; the content decides) and folders (their top-level
            .jpg/.jpeg/.png/.dcm files, sorted by name; see expand_paths).
        out_dir: output folder (created).
        threshold: mask threshold; default the operating point's (its minimum lesion size is
            kept either way).
        progress: called as progress(done, total) after each file.
        study_groups: {file name: study} to group files into studies by hand; others are
            grouped by btseg.studies.study_key (DICOM study, else file-name prefix).
        report: also write ``<stem>_report.html`` per image and ``study_<n>_report.html`` per
            study (btseg.report: self-contained HTML, prints on one page per image).
        dicom_seg: also write ``<stem>_seg.dcm``, a DICOM Segmentation of the mask that
            references its source, for each DICOM input (btseg.dicom_seg).
        uncertainty: also write ``<stem>_uncertainty.png`` (16-bit, value = spread x 65535),
            the spread of the four mirrored predictions (Segmenter.uncertainty_map; four more
            model calls per image), and show it in the reports.

    Returns:
        the summary as a DataFrame (also written to out_dir/summary.csv); ``attrs["studies"]``
        holds the rows of out_dir/studies.csv: one verdict per study from all its views.
    """
    point = predictor.point(
        None if threshold is None else check_threshold(threshold, "--threshold")
    )
    check_batch_size(batch_size)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"the output folder cannot be created ({error.strerror or error})",
            where=str(out_dir),
            fix="choose a folder you may write to with --out",
        ) from None
    entries = expand_paths(paths)
    stems = _output_stems(entries)
    total = len(entries)
    chunks = [
        list(range(first, min(total, first + batch_size))) for first in range(0, total, batch_size)
    ]
    rows: list[dict[str, Any]] = []
    verdicts: dict[int, Verdict] = {}
    cases: dict[int, Any] = {}  # report cases, kept until their study's report is written
    context = _report_context(predictor) if report else {}
    # The next chunk is decoded in a thread while the models run (decoders and TensorFlow
    # release the GIL), so decoding overlaps the model calls.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_decode_chunk, entries, chunks[0]) if chunks else None
        for number, chunk in enumerate(chunks):
            decoded, problems = pending.result()
            if number + 1 < len(chunks):
                pending = pool.submit(_decode_chunk, entries, chunks[number + 1])
            for position in chunk:
                entry = entries[position]
                row: dict[str, Any] = dict.fromkeys(_TEXT_COLUMNS, "")
                row.update(file=str(entry.path), status="ok")
                if position in problems:
                    row["status"], row["error"] = problems[position]
                else:
                    image = decoded.pop(position)
                    prediction = predictor.predict(image, point)
                    row["study"] = study_key(entry.path.name, image, study_groups)
                    verdicts[position] = prediction.verdict
                    spread = None
                    if prediction.gate.accepted:
                        row.update(
                            write_prediction(
                                prediction, out_dir, stems[position], entry.path.name, image
                            )
                        )
                        if uncertainty:
                            spread = predictor.segmenter.uncertainty_map(image)
                            row["uncertainty_file"] = f"{stems[position]}_uncertainty.png"
                            atomic_write_bytes(
                                out_dir / row["uncertainty_file"], probability_png16(spread)
                            )
                        if dicom_seg and image.format == "DICOM":
                            try:
                                row["seg_file"] = _write_dicom_seg(
                                    prediction, entry.path, out_dir, stems[position]
                                )
                            except BtsegError as error:  # the mask and JSON are still written
                                row["notes"] = "; ".join(
                                    filter(None, [row["notes"], f"no DICOM SEG: {error}"])
                                )
                    else:
                        row.update(
                            status="refused",
                            error=f"{prediction.gate.reason}. Fix: {prediction.gate.fix}",
                            height=prediction.shape[0],
                            width=prediction.shape[1],
                            verdict=prediction.verdict.label,
                            verdict_reason=prediction.verdict.reason,
                            notes="; ".join(prediction.notes),
                        )
                    if report:
                        cases[position] = _write_report(
                            prediction, image, entry.path.name, context, out_dir,
                            stems[position], row, spread,
                        )  # fmt: skip
                row["threshold"] = point.threshold
                row["min_lesion_fraction"] = point.min_lesion_fraction
                row["segmentation_run"] = predictor.segmenter.name
                row["classifier_run"] = predictor.classifier.name if predictor.classifier else ""
                rows.append(row)
                if progress is not None:
                    progress(len(rows), total)
    summary = _summary_frame(rows)
    atomic_write_bytes(out_dir / SUMMARY_FILE, summary.to_csv(index=False).encode("utf-8"))
    studies = study_rows(
        [(rows[position]["study"], Path(rows[position]["file"]).name, verdict)
         for position, verdict in sorted(verdicts.items())]
    )  # fmt: skip
    if report:
        _write_study_reports(studies, rows, cases, verdicts, out_dir)
    atomic_write_bytes(out_dir / STUDIES_FILE, csv_text(studies, STUDY_COLUMNS).encode("utf-8"))
    summary.attrs["studies"] = studies
    return summary


def study_rows(views: Sequence[tuple[str, str, Verdict]]) -> list[dict[str, Any]]:
    """One row per study (btseg.studies.study_verdict over its views), in first-seen order,
    from (study, file name, verdict) per judged image."""
    members: dict[str, list[tuple[str, Verdict]]] = {}
    for study, file_name, verdict in views:
        members.setdefault(study, []).append((file_name, verdict))
    rows = []
    for study, entries in members.items():
        verdict = study_verdict([verdict for _, verdict in entries])
        rows.append(
            {
                "study": study,
                "images": len(entries),
                "files": "; ".join(name for name, _ in entries),
                "verdict": verdict.label,
                "reason": verdict.reason,
                "rule": STUDY_RULE,
                "report_file": "",
            }
        )
    return rows


def _report_context(predictor: Predictor) -> dict[str, Any]:
    """The runs and training data a report names, from the loaded models' config.json."""
    from btseg.report import dataset_summary, run_summary

    runs = {"segmentation": run_summary(predictor.segmenter.config)}
    if predictor.classifier is not None:
        runs["classifier"] = run_summary(predictor.classifier.config)
    return {"runs": runs, "dataset": dataset_summary(predictor.segmenter.config)}


def _write_report(
    prediction: Prediction,
    image: DecodedImage,
    file_name: str,
    context: Mapping[str, Any],
    out_dir: Path,
    stem: str,
    row: dict[str, Any],
    uncertainty: np.ndarray | None = None,
):
    """Write <stem>_report.html; return its ReportCase (for the study report)."""
    from btseg.report import ReportCase, html_report

    case = ReportCase.from_prediction(
        prediction, image, file_name, runs=context["runs"], dataset=context["dataset"],
        uncertainty_map=uncertainty,
    )  # fmt: skip
    row["report_file"] = f"{stem}_report.html"
    atomic_write_bytes(out_dir / row["report_file"], html_report(case).encode("utf-8"))
    return case


def _write_study_reports(
    studies: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    cases: Mapping[int, Any],
    verdicts: Mapping[int, Verdict],
    out_dir: Path,
) -> None:
    """study_<n>_report.html for each study: its verdict and rule, then a page per view."""
    from btseg.report import StudySummary, study_report

    for number, study in enumerate(studies, start=1):
        positions = [p for p in sorted(cases) if rows[p].get("study") == study["study"]]
        if not positions:
            continue
        verdict = study_verdict([verdicts[p] for p in positions])
        summary = StudySummary.from_verdict(verdict, STUDY_RULE, title=f"Study {study['study']}")
        study["report_file"] = f"study_{number}_report.html"
        html = study_report([cases[p] for p in positions], summary)
        atomic_write_bytes(out_dir / study["report_file"], html.encode("utf-8"))


def _write_dicom_seg(prediction: Prediction, source: Path, out_dir: Path, stem: str) -> str:
    """Write <stem>_seg.dcm (DICOM SEG of the mask, referencing ``source``); its file name."""
    import btseg
    from btseg.dicom_seg import dicom_seg_bytes

    name = f"{stem}_seg.dcm"
    payload = dicom_seg_bytes(
        source,
        prediction.mask,
        algorithm_name=prediction.segmentation_run,
        algorithm_version=btseg.__version__,
    )
    atomic_write_bytes(out_dir / name, payload)
    return name


def _summary_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    for column in ("height", "width", "lesions"):
        frame[column] = frame[column].astype("Int64")
    for column in (
        "lesion_area_percent",
        "lesion_area_mm2",
        "prob_normal",
        "prob_benign",
        "prob_malignant",
        "threshold",
        "min_lesion_fraction",
    ):
        frame[column] = frame[column].astype("float64")
    for column in _TEXT_COLUMNS:
        frame[column] = frame[column].astype(str)
    return frame


def run_predict(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    models_dir: str | Path,
    model: str = "attention",
    threshold: float | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    allow_any_modality: bool = False,
    report: bool = False,
    dicom_seg: bool = False,
    uncertainty: bool = False,
) -> pd.DataFrame:
    """`btseg predict`: load the segmenter ("attention" or "basic") and, if trained, the
    classifier from ``models_dir``, then predict_paths.

    Without a usable classifier a warning is issued (and kept in the result's
    ``attrs["warnings"]``), the probability columns stay empty and a found lesion's verdict is
    "tumour".

    Raises:
        RunError: the segmentation run is missing or broken (the message gives the train command).
        ConfigError: unknown model, bad threshold or batch size, no file to predict (empty
            folders), unwritable output folder.
    """
    _check_segmentation_model(model)
    if threshold is not None:
        check_threshold(threshold, "--threshold")
    check_batch_size(batch_size)
    if not expand_paths(paths):
        raise ConfigError(
            "there is no file to predict",
            where=", ".join(str(path) for path in paths) or "PATH",
            fix="pass image files, or folders holding .jpg, .jpeg, .png or .dcm files",
        )
    predictor, notes = Predictor.from_models_dir(models_dir, model)
    predictor.allow_any_modality = allow_any_modality
    for note in notes:
        warnings.warn(note, stacklevel=2)
    summary = predict_paths(
        paths, out_dir, predictor, threshold=threshold, batch_size=batch_size,
        progress=progress, report=report, dicom_seg=dicom_seg, uncertainty=uncertainty,
    )  # fmt: skip
    summary.attrs["warnings"] = notes
    return summary


__all__ = [
    "IMAGE_SUFFIXES",
    "SUMMARY_COLUMNS",
    "SUMMARY_FILE",
    "InputFile",
    "Prediction",
    "Predictor",
    "expand_paths",
    "predict_paths",
    "run_predict",
    "write_prediction",
]
