"""Leakage-aware train/validation/test split of a BTXRD-format table.

BTXRD has no patient id. Consecutive image ids usually show one patient in several views, and a
few images are byte-for-byte duplicates. Surrogate patients are built from both signals and the
split keeps every surrogate patient inside one part, stratified by the group's label.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from btseg.config import CLASS_NAMES
from btseg.errors import ConfigError, DataError
from btseg.outputs import atomic_write_json

PARTS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
SCHEMA_VERSION = 1

#: Columns whose change between consecutive ids starts a new surrogate patient.
GROUP_COLUMNS: tuple[str, ...] = ("image_id", "center", "age", "gender", "label", "subtype")

_SEVERITY = {name: rank for rank, name in enumerate(CLASS_NAMES)}  # normal < benign < malignant
_HASH_BLOCK = 1 << 20


# ---------------------------------------------------------------------------------------------
# Surrogate patients


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, first: int, second: int) -> None:
        first, second = self.find(first), self.find(second)
        if first != second:
            self.parent[max(first, second)] = min(first, second)


def image_number(image_id: Any) -> float:
    """The numeric part of an image id: 'IMG000123.jpeg' -> 123.0; NaN when it has no digits."""
    digits = re.findall(r"\d+", Path(str(image_id)).stem)
    return float(digits[-1]) if digits else math.nan


def _require_columns(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise DataError(
            f"the table lacks the column(s) {', '.join(missing)} needed to {what}",
            where="tidy table",
            fix="Build the table with btseg.data.btxrd.load_table",
        )


def _normal_value(value: Any) -> str:
    """A comparable text form: NaN/None equal each other, floats compare by value, text trimmed."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, int | np.integer):
        return repr(float(value))
    return str(value).strip().lower()


def _site_set(sites: Any, site: Any, region: Any) -> frozenset[str]:
    """Sites of a row: the `sites` tuple, else the primary `site`, else the region (normal images)."""
    if isinstance(sites, list | tuple | set | frozenset) and len(sites) > 0:
        return frozenset(_normal_value(name) for name in sites)
    if _normal_value(site):
        return frozenset([_normal_value(site)])
    return frozenset(["region:" + _normal_value(region)]) if _normal_value(region) else frozenset()


def _column(table: pd.DataFrame, name: str, default: Any = "") -> list[Any]:
    return table[name].tolist() if name in table.columns else [default] * len(table)


def _has_image(table: pd.DataFrame) -> np.ndarray:
    """(N,) bool: rows whose image file exists (the `has_image` column, else a non-empty path)."""
    if "has_image" in table.columns:
        return table["has_image"].fillna(False).astype(bool).to_numpy()
    if "image_path" in table.columns:
        return np.array([bool(path) and os.path.isfile(path) for path in table["image_path"]])
    return np.zeros(len(table), dtype=bool)


def _file_sha1(path: str) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as stream:
        while block := stream.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _duplicate_positions(table: pd.DataFrame) -> list[list[int]]:
    """Groups of row positions whose image files hold identical bytes (only same-size files hashed)."""
    if "image_path" not in table.columns:
        return []
    usable = _has_image(table)
    by_size: dict[int, list[int]] = defaultdict(list)
    for position, (path, ok) in enumerate(zip(table["image_path"], usable, strict=True)):
        if not ok or not path:
            continue
        try:
            by_size[os.stat(path).st_size].append(position)
        except OSError:
            continue
    hash_of_path: dict[str, str] = {}
    by_hash: dict[str, list[int]] = defaultdict(list)
    for positions in by_size.values():
        if len(positions) < 2:
            continue
        for position in positions:
            path = os.path.realpath(str(table["image_path"].iat[position]))
            if path not in hash_of_path:
                try:
                    hash_of_path[path] = _file_sha1(path)
                except OSError:
                    continue
            by_hash[hash_of_path[path]].append(position)
    return [sorted(group) for group in by_hash.values() if len(group) > 1]


