import json

import cv2
import numpy as np
import pytest

from btseg.data.labelme import (
    Lesion,
    annotation_to_json,
    lesions_mask,
    mask_to_lesions,
    parse_annotation,
    polygon_box,
    read_annotation,
    write_annotation,
)
from btseg.errors import AnnotationError

# Shaped like BTXRD's IMG000002.json (LabelMe 5.4.1), polygon shortened.
OSTEOSARCOMA_POLYGON = [
    [901.0, 360.5],
    [1090.2, 402.7],
    [1110.8, 800.3],
    [1050.6, 1170.9],
    [930.4, 1150.2],
    [890.7, 700.1],
]


# A LabelMe 5.4.1 shape's fields besides its label, points and type, as in BTXRD's files.
SHAPE_FIELDS = {"group_id": None, "description": "", "flags": {}, "mask": None}


def shape(label, points, shape_type):
    return {"label": label, "points": points, "shape_type": shape_type, **SHAPE_FIELDS}


def labelme(shapes, height=3032, width=1640, image_path="IMG000002.jpeg"):
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }


def write_json(tmp_path, data, name="IMG000002.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def square(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def test_reads_btxrd_annotation(tmp_path):
    data = labelme(
        [
            shape("osteosarcoma", [[885.9, 343.2], [1115.4, 1188.7]], "rectangle"),
            shape("osteosarcoma", OSTEOSARCOMA_POLYGON, "polygon"),
        ]
    )
    annotation = read_annotation(write_json(tmp_path, data))
    assert annotation.path.endswith("IMG000002.json")
    assert (annotation.height, annotation.width) == (3032, 1640)
    assert annotation.warnings == []
    [lesion] = annotation.lesions
    assert lesion.label == "osteosarcoma"
    assert lesion.box == (885.9, 343.2, 1115.4, 1188.7)
    np.testing.assert_array_equal(lesion.polygon, np.array(OSTEOSARCOMA_POLYGON))
    assert lesion.polygon.dtype == np.float64


def test_same_image_shape_gives_no_warning(tmp_path):
    data = labelme([shape("osteochondroma", square(10, 10, 20, 20), "polygon")], 100, 50)
    annotation = read_annotation(write_json(tmp_path, data), image_shape=(100, 50))
    assert annotation.warnings == []
    assert (annotation.height, annotation.width) == (100, 50)


def test_two_lesions_pair_by_label_and_containment(tmp_path):
    # Shapes in a shuffled order: the second rectangle belongs to the first polygon.
    data = labelme(
        [
            shape("giant cell tumor", [[10, 10], [50, 60]], "rectangle"),
            shape("osteochondroma", square(112, 212, 148, 248), "polygon"),
            shape("osteochondroma", [[110, 210], [150, 250]], "rectangle"),
            shape("giant cell tumor", square(12, 12, 48, 58), "polygon"),
        ],
        300,
        200,
    )
    annotation = read_annotation(write_json(tmp_path, data))
    assert annotation.warnings == []
    lesions = {lesion.label: lesion for lesion in annotation.lesions}
    assert [lesion.label for lesion in annotation.lesions] == ["giant cell tumor", "osteochondroma"]
    assert lesions["giant cell tumor"].box == (10, 10, 50, 60)
    assert lesions["osteochondroma"].box == (110, 210, 150, 250)
    np.testing.assert_array_equal(lesions["osteochondroma"].polygon, square(112, 212, 148, 248))


def test_nested_lesions_with_the_same_label_pair_by_overlap(tmp_path):
    data = labelme(
        [
            shape("osteochondroma", [[0, 0], [100, 100]], "rectangle"),
            shape("osteochondroma", [[40, 40], [50, 50]], "rectangle"),
            shape("osteochondroma", square(41, 41, 49, 49), "polygon"),
            shape("osteochondroma", square(2, 2, 98, 98), "polygon"),
        ],
        200,
        200,
    )
    lesions = read_annotation(write_json(tmp_path, data)).lesions
    assert len(lesions) == 2
    by_box = {lesion.box: lesion for lesion in lesions}
    np.testing.assert_array_equal(by_box[(0, 0, 100, 100)].polygon, square(2, 2, 98, 98))
    np.testing.assert_array_equal(by_box[(40, 40, 50, 50)].polygon, square(41, 41, 49, 49))


def test_box_only_and_polygon_only_lesions(tmp_path):
    data = labelme(
        [
            shape("simple bone cyst", [[30, 40], [10, 20]], "rectangle"),  # corners reversed
            shape("other bt", square(100, 100, 120, 130), "polygon"),
        ],
        300,
        300,
    )
    box_only, polygon_only = read_annotation(write_json(tmp_path, data)).lesions
    assert box_only.label == "simple bone cyst"
    assert box_only.polygon is None
    assert box_only.box == (10, 20, 30, 40)
    assert polygon_only.box == (100, 100, 121, 131)  # the polygon's box, last pixel + 1


def test_differently_labelled_rectangle_around_a_polygon_is_paired_with_a_warning(tmp_path):
    data = labelme(
        [
            shape("osteosarcoma", [[10, 10], [50, 50]], "rectangle"),
            shape("Osteosarcoma ", square(12, 12, 48, 48), "polygon"),  # case and space differ
            shape("other mt", [[100, 100], [150, 150]], "rectangle"),
            shape("osteosarcoma", square(102, 102, 148, 148), "polygon"),
        ],
        200,
        200,
    )
    annotation = read_annotation(write_json(tmp_path, data))
    assert [(lesion.label, lesion.box) for lesion in annotation.lesions] == [
        ("Osteosarcoma", (10, 10, 50, 50)),
        ("osteosarcoma", (100, 100, 150, 150)),
    ]
    assert len(annotation.warnings) == 2
    assert "polygon's label is kept" in annotation.warnings[1]


def test_lesion_bounding_box_falls_back_to_the_polygon():
    assert Lesion("t", square(1, 2, 3, 4), None).bounding_box() == (1, 2, 4, 5)
    assert Lesion("t", square(1, 2, 3, 4), (0, 0, 9, 9)).bounding_box() == (0, 0, 9, 9)


def test_points_outside_the_image_are_clipped_with_a_warning(tmp_path):
    data = labelme(
        [
            shape("osteosarcoma", [[-20, 10], [60, 120]], "rectangle"),
            shape("osteosarcoma", [[-5, 10], [55, 10], [55, 130], [20, 90]], "polygon"),
        ],
        100,
        50,
    )
    annotation = read_annotation(write_json(tmp_path, data))
    [lesion] = annotation.lesions
    assert lesion.box == (0, 10, 50, 100)
    np.testing.assert_array_equal(lesion.polygon, [[0, 10], [49, 10], [49, 99], [20, 90]])
    assert len(annotation.warnings) == 1
    assert "clipped" in annotation.warnings[0] and "shapes 0, 1" in annotation.warnings[0]


def test_points_on_the_border_are_not_reported(tmp_path):
    data = labelme([shape("osteosarcoma", [[0, 0], [50, 100]], "rectangle")], 100, 50)
    annotation = read_annotation(write_json(tmp_path, data))
    assert annotation.warnings == []
    assert annotation.lesions[0].box == (0, 0, 50, 100)


def test_size_mismatch_scales_points_and_warns(tmp_path):
    data = labelme(
        [
            shape("osteosarcoma", [[10, 20], [30, 40]], "rectangle"),
            shape("osteosarcoma", [[10, 20], [29, 20], [29, 39]], "polygon"),
        ],
        height=200,
        width=100,
    )
    annotation = read_annotation(write_json(tmp_path, data), image_shape=(400, 200))
    assert (annotation.height, annotation.width) == (400, 200)
    [lesion] = annotation.lesions
    # Box edges scale by 2; pixel centres (x + 0.5) * 2 - 0.5.
    assert lesion.box == (20, 40, 60, 80)
    np.testing.assert_array_equal(lesion.polygon, [[20.5, 40.5], [58.5, 40.5], [58.5, 78.5]])
    [warning] = annotation.warnings
    assert "100x200" in warning and "200x400" in warning and "scaled" in warning


def test_swapped_size_warning_mentions_exif(tmp_path):
    data = labelme([shape("osteosarcoma", [[1, 1], [5, 5]], "rectangle")], 200, 100)
    annotation = read_annotation(write_json(tmp_path, data), image_shape=(100, 200))
    assert "EXIF" in annotation.warnings[0]


def test_unknown_shape_types_are_listed_not_fatal(tmp_path):
    data = labelme(
        [
            shape("osteosarcoma", [[10, 10], [20, 20]], "line"),
            shape("osteosarcoma", [[10, 10]], "point"),
            shape("osteosarcoma", [[15, 15]], "point"),
            shape("osteosarcoma", [[10, 10], [20, 20]], "mask"),
            shape("osteosarcoma", [[30, 30], [40, 40]], "rectangle"),
        ],
        100,
        100,
    )
    annotation = read_annotation(write_json(tmp_path, data))
    assert [lesion.box for lesion in annotation.lesions] == [(30, 30, 40, 40)]
    [warning] = annotation.warnings
    assert "ignored 4 shapes" in warning
    assert "line (1)" in warning and "mask (1)" in warning and "point (2)" in warning


def test_circle_becomes_a_polygon(tmp_path):
    data = labelme([shape("osteofibroma", [[50, 50], [70, 50]], "circle")], 100, 100)
    annotation = read_annotation(write_json(tmp_path, data))
    [lesion] = annotation.lesions
    assert lesion.polygon.shape == (64, 2)
    np.testing.assert_allclose(np.hypot(*(lesion.polygon - 50).T), 20.0)
    assert "circle" in annotation.warnings[0]
    area = lesions_mask(annotation.lesions, (100, 100)).sum()
    assert abs(area - np.pi * 20**2) / (np.pi * 20**2) < 0.08


def test_two_point_polygon_falls_back_to_its_rectangle(tmp_path):
    data = labelme(
        [
            shape("osteosarcoma", [[10, 10], [40, 40]], "rectangle"),
            shape("osteosarcoma", [[12, 12], [38, 38]], "polygon"),
        ],
        100,
        100,
    )
    annotation = read_annotation(write_json(tmp_path, data))
    [lesion] = annotation.lesions
    assert lesion.polygon is None and lesion.box == (10, 10, 40, 40)
    [warning] = annotation.warnings
    assert "has 2 points" in warning and "rectangle is used" in warning


def test_two_point_polygon_without_rectangle_is_ignored(tmp_path):
    data = labelme([shape("osteosarcoma", [[12, 12], [38, 38]], "polygon")], 100, 100)
    annotation = read_annotation(write_json(tmp_path, data))
    assert annotation.lesions == []
    assert "ignored" in annotation.warnings[0]


def test_no_shapes_means_no_lesions(tmp_path):
    annotation = read_annotation(write_json(tmp_path, labelme([], 10, 10)))
    assert annotation.lesions == [] and annotation.warnings == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"version": "5.4.1", "shapes": [', "is not valid JSON"),
        ("[1, 2, 3]", "JSON array where a LabelMe object is expected"),
        ('{"shapes": {"a": 1}, "imageHeight": 10, "imageWidth": 10}', "not a list"),
        ('{"imageHeight": 10, "imageWidth": 10}', "no 'shapes' list"),
        ('{"shapes": ["x"], "imageHeight": 10, "imageWidth": 10}', "shape 0 is a JSON string"),
        ("", "is empty"),
    ],
)
def test_malformed_files_raise_annotation_error(tmp_path, content, expected):
    path = write_json(tmp_path, content, name="IMG000007.json")
    with pytest.raises(AnnotationError) as caught:
        read_annotation(path)
    message = str(caught.value)
    assert expected in message
    assert "IMG000007.json" in message
    assert caught.value.fix


