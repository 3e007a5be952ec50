"""Surrogate patients, duplicate detection and the group split (btseg.data.splits)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from btseg.data.splits import (
    PARTS,
    duplicate_images,
    format_split_summary,
    group_labels,
    image_number,
    load_split,
    make_split,
    save_split,
    split_for,
    split_summary,
    surrogate_patient_ids,
)
from btseg.errors import ConfigError, DataError


def row(number, center=1, age=30.0, gender="M", label="benign", subtype="osteochondroma",
        site="tibia", region="lower limb", sites=None, image_path="", has_image=True):  # fmt: skip
    if sites is None:
        sites = (site,) if site else ()
    return {
        "image_id": f"IMG{number:06d}.jpeg",
        "center": center,
        "age": age,
        "gender": gender,
        "label": label,
        "subtype": subtype,
        "site": site,
        "sites": sites,
        "region": region,
        "image_path": image_path,
        "has_image": has_image,
    }


NORMAL = {"label": "normal", "subtype": "", "site": ""}
MALIGNANT = {
    "label": "malignant",
    "subtype": "osteosarcoma",
    "center": 2,
    "age": 15.0,
    "gender": "F",
    "site": "femur",
}


@pytest.fixture
def hand_table(tmp_path):
    """Ten rows, written out of order; image 11 is a byte copy of image 1 (all files 8 bytes)."""
    specs = {
        1: {},
        2: {},
        3: {"age": 31.0},  # age changes: new run
        4: {"age": 31.0},
        6: {"age": 31.0},  # id 5 missing: new run
        7: {**NORMAL, "age": 40.0, "gender": "F"},
        8: {**NORMAL, "age": 40.0, "gender": "F"},  # normal: same region, same run
        9: {**NORMAL, "age": 40.0, "gender": "F", "region": "upper limb"},  # region changes
        10: MALIGNANT,
        11: MALIGNANT,  # continues 10's run; its bytes equal image 1's: joins the first group
    }
    rows = []
    for number, spec in specs.items():
        path = tmp_path / f"IMG{number:06d}.jpeg"
        path.write_bytes(b"image-01" if number == 11 else f"image-{number:02d}".encode())
        rows.append(row(number, image_path=str(path), **spec))
    order = [5, 0, 9, 2, 7, 1, 3, 8, 4, 6]
    return pd.DataFrame([rows[i] for i in order], index=[100 + i for i in order])


def groups_by_id(table: pd.DataFrame) -> dict[str, int]:
    return dict(zip(table["image_id"], surrogate_patient_ids(table), strict=True))


def test_image_number():
    assert image_number("IMG000123.jpeg") == 123
    assert image_number("img3746.JPG") == 3746
    assert np.isnan(image_number("scan.png"))


def test_surrogate_patients_of_hand_made_table(hand_table):
    groups = surrogate_patient_ids(hand_table)
    assert list(groups.index) == list(hand_table.index)
    by_id = dict(zip(hand_table["image_id"].str[3:9].astype(int), groups, strict=True))
    # 1,2 one run; 10,11 one run merged with it through the duplicate pair (1, 11);
    # 3,4 (age 31); 6 (gap at 5); 7,8 normal lower limb; 9 normal upper limb.
    assert by_id == {1: 0, 2: 0, 10: 0, 11: 0, 3: 1, 4: 1, 6: 2, 7: 3, 8: 3, 9: 4}


def test_duplicates_are_found_by_content_not_size(hand_table):
    assert duplicate_images(hand_table) == [["IMG000001.jpeg", "IMG000011.jpeg"]]


def test_run_breaks_on_each_key():
    base = row(1)
    changes = [{"center": 2}, {"age": 12.0}, {"gender": "F"}, {"subtype": "simple bone cyst"},
               {"label": "malignant", "subtype": "osteosarcoma"}, {"site": "femur"}]  # fmt: skip
    for change in changes:
        table = pd.DataFrame([base, row(2, **change)])
        assert surrogate_patient_ids(table).tolist() == [0, 1], change
    table = pd.DataFrame([base, row(2)])
    assert surrogate_patient_ids(table).tolist() == [0, 0]


def test_sites_that_overlap_keep_the_run():
    table = pd.DataFrame([
        row(1, sites=("tibia", "knee-joint")),
        row(2, site="knee-joint", sites=("knee-joint",)),
        row(3, site="femur", sites=("femur",)),
    ])  # fmt: skip
    assert surrogate_patient_ids(table).tolist() == [0, 0, 1]


def test_missing_age_equals_missing_age_and_ids_without_digits_stand_alone():
    table = pd.DataFrame([row(1, age=np.nan), row(2, age=np.nan), row(3, age=np.nan)])
    table.loc[3] = {**row(4), "image_id": "scan.jpeg"}
    assert surrogate_patient_ids(table).tolist() == [0, 0, 0, 1]


def test_missing_columns_named():
    with pytest.raises(DataError, match="gender"):
        surrogate_patient_ids(pd.DataFrame([row(1)]).drop(columns="gender"))


def synthetic_table(groups: int = 150, seed: int = 1) -> pd.DataFrame:
    """Consecutive runs of 1-3 images; each run has its own age so runs never merge."""
    rng = np.random.default_rng(seed)
    rows, number = [], 1
    for group in range(groups):
        label = rng.choice(["normal", "benign", "malignant"], p=[0.5, 0.4, 0.1])
        spec = {"label": label, "age": float(group), "subtype": "", "site": ""}
        if label != "normal":
            spec.update(
                subtype="osteochondroma" if label == "benign" else "osteosarcoma", site="tibia"
            )
        for _ in range(int(rng.integers(1, 4))):
            rows.append(row(number, **spec))
            number += 1
    return pd.DataFrame(rows)


def test_no_group_spans_two_parts_and_each_part_has_every_label():
    table = synthetic_table(groups=600)
    groups = surrogate_patient_ids(table)
    assert groups.nunique() == 600
    for seed in range(8):
        split = make_split(table, seed=seed)
        parts = table["image_id"].map(split.assignment)
        assert parts.notna().all()
        assert (parts.groupby(groups).nunique() == 1).all()
        for part in PARTS:
            assert set(table.loc[parts == part, "label"]) == {"normal", "benign", "malignant"}


def test_fractions_are_approached_per_label():
    table = synthetic_table(groups=3000)
    split = make_split(table, seed=5, fractions=(0.6, 0.2, 0.2))
    parts = table["image_id"].map(split.assignment)
    for label in ("normal", "benign"):
        share = parts[table["label"] == label].value_counts(normalize=True)
        assert share["train"] == pytest.approx(0.6, abs=0.03)
        assert share["val"] == pytest.approx(0.2, abs=0.03)
        assert share["test"] == pytest.approx(0.2, abs=0.03)
    assert sum(sum(by_label.values()) for by_label in split.counts.values()) == len(table)
    assert split.counts["train"]["benign"] == int(
        ((parts == "train") & (table["label"] == "benign")).sum()
    )


def test_adding_or_removing_images_moves_no_other_image():
    table = synthetic_table(groups=300)
    split = make_split(table, seed=2)
    fewer = table.drop(index=[10, 200, 450]).reset_index(drop=True)
    more = pd.concat([table, pd.DataFrame([row(99990, label="normal", age=999.0)])],
                     ignore_index=True)  # fmt: skip
    for changed in (fewer, more):
        other = make_split(changed, seed=2)
        shared = set(other.assignment) & set(split.assignment)
        moved = [i for i in shared if other.assignment[i] != split.assignment[i]]
        # Only a patient whose first image was removed may move (its key changes).
        first_removed = {table.loc[10, "image_id"], table.loc[200, "image_id"],
                         table.loc[450, "image_id"]}  # fmt: skip
        groups = surrogate_patient_ids(table)
        affected = set(table.loc[groups.isin(groups[table["image_id"].isin(first_removed)]),
                                 "image_id"])  # fmt: skip
        assert set(moved) <= affected


def test_split_is_deterministic_by_seed():
    table = synthetic_table()
    first, again, other = (
        make_split(table, seed=3),
        make_split(table, seed=3),
        make_split(table, seed=4),
    )
    assert first == again
    assert first.split_id == again.split_id
    assert first.assignment != other.assignment
    assert first.split_id != other.split_id
    assert first.ids("val") == [i for i in table["image_id"] if first.assignment[i] == "val"]


def test_group_label_is_the_most_severe_and_rows_without_image_are_left_out(tmp_path):
    (tmp_path / "a.jpeg").write_bytes(b"same")
    (tmp_path / "b.jpeg").write_bytes(b"same")
    table = pd.DataFrame([
        row(1, image_path=str(tmp_path / "a.jpeg")),
        row(2),
        row(3, has_image=False),
        row(7, **MALIGNANT, image_path=str(tmp_path / "b.jpeg")),  # a copy of image 1
        row(9, **NORMAL),
    ])  # fmt: skip
    assert group_labels(table).tolist() == ["malignant"] * 4 + ["normal"]
    split = make_split(table, seed=0, fractions=(1.0, 0.0, 0.0))
    assert list(split.assignment) == [
        "IMG000001.jpeg",
        "IMG000002.jpeg",
        "IMG000007.jpeg",
        "IMG000009.jpeg",
    ]
    assert split.counts["train"] == {"normal": 1, "benign": 2, "malignant": 1}
    summary = split_summary(split, table)
    assert summary["left_out"] == [
        {"image_id": "IMG000003.jpeg", "reason": "no image file for this row (it is missing "
         "from images/)"}
    ]  # fmt: skip
    assert summary["assignment"] == split.assignment
    assert "1 row of the table left out:" in format_split_summary(summary)


def test_bad_fractions_and_empty_table():
    table = synthetic_table(groups=5)
    for fractions in [(0.5, 0.5), (0.7, 0.2, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)]:
        with pytest.raises(ConfigError, match="fractions"):
            make_split(table, fractions=fractions)
    with pytest.raises(DataError, match="no row"):
        make_split(table.assign(has_image=False))
    with pytest.raises(ConfigError, match="part"):
        make_split(table).ids("training")


def test_save_and_load_round_trip(tmp_path):
    table = synthetic_table(groups=30)
    split = make_split(table, seed=2)
    path = tmp_path / "nested" / "split.json"
    save_split(split, path)
    loaded = load_split(path)
    assert loaded == split
    assert loaded.counts == split.counts
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1
    assert set(data) == {
        "schema_version",
        "seed",
        "fractions",
        "fingerprint",
        "split_id",
        "counts",
        "assignment",
    }
    assert list(tmp_path.joinpath("nested").iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "cannot be read"), ('{"schema_version": 9}', "schema_version"),
     ('{"schema_version": 1, "seed": 0}', "malformed")],
)  # fmt: skip
def test_load_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "split.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as error:
        load_split(path)
    assert str(path) in str(error.value)


def test_load_rejects_tampered_assignment(tmp_path):
    split = make_split(synthetic_table(groups=10))
    path = tmp_path / "split.json"
    save_split(split, path)
    data = json.loads(path.read_text())
    first = next(iter(data["assignment"]))
    data["assignment"][first] = "test" if data["assignment"][first] != "test" else "train"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="split_id"):
        load_split(path)


def test_split_for_saves_reuses_and_follows_data(tmp_path):
    table = synthetic_table(groups=20)
    split = split_for(table, cache_dir=tmp_path, seed=1)
    path = tmp_path / "splits" / f"{split.fingerprint}-seed1.json"
    assert path.is_file()
    path.write_text(
        path.read_text().replace('"seed": 1', '"seed": 1 ')
    )  # marker that survives a reload
    stamp = path.stat().st_mtime_ns
    assert split_for(table, cache_dir=tmp_path, seed=1) == split
    assert path.stat().st_mtime_ns == stamp  # loaded, not rewritten

    changed = table.copy()
    changed.loc[0, "label"] = "malignant"
    other = split_for(changed, cache_dir=tmp_path, seed=1)
    assert other.fingerprint != split.fingerprint
    assert len(list((tmp_path / "splits").iterdir())) == 2

    path.write_text("garbage")  # a damaged file is replaced
    assert split_for(table, cache_dir=tmp_path, seed=1) == split


def test_split_summary_counts(hand_table):
    split = make_split(hand_table, seed=0, fractions=(1.0, 0.0, 0.0))
    summary = split_summary(split, hand_table)
    assert summary["images"] == 10
    assert summary["groups"] == 5
    assert summary["parts"]["train"] == {
        "images": 10, "groups": 5, "by_label": {"normal": 3, "benign": 5, "malignant": 2}
    }  # fmt: skip
    assert summary["parts"]["test"]["images"] == 0
    text = format_split_summary(summary)
    assert "10 images in 5 surrogate patients" in text
    assert text.splitlines()[2].split() == ["train", "5", "10", "3", "5", "2"]
