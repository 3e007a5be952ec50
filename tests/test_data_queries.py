"""btseg.data.queries: the table's filters, site options, gallery sample and problems list, on
the hand-made tidy table of test_viz_dataset."""

from __future__ import annotations

from test_viz_dataset import tidy_table

from btseg.data import queries
from btseg.data.btxrd import Problem


def test_filter_table_by_each_filter_and_combined():
    table = tidy_table()

    def ids(selection):
        return [int(image_id[3:9]) for image_id in queries.filter_table(table, selection)["image_id"]]

    assert ids(queries.TableFilter()) == [1, 2, 3, 4, 5, 6]
    assert ids(queries.TableFilter(labels=("malignant",))) == [4]
    assert ids(queries.TableFilter(sites=("femur",))) == [2, 4]
    assert ids(queries.TableFilter(centers=(1,))) == [1, 2, 6]
    assert ids(queries.TableFilter(genders=("F",))) == [1, 4, 6]
    assert ids(queries.TableFilter(age_range=(12.0, 17.0))) == [2, 4]
    assert ids(queries.TableFilter(labels=("benign",), genders=("M",), age_range=(10.0, 90.0))) == [2]
    assert not queries.TableFilter().active
    assert queries.TableFilter(centers=(3,)).active


def test_site_options_most_frequent_first():
    assert queries.site_options(tidy_table()) == ["femur", "humerus", "knee-joint", "tibia"]


def test_gallery_sample_interleaves_classes_and_skips_missing_images():
    table = tidy_table()
    sample = queries.gallery_sample(table, count=4, seed=3)
    assert list(sample["label"]) == ["benign", "malignant", "normal", "benign"]
    assert "IMG000005.jpg" not in set(sample["image_id"])  # has_image is False
    assert list(queries.gallery_sample(table, count=4, seed=3)["image_id"]) == list(sample["image_id"])
    assert len(queries.gallery_sample(table, count=50, seed=0)) == 5


def test_problems_table_groups_by_kind_most_frequent_first():
    problems = [
        Problem("view_conflict", "1 row has no view.", ("IMG000006.jpeg",)),
        Problem("region_site_conflict", "3 rows contradict.", ("a", "b", "c")),
        Problem("view_conflict", "1 row has two views.", ("IMG000007.jpeg",)),
        Problem("missing_columns", "column pelvis is missing.", (), count=1),
    ]
    table = queries.problems_table(problems)
    assert list(table["kind"]) == ["region_site_conflict", "view_conflict", "missing_columns"]
    assert list(table["count"]) == [3, 2, 1]
    assert table.loc[1, "first_ids"] == "IMG000006.jpeg, IMG000007.jpeg"
    assert table.loc[1, "details"] == "1 row has no view. 1 row has two views."
    assert queries.problems_table([]).empty