def test_syntax_error_names_line_and_column(tmp_path):
    path = write_json(tmp_path, '{\n  "shapes": [,]\n}')
    with pytest.raises(AnnotationError, match=r"line 2, column 14"):
        read_annotation(path)


def test_points_that_are_not_numbers_raise(tmp_path):
    data = labelme([shape("osteosarcoma", [["a", 1], [2, 3]], "rectangle")], 10, 10)
    with pytest.raises(AnnotationError, match=r"shape 0 \('osteosarcoma'\) has points"):
        read_annotation(write_json(tmp_path, data))


def test_missing_image_size_needs_the_image_shape(tmp_path):
    data = labelme([shape("osteosarcoma", [[1, 1], [5, 5]], "rectangle")])
    del data["imageHeight"]
    path = write_json(tmp_path, data)
    with pytest.raises(AnnotationError, match="no valid image size") as caught:
        read_annotation(path)
    assert "imageHeight" in caught.value.fix
    annotation = read_annotation(path, image_shape=(20, 30))
    assert (annotation.height, annotation.width) == (20, 30)
    assert "no valid image size" in annotation.warnings[0]
    assert annotation.lesions[0].box == (1, 1, 5, 5)


def test_missing_file_raises(tmp_path):
    with pytest.raises(AnnotationError, match="does not exist"):
        read_annotation(tmp_path / "IMG000404.json")


