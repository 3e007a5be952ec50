"""Queries of the tidy BTXRD table (see btseg.data.btxrd): a selection of images by class,
site, centre, gender and age, the sites in use, a class-interleaved sample, and the problems
list grouped by kind.

These select and summarise rows; they draw nothing (the Dataset page and btseg.viz.dataset
draw what they return).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd


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
