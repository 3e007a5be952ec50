"""btseg.viz.dataset: every Dataset page figure builds from a hand-made tidy table with the counts
worked out by hand."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from btseg import viz


def tidy_table() -> pd.DataFrame:
    """Six images: 2 normal, 3 benign (one with two subtypes), 1 malignant."""
    rows = [
        # image_id, label, subtypes, sites, center, age, gender, view, region, has_image
        ("IMG000001.jpeg", "normal", (), (), 1, 40.0, "F", "frontal", "lower limb", True),
        ("IMG000002.jpeg", "benign", ("osteochondroma",), ("femur", "knee-joint"), 1, 12.0, "M",
         "lateral", "lower limb", True),
        ("IMG000003.jpeg", "benign", ("simple bone cyst",), ("humerus",), 2, 9.0, "M", "frontal",
         "upper limb", True),
        ("IMG000004.jpeg", "malignant", ("osteosarcoma",), ("femur",), 2, 17.0, "F", "frontal",
         "lower limb", True),
        ("IMG000005.jpg", "normal", (), (), 3, 55.0, "M", "oblique", "pelvis", False),
        ("IMG000006.jpeg", "benign", ("osteochondroma", "giant cell tumor"), ("tibia",), 1, 30.0,
         "F", "", "lower limb", True),
    ]  # fmt: skip
    table = pd.DataFrame(
        rows,
        columns=["image_id", "label", "subtypes", "sites", "center", "age", "gender", "view",
                 "region", "has_image"],
    )  # fmt: skip
    table["subtype"] = table["subtypes"].map(" + ".join)
    table["site"] = table["sites"].map(lambda sites: sites[0] if sites else "")
    return table


def bars(figure: go.Figure) -> dict[str, dict]:
    """trace name -> {category: value} for vertical or horizontal bars."""
    result = {}
    for trace in figure.data:
        if trace.orientation == "h":
            result[trace.name] = dict(zip(trace.y, trace.x, strict=True))
        else:
            result[trace.name] = dict(zip(trace.x, trace.y, strict=True))
    return result


def test_class_distribution_bar_heights_are_counts():
    figure = viz.class_distribution_figure(tidy_table())
    (trace,) = figure.data
    assert list(trace.x) == ["normal", "benign", "malignant"]
    assert list(trace.y) == [2, 3, 1]
    assert list(trace.marker.color) == ["#4C9A6A", "#E0A030", "#C0392B"]
    assert trace.text[1] == "3 (50.0%)"
    assert (
        figure.layout.template.layout.to_plotly_json()
        == go.Figure(layout_template="plotly_white").layout.template.layout.to_plotly_json()
    )
    assert figure.layout.yaxis.title.text == "Images"


def test_age_by_class_has_a_box_and_a_histogram_per_class():
    figure = viz.age_by_class_figure(tidy_table())
    boxes = [trace for trace in figure.data if isinstance(trace, go.Box)]
    histograms = [trace for trace in figure.data if isinstance(trace, go.Histogram)]
    assert [trace.name for trace in boxes] == ["normal", "benign", "malignant"]
    assert [trace.name for trace in histograms] == ["normal", "benign", "malignant"]
    assert sorted(histograms[1].x) == [9.0, 12.0, 30.0]
    assert list(boxes[2].x) == [17.0]
    assert histograms[0].marker.color == viz.CLASS_COLORS["normal"]
    assert "normal 47.5" in figure.layout.title.subtitle.text
    assert figure.layout.xaxis2.title.text == "Age (years)"


def test_gender_by_class_counts():
    assert bars(viz.gender_by_class_figure(tidy_table())) == {
        "Female": {"normal": 1, "benign": 1, "malignant": 1},
        "Male": {"normal": 1, "benign": 2, "malignant": 0},
    }


def test_site_frequency_counts_every_site_of_tumour_images_sorted():
    figure = viz.site_frequency_figure(tidy_table())
    assert bars(figure) == {
        "benign": {"femur": 1, "humerus": 1, "knee-joint": 1, "tibia": 1},
        "malignant": {"femur": 1, "humerus": 0, "knee-joint": 0, "tibia": 0},
    }
    # Most frequent first (drawn on top), ties alphabetical.
    assert list(figure.data[0].y) == ["femur", "humerus", "knee-joint", "tibia"]
    assert figure.layout.yaxis.autorange == "reversed"
    assert "4 tumour images; 1 name more than one site" in figure.layout.title.subtitle.text


def test_view_figure_keeps_missing_views_visible():
    assert bars(viz.view_figure(tidy_table())) == {
        "normal": {"frontal": 1, "lateral": 0, "oblique": 1, "not recorded": 0},
        "benign": {"frontal": 1, "lateral": 1, "oblique": 0, "not recorded": 1},
        "malignant": {"frontal": 1, "lateral": 0, "oblique": 0, "not recorded": 0},
    }


def test_center_figure_names_the_centres():
    assert bars(viz.center_figure(tidy_table())) == {
        "normal": {"1 · Chinese hospitals": 1, "2 · Radiopaedia": 0, "3 · MedPix": 1},
        "benign": {"1 · Chinese hospitals": 2, "2 · Radiopaedia": 1, "3 · MedPix": 0},
        "malignant": {"1 · Chinese hospitals": 0, "2 · Radiopaedia": 1, "3 · MedPix": 0},
    }


def test_subtype_figure_counts_both_subtypes_of_a_row_and_colours_by_class():
    figure = viz.subtype_figure(tidy_table())
    assert bars(figure) == {
        "benign": {"osteochondroma": 2, "giant cell tumor": 1, "simple bone cyst": 1},
        "malignant": {"osteosarcoma": 1},
    }
    assert [trace.marker.color for trace in figure.data] == ["#E0A030", "#C0392B"]
    assert list(figure.layout.yaxis.categoryarray) == [
        "osteochondroma", "giant cell tumor", "osteosarcoma", "simple bone cyst"
    ]  # fmt: skip


def test_lesion_area_histogram_on_log_bins_with_the_one_percent_line():
    figure = viz.lesion_area_figure(
        [0.5, 2.0, 0.05, 10.0], ["benign", "benign", "malignant", "malignant"]
    )
    benign, malignant = figure.data
    assert (benign.name, malignant.name) == ("benign", "malignant")
    assert sum(benign.y) == 2 and sum(malignant.y) == 2

    def count_in_bin(trace, value):
        for (low, high), count in zip(trace.customdata, trace.y, strict=True):
            if low <= value < high:
                return count
        raise AssertionError(f"{value} falls in no bin")

    assert count_in_bin(benign, 0.5) == 1
    assert count_in_bin(malignant, 0.05) == 1
    assert count_in_bin(malignant, 0.5) == 0
    # Bins are a fifth of a decade wide: upper edge / lower edge = 10 ** 0.2.
    low, high = benign.customdata[0]
    assert high / low == pytest.approx(10**0.2)
    (line,) = figure.layout.shapes
    assert line.x0 == line.x1 == 0.0  # log10(1%)
    assert (
        "4 annotated images; 2 (50%) have lesions covering less than 1% of the image"
        in figure.layout.title.subtitle.text
    )
    assert "1%" in figure.layout.xaxis.ticktext


def test_lesion_area_drops_values_a_log_axis_cannot_show():
    figure = viz.lesion_area_figure([0.0, -1.0, 3.0])
    (trace,) = figure.data
    assert sum(trace.y) == 1
    assert "1 annotated images; 0 (0%)" in figure.layout.title.subtitle.text


def test_lesion_area_rejects_labels_of_another_length():
    with pytest.raises(ValueError, match="3 values but labels has 2"):
        viz.lesion_area_figure([1.0, 2.0, 3.0], ["benign", "benign"])


def test_split_composition_stacks_classes_per_part():
    assignment = {
        "IMG000001.jpeg": "train",
        "IMG000002.jpeg": "train",
        "IMG000003.jpeg": "val",
        "IMG000004.jpeg": "test",
        "IMG000005.jpg": "test",
    }
    figure = viz.split_composition_figure(tidy_table(), assignment)
    assert bars(figure) == {
        "normal": {"train": 1, "val": 0, "test": 1, "not in split": 0},
        "benign": {"train": 1, "val": 1, "test": 0, "not in split": 1},
        "malignant": {"train": 0, "val": 0, "test": 1, "not in split": 0},
    }
    assert figure.layout.barmode == "stack"
    assert "2 images" in figure.layout.xaxis.ticktext[0]


@pytest.mark.parametrize(
    "build",
    [
        viz.class_distribution_figure,
        viz.age_by_class_figure,
        viz.gender_by_class_figure,
        viz.site_frequency_figure,
        viz.view_figure,
        viz.center_figure,
        viz.subtype_figure,
        lambda table: viz.split_composition_figure(table, {}),
        lambda table: viz.lesion_area_figure([]),
    ],
)
def test_figures_of_an_empty_selection_say_so(build):
    figure = build(tidy_table().iloc[0:0])
    assert len(figure.data) == 0
    assert (
        "match" in figure.layout.annotations[0].text or "No " in figure.layout.annotations[0].text
    )