def test_parse_annotation_of_an_upload():
    data = labelme([shape("osteosarcoma", [[1, 1], [5, 5]], "rectangle")], 10, 10)
    annotation = parse_annotation(data, where="upload")
    assert annotation.path == "upload" and len(annotation.lesions) == 1


# Masks -----------------------------------------------------------------------------------------


def test_box_mask_covers_x0_to_x1_minus_one():
    mask = lesions_mask([Lesion("t", None, (2, 3, 6, 8))], (10, 12))
    assert mask.shape == (10, 12) and mask.dtype == np.uint8
    assert mask.sum() == 4 * 5
    expected = np.zeros((10, 12), np.uint8)
    expected[3:8, 2:6] = 1
    np.testing.assert_array_equal(mask, expected)


def test_polygon_mask_includes_its_outline_pixels():
    polygon = square(2, 3, 5, 7)
    mask = lesions_mask([Lesion("t", polygon, None)], (10, 12))
    assert mask.sum() == 4 * 5
    np.testing.assert_array_equal(mask, lesions_mask([Lesion("t", None, (2, 3, 6, 8))], (10, 12)))
    assert polygon_box(np.array(polygon)) == (2, 3, 6, 8)


def test_triangle_mask_has_the_hand_counted_pixels():
    # Right triangle with legs of 4 pixels: rows 0..4 hold 1, 2, 3, 4, 5 pixels.
    mask = lesions_mask([Lesion("t", [[0, 0], [0, 4], [4, 4]], None)], (6, 6))
    assert mask.sum() == 15
    np.testing.assert_array_equal(mask[:5, :5], np.tril(np.ones((5, 5), np.uint8)))