def _id_key(image_id: str) -> tuple[bool, float, str]:
    """Sort key: ids by their number, ids without digits last."""
    number = image_number(image_id)
    return (math.isnan(number), 0.0 if math.isnan(number) else number, image_id)


def duplicate_images(table: pd.DataFrame) -> list[list[str]]:
    """Groups of image ids whose files are byte-for-byte identical (SHA-1 of the file).

    Only rows with an existing image are considered; files are hashed only when another file has
    the same size. Each group is sorted by id number; groups are sorted by their first id.
    """
    _require_columns(table, ["image_id"], "find duplicate images")
    ids = table["image_id"].astype(str).tolist()
    groups = [sorted({ids[p] for p in group}, key=_id_key) for group in _duplicate_positions(table)]
    return sorted(
        (group for group in groups if len(group) > 1), key=lambda group: _id_key(group[0])
    )


def surrogate_patient_ids(table: pd.DataFrame) -> pd.Series:
    """Surrogate patient id per row: runs of consecutive ids merged with exact duplicates.

    Rows are ordered by the numeric part of image_id. A new run starts when the id number is not
    the previous one plus one, or when centre, age, gender, label or subtype changes, or when the
    anatomical sites of the two rows share nothing (sites of tumour images; normal images have no
    site, so their region is compared). Rows with the same image_id or identical image bytes are
    then put in one group (union-find).

    Returns:
        (N,) int Series aligned to table.index, named "surrogate_patient_id"; ids count from 0
        in order of each group's first image.
    """
    _require_columns(table, GROUP_COLUMNS, "group images into surrogate patients")
    count = len(table)
    if count == 0:
        return pd.Series([], index=table.index, dtype=np.int64, name="surrogate_patient_id")
    numbers = np.array([image_number(image_id) for image_id in table["image_id"]])
    ids = table["image_id"].astype(str).tolist()
    order = sorted(range(count), key=lambda p: (_id_key(ids[p]), p))
    columns = [table[name].tolist() for name in ("center", "age", "gender", "label", "subtype")]
    keys = [tuple(_normal_value(values[p]) for values in columns) for p in range(count)]
    sites = [
        _site_set(*values)
        for values in zip(
            _column(table, "sites", ()),
            _column(table, "site"),
            _column(table, "region"),
            strict=True,
        )
    ]

    groups = _UnionFind(count)
    for previous, current in zip(order, order[1:], strict=False):
        consecutive = (
            not math.isnan(numbers[previous])
            and not math.isnan(numbers[current])
            and numbers[current] == numbers[previous] + 1
        )
        same_patient = keys[current] == keys[previous] and (
            sites[current] & sites[previous] or sites[current] == sites[previous]
        )
        if consecutive and same_patient:
            groups.union(previous, current)

    first_with_id: dict[str, int] = {}
    for position in order:
        if ids[position] in first_with_id:
            groups.union(first_with_id[ids[position]], position)
        else:
            first_with_id[ids[position]] = position
    for duplicate in _duplicate_positions(table):
        for position in duplicate[1:]:
            groups.union(duplicate[0], position)

    numbering: dict[int, int] = {}
    values = np.empty(count, dtype=np.int64)
    for position in order:
        root = groups.find(position)
        values[position] = numbering.setdefault(root, len(numbering))
    return pd.Series(values, index=table.index, name="surrogate_patient_id")


# ---------------------------------------------------------------------------------------------
# The split


@dataclass(frozen=True)
class Split:
    """A group split. `assignment` maps image_id -> "train" | "val" | "test" (table order).

    `counts` (part -> label -> images) is informational and not part of equality.
    """

    assignment: dict[str, str]
    seed: int
    fractions: tuple[float, float, float]
    fingerprint: str
    split_id: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict, compare=False)

    def ids(self, part: str) -> list[str]:
        """Image ids assigned to `part` ("train", "val" or "test"), in table order."""
        if part not in PARTS:
            raise ConfigError(f"unknown split part {part!r}", fix=f"Use one of {', '.join(PARTS)}")
        return [image_id for image_id, assigned in self.assignment.items() if assigned == part]


