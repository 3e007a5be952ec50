"""btseg.data.btxrd: reading, pairing and validating a BTXRD-format folder."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from PIL import Image

from btseg.data.btxrd import (
    COLUMNS,
    SITE_COLUMNS,
    SUBTYPE_COLUMNS,
    TIDY_COLUMNS,
    Dataset,
    Problem,
    load_table,
    open_dataset,
)
from btseg.errors import DataError

IMAGE_WIDTH = 50
IMAGE_HEIGHT = 20


def _row(image_id, center, age, gender, label, subtypes, sites, region, view, file, lesions=None):
    values = dict.fromkeys(COLUMNS, 0)
    values.update(image_id=image_id, center=center, age=age, gender=gender)
    values["tumor"] = int(label != "normal")
    values["benign"] = int(label == "benign")
    values["malignant"] = int(label == "malignant")
    for name in (*subtypes, *sites, region, view):
        values[name] = 1
    return {"values": values, "file": file, "lesions": lesions}


def fixture_rows() -> list[dict]:
    """12 rows in BTXRD format; 'file' is the name on disk, 'lesions' the LabelMe lesions.

    A lesion is a (label, polygon points) pair, or (label, None, box) for a box-only lesion.
    Areas on the 50 x 20 images: 2%, 1% (two lesions), 3%, 0.5%, 8%, 0.8% (box), 5%.
    """
    return [
        _row("IMG000001.jpeg", 1, 40, "M", "normal", [], [], "lower limb", "frontal",
             "IMG000001.jpeg"),
        _row("IMG000002.jpeg", 1, 12, "M", "benign", ["osteochondroma"], ["femur", "knee-joint"],
             "lower limb", "frontal", "IMG000002.jpeg",
             [("osteochondroma", [[0, 0], [10, 0], [0, 4]])]),
        _row("IMG000003.jpeg", 1, 12, "M", "benign", ["osteochondroma"], ["femur", "knee-joint"],
             "lower limb", "lateral", "IMG000003.jpg",
             [("osteochondroma", [[1, 1], [3, 1], [3, 3], [1, 3]]),
              ("osteochondroma", [[10, 10], [14, 10], [10, 13]])]),
        _row("IMG000004.jpeg", 1, 16, "F", "malignant", ["osteosarcoma"], ["tibia"], "lower limb",
             "frontal", "IMG000004.JPEG",
             [("osteosarcoma", [[5, 5], [10, 5], [10, 11], [5, 11]])]),
        _row("IMG000005.jpeg", 2, 60, "F", "normal", [], [], "upper limb", "lateral",
             "IMG000005.jpeg"),
        _row("IMG000006.jpeg", 2, 30, "M", "benign", ["simple bone cyst"],
             ["humerus", "shoulder-joint"], "upper limb", "oblique", "IMG000006.jpeg",
             [("simple bone cyst", [[20, 5], [25, 5], [25, 6], [20, 6]])]),
        _row("IMG000007.jpg", 3, 50, "F", "normal", [], [], "pelvis", "frontal", "IMG000007.jpg"),
        _row("IMG000008.jpeg", 2, 70, "M", "malignant", ["other mt"], ["hip bone"], "pelvis",
             "frontal", "IMG000008.jpeg",
             [("other mt", [[30, 2], [40, 2], [40, 10], [30, 10]])]),
        _row("IMG000009.jpeg", 1, 25, "F", "normal", [], [], "lower limb", "frontal",
             "IMG000009.jpeg"),
        _row("IMG000010.jpeg", 1, 35, "M", "benign", ["giant cell tumor"], ["radius", "ulna"],
             "upper limb", "frontal", "IMG000010.jpeg", [("giant cell tumor", None, [2, 2, 6, 4])]),
        _row("IMG000011.jpeg", 1, 22, "F", "benign", ["other bt"], ["foot", "ankle-joint"],
             "lower limb", "lateral", "IMG000011.jpeg",
             [("other bt", [[0, 10], [10, 10], [10, 15], [0, 15]])]),
        _row("IMG000012.jpeg", 1, 8, "M", "normal", [], [], "upper limb", "frontal",
             "IMG000012.png"),
    ]  # fmt: skip


def _shape(label, points, shape_type):
    return {"label": label, "points": points, "group_id": None, "description": "",
            "shape_type": shape_type, "flags": {}, "mask": None}  # fmt: skip


def labelme_json(image_name: str, lesions: list) -> dict:
    """LabelMe 5.x as BTXRD writes it: per lesion a rectangle then a polygon."""
    shapes = []
    for lesion in lesions:
        label, polygon = lesion[0], lesion[1]
        if polygon is None:
            x0, y0, x1, y1 = lesion[2]
            shapes.append(_shape(label, [[x0, y0], [x1, y1]], "rectangle"))
            continue
        points = np.array(polygon, dtype=float)
        box = [points.min(axis=0).tolist(), points.max(axis=0).tolist()]
        shapes.append(_shape(label, box, "rectangle"))
        shapes.append(_shape(label, [[float(x), float(y)] for x, y in polygon], "polygon"))
    return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_name,
            "imageData": None, "imageHeight": IMAGE_HEIGHT, "imageWidth": IMAGE_WIDTH}  # fmt: skip


def write_btxrd_folder(
    root: Path,
    rows: list[dict] | None = None,
    *,
    table: str = "dataset.xlsx",
    header: list[str] | None = None,
    images: str = "images",
    annotations: str = "Annotations",
) -> Path:
    """Write a BTXRD-format folder: table, tiny images and one LabelMe JSON per lesion row."""
    rows = fixture_rows() if rows is None else rows
    root.mkdir(parents=True, exist_ok=True)
    header = list(COLUMNS) if header is None else header
    body = [[row["values"][name] for name in COLUMNS] for row in rows]
    if table.lower().endswith(".xlsx"):
        workbook = openpyxl.Workbook()
        sheet = workbook.active
        sheet.append(header)
        for values in body:
            sheet.append(values)
        workbook.save(root / table)
    else:
        with open(root / table, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            writer.writerows(body)
    (root / images).mkdir(exist_ok=True)
    (root / annotations).mkdir(exist_ok=True)
    pixels = np.arange(IMAGE_HEIGHT * IMAGE_WIDTH, dtype=np.uint8).reshape(IMAGE_HEIGHT, IMAGE_WIDTH)
    for row in rows:
        if row["file"]:
            extension = Path(row["file"]).suffix.lower()
            kind = {".png": "PNG"}.get(extension, "JPEG")
            Image.fromarray(pixels).save(root / images / row["file"], format=kind)
        if row["lesions"]:
            stem = Path(row["values"]["image_id"]).stem
            data = labelme_json(row["values"]["image_id"], row["lesions"])
            (root / annotations / f"{stem}.json").write_text(json.dumps(data), encoding="utf-8")
    return root


def problems_by_kind(dataset: Dataset) -> dict[str, list[Problem]]:
    found: dict[str, list[Problem]] = {}
    for problem in dataset.problems:
        found.setdefault(problem.kind, []).append(problem)
    return found


def ids_of(dataset: Dataset, kind: str) -> set[str]:
    return {i for problem in dataset.problems if problem.kind == kind for i in problem.image_ids}


def by_id(dataset: Dataset) -> dict[str, dict]:
    return {row["image_id"]: row for row in dataset.table.to_dict("records")}


# ------------------------------------------------------------------------------------------


def test_clean_folder_gives_tidy_table_without_problems(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    dataset = open_dataset(root)

    assert dataset.problems == []
    assert list(dataset.table.columns) == list(TIDY_COLUMNS) + list(COLUMNS[4:])
    assert len(dataset.table) == 12 and len(dataset.usable) == 12
    assert dataset.table["image_id"].tolist()[:3] == [
        "IMG000001.jpeg", "IMG000002.jpeg", "IMG000003.jpeg"]  # fmt: skip
    rows = by_id(dataset)
    first = rows["IMG000001.jpeg"]
    assert first["stem"] == "img000001"
    assert (first["center"], first["age"], first["gender"]) == (1, 40.0, "M")
    assert (first["label"], first["subtype"], first["subtypes"]) == ("normal", "", ())
    assert (first["sites"], first["site"], first["region"], first["view"]) == (
        (), "", "lower limb", "frontal")  # fmt: skip
    assert first["annotation_path"] == "" and first["has_image"]

    tumour = rows["IMG000002.jpeg"]
    assert (tumour["label"], tumour["subtype"], tumour["subtypes"]) == (
        "benign", "osteochondroma", ("osteochondroma",))  # fmt: skip
    assert tumour["sites"] == ("femur", "knee-joint") and tumour["site"] == "femur"
    assert tumour["annotation_path"] == str(root / "Annotations" / "IMG000002.json")
    # Sites come in the canonical column order; the primary site is the first bone.
    assert rows["IMG000010.jpeg"]["sites"] == ("ulna", "radius")
    assert rows["IMG000010.jpeg"]["site"] == "ulna"
    assert rows["IMG000011.jpeg"]["site"] == "foot"
    assert rows["IMG000006.jpeg"]["view"] == "oblique"
    assert rows["IMG000008.jpeg"]["label"] == "malignant"
    assert rows["IMG000008.jpeg"]["region"] == "pelvis"
    assert dataset.table["center"].dtype == np.int64
    assert dataset.table["tumor"].tolist() == [0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0]
    assert not dataset.is_synthetic


def test_rows_pair_with_files_by_stem_whatever_the_extension(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    rows = by_id(open_dataset(root))
    assert rows["IMG000003.jpeg"]["image_path"] == str(root / "images" / "IMG000003.jpg")
    assert rows["IMG000004.jpeg"]["image_path"] == str(root / "images" / "IMG000004.JPEG")
    assert rows["IMG000007.jpg"]["image_path"] == str(root / "images" / "IMG000007.jpg")
    assert rows["IMG000012.jpeg"]["image_path"] == str(root / "images" / "IMG000012.png")


def test_load_table_is_the_dataset_table(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    assert load_table(root).equals(open_dataset(root).table)


def test_csv_table_reads_like_xlsx(tmp_path):
    from_xlsx = open_dataset(write_btxrd_folder(tmp_path / "a")).table
    from_csv = open_dataset(write_btxrd_folder(tmp_path / "b", table="dataset.csv")).table
    columns = [c for c in from_xlsx.columns if c not in ("image_path", "annotation_path")]
    assert from_csv[columns].equals(from_xlsx[columns])


def test_xlsx_is_preferred_over_csv(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    rows = fixture_rows()[:2]
    write_btxrd_folder(tmp_path / "other", rows, table="dataset.csv")
    (tmp_path / "other" / "dataset.csv").rename(root / "dataset.csv")
    dataset = open_dataset(root)
    assert dataset.table_path == root / "dataset.xlsx"
    assert len(dataset.table) == 12


def test_column_names_with_stray_whitespace_and_case_are_matched(tmp_path):
    header = [f"  {name.upper()} " if index % 2 else f"{name.title()}\t"
              for index, name in enumerate(COLUMNS)]  # fmt: skip
    root = write_btxrd_folder(tmp_path / "btxrd", header=header)
    dataset = open_dataset(root)
    assert dataset.problems == []
    assert list(dataset.table.columns)[len(TIDY_COLUMNS):] == list(COLUMNS[4:])
    assert by_id(dataset)["IMG000002.jpeg"]["sites"] == ("femur", "knee-joint")


def test_table_and_folder_names_are_case_insensitive(tmp_path):
    root = write_btxrd_folder(
        tmp_path / "btxrd", table="Dataset.xlsx", images="Images", annotations="annotations"
    )
    dataset = open_dataset(root)
    assert dataset.problems == []
    assert by_id(dataset)["IMG000002.jpeg"]["annotation_path"].endswith(
        os.path.join("annotations", "IMG000002.json"))  # fmt: skip


def test_missing_label_columns_raise_listing_every_missing_column(tmp_path):
    header = list(COLUMNS)
    header[header.index("benign")] = "benign_flag"
    header[header.index("hand")] = "hands"
    root = write_btxrd_folder(tmp_path / "btxrd", header=header)
    with pytest.raises(DataError) as error:
        open_dataset(root)
    message = str(error.value)
    assert "missing 2 of the 37 BTXRD columns: hand, benign" in message
    assert "benign_flag" in message  # the unrecognised column is shown as a hint
    assert "dataset.xlsx" in message


def test_missing_optional_columns_are_a_problem_and_read_as_zero(tmp_path):
    header = list(COLUMNS)
    header[header.index("oblique")] = "obliq"
    header[header.index("hand")] = ""
    root = write_btxrd_folder(tmp_path / "btxrd", header=header)
    dataset = open_dataset(root)
    found = problems_by_kind(dataset)
    assert [p.count for p in found["missing_columns"]] == [2]
    assert "hand, oblique" in found["missing_columns"][0].message
    assert by_id(dataset)["IMG000006.jpeg"]["view"] == ""
    assert dataset.table["oblique"].sum() == 0
    assert ids_of(dataset, "view_conflict") == {"IMG000006.jpeg"}


def test_conflicting_rows_are_reported_with_their_ids_and_kept(tmp_path):
    rows = fixture_rows()
    values = {row["values"]["image_id"]: row["values"] for row in rows}
    values["IMG000002.jpeg"]["malignant"] = 1  # benign and malignant, benign subtype
    values["IMG000003.jpeg"]["simple bone cyst"] = 1  # two subtypes
    values["IMG000004.jpeg"]["osteosarcoma"] = 0  # tumour without subtype
    values["IMG000005.jpeg"]["frontal"] = 1  # two views
    values["IMG000006.jpeg"]["upper limb"] = 0  # humerus marked lower limb
    values["IMG000006.jpeg"]["lower limb"] = 1
    values["IMG000008.jpeg"]["benign"] = 1  # benign + malignant, malignant subtype
    values["IMG000008.jpeg"]["malignant"] = 0
    values["IMG000009.jpeg"]["frontal"] = 0  # no view
    values["IMG000011.jpeg"]["tumor"] = 0  # tumor 0 but benign 1
    dataset = open_dataset(write_btxrd_folder(tmp_path / "btxrd", rows))

    assert len(dataset.table) == 12
    assert ids_of(dataset, "label_conflict") == {"IMG000002.jpeg", "IMG000011.jpeg"}
    assert ids_of(dataset, "subtype_conflict") == {
        "IMG000003.jpeg", "IMG000004.jpeg", "IMG000008.jpeg"}  # fmt: skip
    assert ids_of(dataset, "view_conflict") == {"IMG000005.jpeg", "IMG000009.jpeg"}
    assert ids_of(dataset, "region_site_conflict") == {"IMG000006.jpeg"}
    region = problems_by_kind(dataset)["region_site_conflict"][0]
    assert region.message == (
        "1 row has a region that contradicts its site: "
        "IMG000006.jpeg (humerus, shoulder-joint marked lower limb)"
    )
    several = [p for p in dataset.problems if "more than one subtype" in p.message][0]
    assert "IMG000003.jpeg (osteochondroma + simple bone cyst)" in several.message

    rows_out = by_id(dataset)
    assert rows_out["IMG000002.jpeg"]["label"] == "benign"  # the subtype decides
    assert rows_out["IMG000003.jpeg"]["subtype"] == "osteochondroma + simple bone cyst"
    assert rows_out["IMG000003.jpeg"]["subtypes"] == ("osteochondroma", "simple bone cyst")
    assert rows_out["IMG000004.jpeg"]["label"] == "malignant"
    assert rows_out["IMG000004.jpeg"]["subtype"] == ""
    assert rows_out["IMG000005.jpeg"]["view"] == "frontal"  # first view set
    assert rows_out["IMG000008.jpeg"]["label"] == "benign"  # benign flag set
    assert rows_out["IMG000011.jpeg"]["label"] == "benign"
    assert rows_out["IMG000006.jpeg"]["region"] == "lower limb"  # kept as written


def test_missing_image_and_orphan_file_are_reported(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    (root / "images" / "IMG000009.jpeg").unlink()
    (root / "images" / "IMG000012.png").unlink()
    Image.new("L", (8, 8)).save(root / "images" / "IMG000099.jpeg")
    (root / "images" / "notes.txt").write_text("not an image")
    (root / "images" / ".DS_Store").write_bytes(b"\0")
    dataset = open_dataset(root)

    found = problems_by_kind(dataset)
    assert found["missing_image"][0].image_ids == ("IMG000009.jpeg", "IMG000012.jpeg")
    assert found["missing_image"][0].message == (
        "2 rows have no image file in images/: IMG000009.jpeg, IMG000012.jpeg")  # fmt: skip
    assert found["orphan_file"][0].image_ids == ("IMG000099.jpeg",)
    assert found["unsupported_file"][0].image_ids == ("notes.txt",)
    assert len(dataset.table) == 12 and len(dataset.usable) == 10
    row = by_id(dataset)["IMG000009.jpeg"]
    assert row["image_path"] == "" and not row["has_image"]


def test_empty_image_file_is_not_usable(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    (root / "images" / "IMG000005.jpeg").write_bytes(b"")
    dataset = open_dataset(root)
    assert ids_of(dataset, "empty_image") == {"IMG000005.jpeg"}
    assert not by_id(dataset)["IMG000005.jpeg"]["has_image"]
    assert len(dataset.usable) == 11


def test_annotation_for_normal_image_and_tumour_without_one(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    (root / "Annotations" / "IMG000001.json").write_text(
        json.dumps(labelme_json("IMG000001.jpeg", [("x", [[0, 0], [4, 0], [0, 4]])])))  # fmt: skip
    (root / "Annotations" / "IMG000008.json").unlink()
    (root / "Annotations" / "IMG000777.json").write_text("{}")
    dataset = open_dataset(root)
    assert ids_of(dataset, "normal_with_annotation") == {"IMG000001.jpeg"}
    assert ids_of(dataset, "missing_annotation") == {"IMG000008.jpeg"}
    assert ids_of(dataset, "orphan_annotation") == {"IMG000777.json"}


def test_blank_and_textual_zero_one_cells(tmp_path):
    rows = fixture_rows()
    rows[0]["values"]["tumor"] = None  # empty label cell: read as 0, reported
    rows[1]["values"]["femur"] = "1"
    rows[1]["values"]["tumor"] = True
    rows[2]["values"]["benign"] = 1.0
    rows[3]["values"]["tibia"] = " 1 "
    rows[4]["values"]["hand"] = "0"
    rows[5]["values"]["frontal"] = "x"  # not 0/1: read as 0, reported
    dataset = open_dataset(write_btxrd_folder(tmp_path / "btxrd", rows))
    found = problems_by_kind(dataset)
    missing = [p for p in found["missing_value"] if "label columns" in p.message]
    assert missing[0].image_ids == ("IMG000001.jpeg",)
    assert "(tumor)" in missing[0].message
    assert found["invalid_value"][0].image_ids == ("IMG000006.jpeg",)
    assert "frontal" in found["invalid_value"][0].message
    rows_out = by_id(dataset)
    assert rows_out["IMG000001.jpeg"]["label"] == "normal"
    assert rows_out["IMG000002.jpeg"]["sites"] == ("femur", "knee-joint")
    assert rows_out["IMG000003.jpeg"]["label"] == "benign"
    assert rows_out["IMG000004.jpeg"]["site"] == "tibia"
    assert rows_out["IMG000006.jpeg"]["view"] == "oblique"
    assert set(found) == {"missing_value", "invalid_value"}


def test_duplicate_image_ids_are_reported(tmp_path):
    rows = fixture_rows()
    rows[8]["values"]["image_id"] = "img000001.JPG"
    rows[8]["file"] = None
    dataset = open_dataset(write_btxrd_folder(tmp_path / "btxrd", rows))
    assert ids_of(dataset, "duplicate_image_id") == {"IMG000001.jpeg", "img000001.JPG"}
    assert len(dataset.table) == 12


def test_header_below_a_title_row_and_blank_rows_are_handled(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    workbook = openpyxl.load_workbook(root / "dataset.xlsx")
    sheet = workbook.active
    sheet.insert_rows(1)
    sheet["A1"] = "BTXRD metadata"
    sheet.append([])
    sheet.append([None] * 5)
    workbook.save(root / "dataset.xlsx")
    dataset = open_dataset(root)
    assert len(dataset.table) == 12 and dataset.problems == []


def test_folder_without_table_explains_what_is_expected(tmp_path):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(DataError) as error:
        open_dataset(tmp_path / "empty")
    message = str(error.value)
    for expected in ("dataset.xlsx", "dataset.csv", "images/", "Annotations/",
                     "10.6084/m9.figshare.27865398", "btseg demo-data --out DIR"):  # fmt: skip
        assert expected in message


def test_missing_folder_and_nested_table_hint(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "nowhere")
    write_btxrd_folder(tmp_path / "download" / "BTXRD")
    with pytest.raises(DataError, match="BTXRD/ holds one"):
        open_dataset(tmp_path / "download")


def test_table_without_any_image_is_an_error(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    for path in (root / "images").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="images/ is empty"):
        open_dataset(root)
    (root / "images").rmdir()
    with pytest.raises(DataError, match="no images/ folder"):
        open_dataset(root)


def test_images_that_match_no_row_are_an_error(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    for path in (root / "images").iterdir():
        path.rename(path.with_name("scan_" + path.name))
    with pytest.raises(DataError, match="none of the 12 rows") as error:
        open_dataset(root)
    assert "scan_IMG000001.jpeg" in str(error.value)


def test_corrupt_xlsx_is_a_data_error(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd")
    (root / "dataset.xlsx").write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(DataError, match="cannot read the table as an Excel workbook"):
        open_dataset(root)


def test_empty_table_is_a_data_error(tmp_path):
    root = write_btxrd_folder(tmp_path / "btxrd", table="dataset.csv")
    (root / "dataset.csv").write_text("\n\n")
    with pytest.raises(DataError, match="the table is empty"):
        open_dataset(root)


def test_subtype_and_site_constants_follow_the_column_order():
    assert len(COLUMNS) == 37 and len(SITE_COLUMNS) == 15 and len(SUBTYPE_COLUMNS) == 9
    assert SITE_COLUMNS[0] == "hand" and SITE_COLUMNS[-1] == "shoulder-joint"
    assert SUBTYPE_COLUMNS[-2:] == ("osteosarcoma", "other mt")