def test_polygon_wins_over_box_and_lesions_add_up():
    lesions = [
        Lesion("a", square(0, 0, 1, 1), (0, 0, 10, 10)),  # the polygon (4 px), not the box
        Lesion("b", None, (5, 5, 7, 6)),  # 2 px
    ]
    assert lesions_mask(lesions, (10, 10)).sum() == 4 + 2


def test_target_shape_rescales_coordinates():
    box = Lesion("t", None, (2, 3, 6, 8))
    mask = lesions_mask([box], (10, 12), target_shape=(20, 24))
    expected = np.zeros((20, 24), np.uint8)
    expected[6:16, 4:12] = 1
    np.testing.assert_array_equal(mask, expected)

    full = np.zeros((600, 1000), np.uint8)
    cv2.ellipse(full, (500, 300), (200, 120), 20, 0, 360, 1, -1)
    lesions = mask_to_lesions(full)
    small = lesions_mask(lesions, (600, 1000), target_shape=(150, 250))
    reference = cv2.resize(full.astype(np.float32), (250, 150), interpolation=cv2.INTER_AREA) >= 0.5
    assert iou(small, reference) > 0.97


def test_mask_to_lesions_of_a_rectangle():
    mask = np.zeros((10, 12), np.uint8)
    mask[3:8, 2:6] = 1
    [lesion] = mask_to_lesions(mask, label="osteochondroma")
    assert lesion.label == "osteochondroma"
    assert lesion.box == (2, 3, 6, 8)
    assert sorted(map(tuple, lesion.polygon.tolist())) == sorted(map(tuple, square(2, 3, 5, 7)))


