"""Dataset statistics: counts, ages, lesions and validation problems, as JSON-ready dicts.

`dataset_statistics` is what `btseg stats` prints; `lesion_measurements` gives the per-image
lesion numbers behind it, for charts that filter the table.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from btseg.config import CLASS_NAMES
from btseg.data.btxrd import (
    REGION_COLUMNS,
    SITE_COLUMNS,
    SUBTYPE_COLUMNS,
    VIEW_COLUMNS,
    Dataset,
    Problem,
    preview_ids,
)
from btseg.errors import AnnotationError

STATISTICS_KEYS: tuple[str, ...] = (
    "images", "by_label", "by_subtype", "by_gender", "by_center", "by_site", "by_region",
    "by_view", "age_by_label", "annotated_images", "lesions", "lesion_area_percent", "problems",
)
AREA_QUANTILES: dict[str, float] = {"p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
_DECIMALS = 3


def polygon_area(polygon: np.ndarray) -> float:
    """Area enclosed by an (N, 2) x, y polygon, in square pixels (shoelace formula)."""
    x = polygon[:, 0]
    y = polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def lesion_measurements(table: pd.DataFrame) -> pd.DataFrame:
    """Lesion count and area per annotated row, from the LabelMe files in `annotation_path`.

    Area is the sum of the lesions' polygon areas (box area for a box-only lesion; overlaps are
    not merged) as a percentage of imageHeight x imageWidth.

    Returns:
        DataFrame with one row per row of `table` that has an annotation file: image_id,
        label, lesions (int), area_percent (float, NaN if unreadable or no lesion), error (str,
        "" if the file was read), warnings (str, "; "-joined).
    """
    from btseg.data.labelme import read_annotation

    annotated = table[table["annotation_path"].astype(str) != ""]
    records = []
    for image_id, label, path in zip(
        annotated["image_id"], annotated["label"], annotated["annotation_path"], strict=True
    ):
        record = {"image_id": image_id, "label": label, "lesions": 0, "area_percent": np.nan,
                  "error": "", "warnings": ""}
        try:
            annotation = read_annotation(path)
        except AnnotationError as error:
            record["error"] = str(error)
            records.append(record)
            continue
        area = 0.0
        for lesion in annotation.lesions:
            if lesion.polygon is not None:
                area += polygon_area(lesion.polygon)
            elif lesion.box is not None:
                x0, y0, x1, y1 = lesion.box
                area += abs(x1 - x0) * abs(y1 - y0)
        image_area = annotation.height * annotation.width
        record["lesions"] = len(annotation.lesions)
        if annotation.lesions and image_area > 0:
            record["area_percent"] = 100.0 * area / image_area
        record["warnings"] = "; ".join(annotation.warnings)
        records.append(record)
    columns = ["image_id", "label", "lesions", "area_percent", "error", "warnings"]
    return pd.DataFrame.from_records(records, columns=columns)


def dataset_statistics(dataset: Dataset, split: Iterable[str] | None = None) -> dict:
    """Counts, ages, lesions and problems of a dataset, as a JSON-serialisable dict.

    Args:
        dataset: from btseg.data.btxrd.open_dataset.
        split: image ids to restrict the statistics to (e.g. Split.ids("test")); None for all
            rows. Problems are then limited to those concerning these ids (plus table-wide ones).

    Returns:
        dict with the keys of STATISTICS_KEYS, in that order. Counts are over table rows
        (whether or not the image file exists). Mapping keys are strings (centres "1", "2",
        lesion counts "1", "2" ...), so the dict equals its JSON round trip.
        by_subtype, by_region, by_view: column sums over all rows (multi-hot, as published);
        by_site: column sums over tumour rows; age_by_label: {label: {count, min, q1, median,
        q3, max, mean}} in years (None where no age); lesion_area_percent: quantiles of the
        per-image lesion area as % of the image, with fraction_under_1_percent.
    """
    table = dataset.table
    problems = list(dataset.problems)
    if split is not None:
        wanted = {str(image_id) for image_id in split}
        table = table[table["image_id"].isin(wanted)]
        problems = _problems_within(problems, wanted)

    tumour = table[table["label"] != "normal"]
    measurements = lesion_measurements(table)
    problems += _annotation_problems(measurements)
    readable = measurements[measurements["error"] == ""]
    lesion_counts = readable["lesions"].value_counts().sort_index()

    return {
        "images": len(table),
        "by_label": {name: int((table["label"] == name).sum()) for name in CLASS_NAMES},
        "by_subtype": _column_sums(table, SUBTYPE_COLUMNS),
        "by_gender": _value_counts(table["gender"].replace("", "unknown"), order=("M", "F")),
        # A table without the centre column says nothing about centres: no invented centre 0.
        "by_center": (
            {} if "center" in dataset.missing_columns else _value_counts(table["center"])
        ),
        "by_site": _column_sums(tumour, SITE_COLUMNS),
        "by_region": _column_sums(table, REGION_COLUMNS),
        "by_view": _column_sums(table, VIEW_COLUMNS),
        "age_by_label": {
            name: _summary(table.loc[table["label"] == name, "age"]) for name in CLASS_NAMES
        },
        "annotated_images": int((table["annotation_path"].astype(str) != "").sum()),
        "lesions": {
            "total": int(readable["lesions"].sum()),
            "per_image": {str(int(k)): int(v) for k, v in lesion_counts.items()},
        },
        "lesion_area_percent": _area_summary(readable["area_percent"]),
        "problems": [
            {
                "kind": problem.kind,
                "message": problem.message,
                "count": int(problem.count),
                "image_ids": [str(image_id) for image_id in problem.image_ids],
            }
            for problem in problems
        ],
    }


def _problems_within(problems: list[Problem], wanted: set[str]) -> list[Problem]:
    kept = []
    for problem in problems:
        if not problem.image_ids:
            kept.append(problem)
            continue
        ids = tuple(image_id for image_id in problem.image_ids if image_id in wanted)
        if ids:
            message = f"{problem.message} ({len(ids)} in this selection: {preview_ids(ids)})"
            kept.append(Problem(problem.kind, message, ids))
    return kept


def _annotation_problems(measurements: pd.DataFrame) -> list[Problem]:
    readable = measurements["error"] == ""
    groups = (  # kind, rows, what is said of them, the column whose first value is quoted
        ("unreadable_annotation", ~readable, "cannot be read", "error"),
        ("annotation_warning", measurements["warnings"] != "", "needed repairs", "warnings"),
        ("empty_annotation", readable & (measurements["lesions"] == 0), "with no lesion", None),
    )
    problems = []
    for kind, rows, said, quoted in groups:
        chosen = measurements[rows]
        if not len(chosen):
            continue
        ids = tuple(str(image_id) for image_id in chosen["image_id"])
        message = f"{_count(len(ids), 'annotation file')} {said}: {preview_ids(ids)}"
        if quoted is not None:
            message += f" (first: {chosen[quoted].iloc[0]})"
        problems.append(Problem(kind, message, ids))
    return problems


def _column_sums(table: pd.DataFrame, columns: Iterable[str]) -> dict[str, int]:
    return {name: int(table[name].sum()) for name in columns}


def _count(number: int, noun: str) -> str:
    """'1 annotation file', '3 annotation files'."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _value_counts(values: pd.Series, order: tuple = ()) -> dict[str, int]:
    counts = values.value_counts()
    keys = [key for key in order if key in counts.index]
    keys += sorted((key for key in counts.index if key not in order), key=str)
    return {str(key): int(counts[key]) for key in keys}