def _check_fractions(fractions: Iterable[float]) -> tuple[float, float, float]:
    values = tuple(float(value) for value in fractions)
    if (
        len(values) != 3
        or any(not math.isfinite(value) or value < 0 for value in values)
        or abs(sum(values) - 1.0) > 1e-6
        or values[0] == 0
    ):
        raise ConfigError(
            f"split fractions {values} are not three non-negative numbers summing to 1",
            where="fractions",
            fix="Give (train, val, test) such as (0.7, 0.15, 0.15), with train > 0",
        )
    return values  # type: ignore[return-value]


def _split_hash(assignment: dict[str, str]) -> str:
    text = json.dumps(sorted(assignment.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _label_of(value: Any) -> str:
    label = str(value).strip().lower()
    if label not in _SEVERITY:
        raise DataError(
            f"unknown label {value!r}",
            where="label column",
            fix=f"Labels must be one of {', '.join(CLASS_NAMES)}",
        )
    return label


def _part_of(key: str, seed: int, fractions: tuple[float, ...]) -> str:
    """The part of one surrogate patient: a uniform number drawn from a hash of the seed and
    the patient's key, cut at the cumulative fractions. It depends on that patient alone, so
    adding or removing other images never moves it."""
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2.0**64
    edges = np.cumsum(fractions)
    for part, edge in zip(PARTS, edges, strict=True):
        if draw < edge and edge > 0:
            return part
    return next(
        part for part, fraction in zip(PARTS[::-1], fractions[::-1], strict=True) if fraction > 0
    )


def _counts(assignment: dict[str, str], labels: dict[str, str]) -> dict[str, dict[str, int]]:
    counts = {part: dict.fromkeys(CLASS_NAMES, 0) for part in PARTS}
    for image_id, part in assignment.items():
        counts[part][labels[image_id]] += 1
    return counts


def _most_severe(groups: list[int], labels: list[str]) -> dict[int, str]:
    worst: dict[int, str] = {}
    for group, label in zip(groups, labels, strict=True):
        if group not in worst or _SEVERITY[label] > _SEVERITY[worst[group]]:
            worst[group] = label
    return worst


def group_labels(table: pd.DataFrame) -> pd.Series:
    """Per row, the most severe label in its surrogate patient (malignant > benign > normal).

    This is the label a group is stratified by in make_split. Aligned to table.index.
    """
    _require_columns(table, GROUP_COLUMNS, "label surrogate patients")
    groups = surrogate_patient_ids(table).tolist()
    worst = _most_severe(groups, [_label_of(label) for label in table["label"]])
    return pd.Series([worst[group] for group in groups], index=table.index, name="group_label")


def make_split(
    table: pd.DataFrame, seed: int = 0, fractions: Iterable[float] = DEFAULT_FRACTIONS
) -> Split:
    """Seeded group split of the rows with an image.

    Each surrogate patient goes to train, val or test by a hash of the seed and its first image
    id, cut at ``fractions``: its part depends on that patient alone, so adding or removing an
    image moves no other image (and a model's test images stay test images as data is added).
    Every label's patients are split by the same fractions, so each label's share per part
    approaches them as patients grow in number (stratified in expectation; the counts are in
    ``Split.counts``). No surrogate patient spans two parts.
    """
    from btseg.data.cache import data_fingerprint

    fractions = _check_fractions(fractions)
    _require_columns(table, GROUP_COLUMNS, "split the dataset")
    group_ids = surrogate_patient_ids(table).to_numpy()
    usable = _has_image(table)
    if not usable.any():
        raise DataError(
            "no row of the table has an image file, so there is nothing to split",
            where="tidy table",
            fix="Check that the images/ folder sits beside dataset.xlsx",
        )
    image_ids = table["image_id"].astype(str).to_numpy()[usable].tolist()
    label_list = [_label_of(label) for label in table["label"].to_numpy()[usable]]
    labels = dict(zip(image_ids, label_list, strict=True))
    group_of = dict(zip(image_ids, group_ids[usable].tolist(), strict=True))
    group_size: dict[int, int] = defaultdict(int)
    for group in group_of.values():
        group_size[group] += 1

    # A patient's key is its first image id (stable while that image stays).
    group_key: dict[int, str] = {}
    for image_id, group in group_of.items():
        group_key[group] = min(group_key.get(group, image_id), image_id)
    group_part = {group: _part_of(group_key[group], seed, fractions) for group in group_size}

    assignment = {image_id: group_part[group] for image_id, group in group_of.items()}
    return Split(
        assignment=assignment,
        seed=int(seed),
        fractions=fractions,
        fingerprint=data_fingerprint(table),
        split_id=_split_hash(assignment),
        counts=_counts(assignment, labels),
    )


# ---------------------------------------------------------------------------------------------
# Saving and loading


def _split_to_json(split: Split) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "seed": split.seed,
        "fractions": list(split.fractions),
        "fingerprint": split.fingerprint,
        "split_id": split.split_id,
        "counts": split.counts,
        "assignment": split.assignment,
    }


def save_split(split: Split, path: str | Path) -> None:
    """Write the split as JSON (schema_version 1) atomically: a temporary file, then a rename."""
    atomic_write_json(path, _split_to_json(split), indent=1)


def load_split(path: str | Path) -> Split:
    """Read a split written by save_split. Raises DataError for a missing or malformed file."""
    path = Path(path)
    fix = "Delete the file; btseg recreates the split from the data"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            "the split file does not exist",
            where=str(path),
            fix="Create it with make_split and save_split",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(
            f"the split file cannot be read ({error})", where=str(path), fix=fix
        ) from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        version = data.get("schema_version") if isinstance(data, dict) else None
        raise DataError(
            f"unsupported split schema_version {version!r}, expected {SCHEMA_VERSION}",
            where=str(path),
            fix=fix,
        )
    try:
        assignment = {str(key): str(value) for key, value in data["assignment"].items()}
        bad = sorted({part for part in assignment.values() if part not in PARTS})
        if bad:
            raise ValueError(f"unknown part(s) {bad}")
        fractions = _check_fractions(data["fractions"])
        counts = {
            str(part): {str(label): int(n) for label, n in by_label.items()}
            for part, by_label in (data.get("counts") or {}).items()
        }
        split = Split(
            assignment=assignment,
            seed=int(data["seed"]),
            fractions=fractions,
            fingerprint=str(data["fingerprint"]),
            split_id=str(data["split_id"]),
            counts=counts,
        )
    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as error:
        raise DataError(
            f"the split file is malformed ({error})", where=str(path), fix=fix
        ) from None
    if _split_hash(split.assignment) != split.split_id:
        raise DataError(
            "the split file's assignment does not match its split_id", where=str(path), fix=fix
        )
    return split


def split_for(
    dataset_or_table: Any,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    fractions: Iterable[float] = DEFAULT_FRACTIONS,
) -> Split:
    """The split of a dataset: loaded from cache_dir/splits/<fingerprint>-seed<seed>.json when it
    matches the data, else made and saved there.

    Args:
        dataset_or_table: a btxrd.Dataset or its tidy table.
        cache_dir: defaults to btseg.config.cache_dir().
    """
    from btseg.config import cache_dir as default_cache_dir
    from btseg.data.cache import data_fingerprint

    table = getattr(dataset_or_table, "table", dataset_or_table)
    fractions = _check_fractions(fractions)
    fingerprint = data_fingerprint(table)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = f"{fingerprint}-seed{int(seed)}"
    if fractions != DEFAULT_FRACTIONS:
        name += "-" + "-".join(f"{value:g}" for value in fractions)
    path = folder / "splits" / f"{name}.json"
    if path.is_file():
        try:
            split = load_split(path)
        except DataError:
            split = None  # a damaged file is rebuilt below
        if (
            split is not None
            and split.fingerprint == fingerprint
            and split.seed == int(seed)
            and split.fractions == fractions
        ):
            return split
    split = make_split(table, seed=seed, fractions=fractions)
    save_split(split, path)
    return split


# ---------------------------------------------------------------------------------------------
# Summary


def split_summary(split: Split, table: pd.DataFrame) -> dict[str, Any]:
    """Group and class counts of a split over `table`.

    Returns:
        {"split_id", "seed", "fractions", "fingerprint", "images", "groups",
         "parts": {part: {"images", "groups", "by_label": {label: images}}},
         "left_out": [{"image_id", "reason"}] (rows of the table the split does not hold),
         "assignment": {image_id: part}}
    """
    _require_columns(table, GROUP_COLUMNS, "summarise the split")
    group_ids = surrogate_patient_ids(table).tolist()
    parts: dict[str, dict[str, Any]] = {
        part: {"images": 0, "groups": 0, "by_label": dict.fromkeys(CLASS_NAMES, 0)}
        for part in PARTS
    }
    groups_in_part: dict[str, set[int]] = {part: set() for part in PARTS}
    seen: set[str] = set()
    for group, image_id, label in zip(
        group_ids, table["image_id"].astype(str), table["label"], strict=True
    ):
        part = split.assignment.get(image_id)
        if part is None or image_id in seen:
            continue
        seen.add(image_id)
        parts[part]["images"] += 1
        parts[part]["by_label"][_label_of(label)] += 1
        groups_in_part[part].add(group)
    for part in PARTS:
        parts[part]["groups"] = len(groups_in_part[part])
    return {
        "split_id": split.split_id,
        "seed": split.seed,
        "fractions": list(split.fractions),
        "fingerprint": split.fingerprint,
        "images": sum(part["images"] for part in parts.values()),
        "groups": len(set().union(*groups_in_part.values())),
        "parts": parts,
        "left_out": _left_out(split, table),
        "assignment": dict(split.assignment),
    }


def _left_out(split: Split, table: pd.DataFrame) -> list[dict[str, str]]:
    """Rows of the table that are in no part, with the reason."""
    has_image = _has_image(table)
    rows = []
    for image_id, usable in zip(table["image_id"].astype(str), has_image, strict=True):
        if image_id in split.assignment:
            continue
        reason = (
            "no image file for this row (it is missing from images/)"
            if not usable
            else "not in the saved split (the data changed since it was made)"
        )
        rows.append({"image_id": image_id, "reason": reason})
    return rows


def format_split_summary(summary: dict[str, Any]) -> str:
    """Plain-text table of split_summary() for the command line."""
    lines = [
        f"split {summary['split_id']} (seed {summary['seed']}, fractions "
        + "/".join(f"{value:g}" for value in summary["fractions"])
        + f"): {summary['images']} images in {summary['groups']} surrogate patients",
        f"{'part':<6} {'groups':>7} {'images':>7} "
        + " ".join(f"{label:>10}" for label in CLASS_NAMES),
    ]
    for part, values in summary["parts"].items():
        lines.append(
            f"{part:<6} {values['groups']:>7} {values['images']:>7} "
            + " ".join(f"{values['by_label'][label]:>10}" for label in CLASS_NAMES)
        )
    left_out = summary.get("left_out") or []
    if left_out:
        noun = "row" if len(left_out) == 1 else "rows"
        lines.append(f"{len(left_out)} {noun} of the table left out:")
        lines.extend(f"  {row['image_id']}: {row['reason']}" for row in left_out[:20])
        if len(left_out) > 20:
            lines.append(f"  ... and {len(left_out) - 20} more (btseg split --json lists all)")
    return "\n".join(lines)