def test_mask_to_lesions_drops_small_regions_and_fills_holes():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:9, 2:9] = 1
    mask[4:7, 4:7] = 0  # a hole
    mask[15, 15] = 1
    assert len(mask_to_lesions(mask)) == 2
    [lesion] = mask_to_lesions(mask, min_area=2)
    assert lesion.box == (2, 2, 9, 9)
    assert lesions_mask([lesion], mask.shape).sum() == 49


def multi_blob_mask():
    mask = np.zeros((600, 1000), np.uint8)
    cv2.circle(mask, (150, 150), 60, 1, -1)
    cv2.ellipse(mask, (600, 350), (180, 70), 35, 0, 360, 1, -1)
    cv2.fillPoly(mask, [np.array([[850, 50], [980, 120], [900, 260], [820, 180]], np.int32)], 1)
    mask[500:540, 100:300] = 1
    mask[580, 900] = 1  # a one-pixel region
    for step in range(6):  # a diagonal line of pixels
        mask[450 + step, 800 + step] = 1
    return mask


def test_round_trip_mask_to_labelme_and_back(tmp_path):
    mask = multi_blob_mask()
    lesions = mask_to_lesions(mask, label="osteosarcoma")
    assert len(lesions) == 6
    path = tmp_path / "Annotations" / "IMG000002.json"
    write_annotation(path, lesions, "IMG000002.jpeg", 600, 1000)
    annotation = read_annotation(path, image_shape=(600, 1000))
    assert annotation.warnings == []
    assert len(annotation.lesions) == len(lesions)
    assert {lesion.label for lesion in annotation.lesions} == {"osteosarcoma"}
    restored = lesions_mask(annotation.lesions, (annotation.height, annotation.width))
    assert iou(restored, mask) >= 0.98
    np.testing.assert_array_equal(restored, mask)  # hole-free regions come back exactly
    assert [lesion.box for lesion in annotation.lesions] == [lesion.box for lesion in lesions]


def test_json_is_written_as_btxrd_writes_it(tmp_path):
    lesions = [
        Lesion("osteosarcoma", [[901.0, 360.5], [1090.2, 402.7], [1050.6, 1170.9]], None),
        Lesion("other mt", None, (10, 20, 30, 40)),
    ]
    data = annotation_to_json(lesions, "IMG000002.jpeg", 3032, 1640)
    assert list(data) == [
        "version",
        "flags",
        "shapes",
        "imagePath",
        "imageData",
        "imageHeight",
        "imageWidth",
    ]
    assert data["version"] == "5.4.1" and data["imageData"] is None
    assert (data["imageHeight"], data["imageWidth"]) == (3032, 1640)
    assert [(s["label"], s["shape_type"]) for s in data["shapes"]] == [
        ("osteosarcoma", "rectangle"),
        ("osteosarcoma", "polygon"),
        ("other mt", "rectangle"),
    ]
    first = data["shapes"][0]
    assert first == shape("osteosarcoma", [[901.0, 360.5], [1091.2, 1171.9]], "rectangle")
    assert data["shapes"][2]["points"] == [[10.0, 20.0], [30.0, 40.0]]

    path = tmp_path / "IMG000002.json"
    path.write_text("old content")
    write_annotation(path, lesions, "IMG000002.jpeg", 3032, 1640)
    assert json.loads(path.read_text()) == data
    assert [p.name for p in tmp_path.iterdir()] == ["IMG000002.json"]  # no temporary file left


def test_lesion_needs_three_polygon_points():
    with pytest.raises(ValueError, match="at least 3 points"):
        Lesion("t", [[0, 0], [1, 1]], None)
    with pytest.raises(ValueError, match="polygon, a box or both"):
        Lesion("t", None, None)