def _number(value: float) -> float | int | None:
    if value is None or not np.isfinite(value):
        return None
    value = round(float(value), _DECIMALS)
    return int(value) if value.is_integer() else value


def _summary(ages: pd.Series) -> dict:
    values = ages.dropna().to_numpy(dtype=float)
    if not len(values):
        empty = dict.fromkeys(("min", "q1", "median", "q3", "max", "mean"))
        return {"count": 0, **empty}
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    return {
        "count": len(values),
        "min": _number(values.min()),
        "q1": _number(q1),
        "median": _number(median),
        "q3": _number(q3),
        "max": _number(values.max()),
        "mean": _number(values.mean()),
    }


def _area_summary(area_percent: pd.Series) -> dict:
    values = area_percent.dropna().to_numpy(dtype=float)
    summary: dict = {"images": len(values)}
    if not len(values):
        summary.update(dict.fromkeys([*AREA_QUANTILES, "min", "max", "fraction_under_1_percent"]))
        return summary
    for key, quantile in AREA_QUANTILES.items():
        summary[key] = _number(np.quantile(values, quantile))
    summary["min"] = _number(values.min())
    summary["max"] = _number(values.max())
    summary["fraction_under_1_percent"] = _number(float(np.mean(values < 1.0)))
    return summary


def format_statistics(statistics: dict) -> str:
    """The output of dataset_statistics as text for a terminal."""
    total = statistics["images"]

    def share(count: int) -> str:
        return f"{count} ({100 * count / total:.1f}%)" if total else str(count)

    def counts(mapping: dict, sort: bool = False) -> str:
        items = [(key, value) for key, value in mapping.items() if value]
        if sort:
            items.sort(key=lambda item: -item[1])
        return ", ".join(f"{key} {value}" for key, value in items) or "none"

    lines = [
        f"Images: {total}",
        "Labels: " + ", ".join(f"{k} {share(v)}" for k, v in statistics["by_label"].items()),
        "Subtypes: " + counts(statistics["by_subtype"], sort=True),
        "Gender: " + counts(statistics["by_gender"]),
        "Centres: "
        + (counts(statistics["by_center"]) if statistics["by_center"] else "not in the table"),
        "Sites (tumour images): " + counts(statistics["by_site"], sort=True),
        "Regions: " + counts(statistics["by_region"], sort=True),
        "Views: " + counts(statistics["by_view"], sort=True),
        "Age (years) by label:",
    ]
    for label, summary in statistics["age_by_label"].items():
        if summary["count"]:
            lines.append(
                f"  {label:<10} n={summary['count']:<5} min {summary['min']}  q1 {summary['q1']}  "
                f"median {summary['median']}  q3 {summary['q3']}  max {summary['max']}  "
                f"mean {summary['mean']}"
            )
        else:
            lines.append(f"  {label:<10} n=0")
    lesions = statistics["lesions"]
    per_image = ", ".join(f"{k}: {v}" for k, v in lesions["per_image"].items()) or "none"
    lines.append(f"Annotated images: {statistics['annotated_images']}")
    lines.append(f"Lesions: {lesions['total']} (images by lesion count: {per_image})")
    area = statistics["lesion_area_percent"]
    if area["images"]:
        quantiles = "  ".join(f"{key} {area[key]}" for key in AREA_QUANTILES)
        lines.append(
            f"Lesion area, % of image ({area['images']} images): min {area['min']}  {quantiles}  "
            f"max {area['max']}; under 1%: {100 * area['fraction_under_1_percent']:.1f}% of images"
        )
    else:
        lines.append("Lesion area: no readable annotation")
    problems = statistics["problems"]
    lines.append(f"Problems: {len(problems) or 'none'}")
    lines.extend(f"  [{problem['kind']}] {problem['message']}" for problem in problems)
    return "\n".join(lines)
