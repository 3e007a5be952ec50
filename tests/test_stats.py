"""btseg.stats: dataset statistics on real-format fixtures and the published BTXRD counts."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_btxrd import write_btxrd_folder

from btseg.data.btxrd import (
    COLUMNS,
    REGION_COLUMNS,
    SITE_COLUMNS,
    SUBTYPE_COLUMNS,
    VIEW_COLUMNS,
    open_dataset,
)
from btseg.stats import (
    STATISTICS_KEYS,
    dataset_statistics,
    format_statistics,
    lesion_measurements,
    polygon_area,
)
from btseg.synthetic import plan

EXPECTED_KEYS = [
    "images", "by_label", "by_subtype", "by_gender", "by_center", "by_site", "by_region",
    "by_view", "age_by_label", "annotated_images", "lesions", "lesion_area_percent", "problems",
]  # fmt: skip


@pytest.fixture
def fixture_statistics(tmp_path):
    return dataset_statistics(open_dataset(write_btxrd_folder(tmp_path / "btxrd")))


def test_keys_are_exactly_the_documented_ones_and_json_round_trips(fixture_statistics):
    assert list(fixture_statistics) == EXPECTED_KEYS == list(STATISTICS_KEYS)
    assert json.loads(json.dumps(fixture_statistics)) == fixture_statistics


def test_counts_on_the_fixture(fixture_statistics):
    statistics = fixture_statistics
    assert statistics["images"] == 12
    assert statistics["by_label"] == {"normal": 5, "benign": 5, "malignant": 2}
    assert statistics["by_subtype"] == {
        "osteochondroma": 2, "multiple osteochondromas": 0, "simple bone cyst": 1,
        "giant cell tumor": 1, "osteofibroma": 0, "synovial osteochondroma": 0, "other bt": 1,
        "osteosarcoma": 1, "other mt": 1,
    }  # fmt: skip
    assert statistics["by_gender"] == {"M": 7, "F": 5}
    assert statistics["by_center"] == {"1": 8, "2": 3, "3": 1}
    expected_sites = dict.fromkeys(SITE_COLUMNS, 0)
    expected_sites.update({"femur": 2, "knee-joint": 2, "tibia": 1, "humerus": 1,
                           "shoulder-joint": 1, "hip bone": 1, "ulna": 1, "radius": 1,
                           "foot": 1, "ankle-joint": 1})  # fmt: skip
    assert statistics["by_site"] == expected_sites
    assert list(statistics["by_site"]) == list(SITE_COLUMNS)
    assert statistics["by_region"] == {"upper limb": 4, "lower limb": 6, "pelvis": 2}
    assert statistics["by_view"] == {"frontal": 8, "lateral": 3, "oblique": 1}
    assert statistics["problems"] == []


def test_age_summary_by_label(fixture_statistics):
    ages = fixture_statistics["age_by_label"]
    # normal 8, 25, 40, 50, 60; benign 12, 12, 22, 30, 35; malignant 16, 70
    assert ages["normal"] == {"count": 5, "min": 8, "q1": 25, "median": 40, "q3": 50,
                              "max": 60, "mean": 36.6}  # fmt: skip
    assert ages["benign"] == {"count": 5, "min": 12, "q1": 12, "median": 22, "q3": 30,
                              "max": 35, "mean": 22.2}  # fmt: skip
    assert ages["malignant"] == {"count": 2, "min": 16, "q1": 29.5, "median": 43, "q3": 56.5,
                                 "max": 70, "mean": 43}  # fmt: skip


def test_lesions_and_lesion_area(fixture_statistics):
    statistics = fixture_statistics
    assert statistics["annotated_images"] == 7
    assert statistics["lesions"] == {"total": 8, "per_image": {"1": 6, "2": 1}}
    # Per-image areas on 50x20 images: 0.5, 0.8 (box only), 1 (two lesions), 2, 3, 5, 8 %.
    assert statistics["lesion_area_percent"] == {
        "images": 7, "p5": 0.59, "p25": 0.9, "p50": 2, "p75": 4, "p95": 7.1, "min": 0.5,
        "max": 8, "fraction_under_1_percent": round(2 / 7, 3),
    }  # fmt: skip


def test_lesion_measurements_per_image(tmp_path):
    dataset = open_dataset(write_btxrd_folder(tmp_path / "btxrd"))
    measured = lesion_measurements(dataset.table).set_index("image_id")
    assert measured.loc["IMG000003.jpeg", "lesions"] == 2
    assert measured.loc["IMG000003.jpeg", "area_percent"] == pytest.approx(1.0)
    assert measured.loc["IMG000010.jpeg", "area_percent"] == pytest.approx(0.8)
    assert (measured["error"] == "").all()


def test_polygon_area_is_the_shoelace_area():
    square = np.array([[0, 0], [4, 0], [4, 3], [0, 3]], dtype=float)
    assert polygon_area(square) == 12.0
    assert polygon_area(square[::-1]) == 12.0
    assert polygon_area(np.array([[0, 0], [10, 0], [0, 4]], dtype=float)) == 20.0


def test_problems_and_unreadable_annotations_are_listed(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    (root / "images" / "IMG000009.jpeg").unlink()
    (root / "Annotations" / "IMG000008.json").write_text("{not json")
    statistics = dataset_statistics(open_dataset(root))
    kinds = {problem["kind"]: problem for problem in statistics["problems"]}
    assert set(kinds) == {"missing_image", "unreadable_annotation"}
    assert kinds["missing_image"]["count"] == 1
    assert kinds["missing_image"]["image_ids"] == ["IMG000009.jpeg"]
    assert kinds["unreadable_annotation"]["image_ids"] == ["IMG000008.jpeg"]
    assert "IMG000008.json" in kinds["unreadable_annotation"]["message"]
    # The unreadable file still counts as annotated; its lesions do not.
    assert statistics["annotated_images"] == 7
    assert statistics["lesions"]["total"] == 7
    assert statistics["lesion_area_percent"]["images"] == 6
    assert statistics["images"] == 12
    json.dumps(statistics)


def test_statistics_of_a_subset_of_images(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    (root / "images" / "IMG000009.jpeg").unlink()
    dataset = open_dataset(root)
    subset = ["IMG000001.jpeg", "IMG000004.jpeg", "IMG000008.jpeg"]
    statistics = dataset_statistics(dataset, split=subset)
    assert statistics["images"] == 3
    assert statistics["by_label"] == {"normal": 1, "benign": 0, "malignant": 2}
    assert statistics["lesions"] == {"total": 2, "per_image": {"1": 2}}
    assert statistics["problems"] == []  # the missing image is outside the subset
    with_missing = dataset_statistics(dataset, split=[*subset, "IMG000009.jpeg"])
    assert [p["image_ids"] for p in with_missing["problems"]] == [["IMG000009.jpeg"]]


def test_format_statistics_is_readable_text(fixture_statistics):
    text = format_statistics(fixture_statistics)
    assert "Images: 12" in text
    assert "Labels: normal 5 (41.7%), benign 5 (41.7%), malignant 2 (16.7%)" in text
    assert "Centres: 1 8, 2 3, 3 1" in text
    assert "Lesions: 8 (images by lesion count: 1: 6, 2: 1)" in text
    assert "under 1%: 28.6% of images" in text
    assert "Problems: none" in text


# ------------------------------------------------------------------------------------------
# The published BTXRD marginals (../shared/BTXRD.md), rebuilt as a table and counted back.

# The label and subtype counts are the synthetic generator's, which draws to them.
PUBLISHED_LABELS = plan._CLASS_COUNTS
PUBLISHED_SUBTYPES = plan._SUBTYPE_COUNTS
PUBLISHED_CENTERS = {"1": 2938, "2": 549, "3": 259}
PUBLISHED_GENDERS = {"M": 2098, "F": 1648}
PUBLISHED_SITES = {
    "tibia": 630, "femur": 592, "fibula": 259, "humerus": 235, "hand": 97, "foot": 93,
    "radius": 73, "hip bone": 69, "ulna": 62, "knee-joint": 37, "shoulder-joint": 12,
}  # fmt: skip
PUBLISHED_REGIONS = {"upper limb": 1124, "lower limb": 2406, "pelvis": 216}
PUBLISHED_VIEWS = {"frontal": 2181, "lateral": 1269, "oblique": 296}


def _blocks(counts: dict[str, int], start: int = 0) -> list[tuple[str, slice]]:
    blocks, position = [], start
    for name, count in counts.items():
        blocks.append((name, slice(position, position + count)))
        position += count
    return blocks


def published_table() -> pd.DataFrame:
    """3,746 rows with exactly the published marginals (not the real joint distribution)."""
    total = sum(PUBLISHED_LABELS.values())
    table = pd.DataFrame(0, index=range(total), columns=list(COLUMNS))
    table["image_id"] = [f"IMG{number:06d}.jpeg" for number in range(1, total + 1)]
    table["age"] = 30
    label = np.repeat(list(PUBLISHED_LABELS), list(PUBLISHED_LABELS.values()))
    table["tumor"] = (label != "normal").astype(int)
    table["benign"] = (label == "benign").astype(int)
    table["malignant"] = (label == "malignant").astype(int)
    # One benign row carries two subtypes, as in the real table: 1,526 flags on 1,525 rows.
    benign_start = PUBLISHED_LABELS["normal"]
    subtype_counts = dict(PUBLISHED_SUBTYPES, osteochondroma=753)
    for name, rows in _blocks(subtype_counts, benign_start):
        table.loc[table.index[rows], name] = 1
    table.loc[benign_start + PUBLISHED_LABELS["benign"] - 1, "osteochondroma"] = 1
    # Sites: consecutive blocks over the 1,867 tumour rows, wrapping round, so some rows get two.
    tumour_rows = np.arange(benign_start, total)
    position = 0
    for name, count in PUBLISHED_SITES.items():
        chosen = tumour_rows[(position + np.arange(count)) % len(tumour_rows)]
        table.loc[chosen, name] = 1
        position += count
    for counts in (PUBLISHED_REGIONS, PUBLISHED_VIEWS):
        for name, rows in _blocks(counts):
            table.loc[table.index[rows], name] = 1
    table["center"] = np.repeat([1, 2, 3], list(PUBLISHED_CENTERS.values()))
    table["gender"] = np.repeat(["M", "F"], list(PUBLISHED_GENDERS.values()))
    return table


def test_published_counts_are_reproduced(tmp_path):
    root = tmp_path / "btxrd"
    (root / "images").mkdir(parents=True)
    (root / "Annotations").mkdir()
    published_table().to_csv(root / "dataset.csv", index=False)
    Image.new("L", (8, 8)).save(root / "images" / "IMG000001.jpeg")

    start = time.perf_counter()
    dataset = open_dataset(root)
    seconds = time.perf_counter() - start
    assert seconds < 2.0, f"reading 3,746 rows took {seconds:.2f} s"

    statistics = dataset_statistics(dataset)
    assert statistics["images"] == 3746
    assert statistics["by_label"] == PUBLISHED_LABELS
    assert statistics["by_subtype"] == PUBLISHED_SUBTYPES
    assert statistics["by_center"] == PUBLISHED_CENTERS
    assert statistics["by_gender"] == PUBLISHED_GENDERS
    assert {k: v for k, v in statistics["by_site"].items() if v} == PUBLISHED_SITES
    assert statistics["by_region"] == PUBLISHED_REGIONS
    assert statistics["by_view"] == PUBLISHED_VIEWS
    assert list(statistics["by_region"]) == list(REGION_COLUMNS)
    assert list(statistics["by_view"]) == list(VIEW_COLUMNS)
    assert list(statistics["by_subtype"]) == list(SUBTYPE_COLUMNS)
    kinds = {problem["kind"]: problem for problem in statistics["problems"]}
    assert kinds["missing_image"]["count"] == 3745
    assert kinds["missing_annotation"]["count"] == 1867
    two_subtypes = [p for p in statistics["problems"] if "more than one subtype" in p["message"]]
    assert two_subtypes[0]["image_ids"] == ["IMG003404.jpeg"]
    assert len(dataset.usable) == 1


def test_a_table_without_the_centre_column_invents_no_centre(tmp_path):
    header = ["" if name == "center" else name for name in COLUMNS]
    dataset = open_dataset(write_btxrd_folder(tmp_path / "btxrd", header=header))
    assert dataset.missing_columns == ("center",)
    statistics = dataset_statistics(dataset)
    assert statistics["by_center"] == {}
    assert "Centres: not in the table" in format_statistics(statistics)
