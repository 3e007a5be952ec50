"""LabelMe 5.x annotations as BTXRD writes them: lesions, masks, and back.

Coordinate convention (the one LabelMe, PIL and OpenCV rasterisers use):

- A point (x, y) is in original image pixels, x to the right, y down; the centre of the pixel at
  row r, column c is (x=c, y=r).
- A polygon covers the pixels on or inside its outline (``cv2.fillPoly``).
- A box (x0, y0, x1, y1) covers columns x0 .. x1-1 and rows y0 .. y1-1: x1, y1 are the last pixel
  + 1, so a box's width is x1 - x0 pixels and the whole image is (0, 0, width, height).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from btseg.errors import AnnotationError, read_file_bytes
from btseg.outputs import atomic_write_bytes, json_bytes

LABELME_VERSION = "5.4.1"


@dataclass(frozen=True, eq=False)
class Lesion:
    """One lesion: its label, outline and box, in original image pixels.

    Attributes:
        label: the shape label (in BTXRD the tumour subtype, e.g. "osteosarcoma").
        polygon: (N, 2) float64 x, y vertices, N >= 3, or None for a box-only lesion.
        box: (x0, y0, x1, y1) with x1, y1 the last pixel + 1, or None (then the polygon's box
            is used when writing).
    """

    label: str
    polygon: np.ndarray | None
    box: tuple[float, float, float, float] | None

    def __post_init__(self) -> None:
        if self.polygon is not None:
            polygon = np.asarray(self.polygon, dtype=np.float64).reshape(-1, 2)
            if len(polygon) < 3:
                raise ValueError(f"a lesion polygon needs at least 3 points, got {len(polygon)}")
            object.__setattr__(self, "polygon", polygon)
        if self.box is not None:
            box = tuple(float(value) for value in self.box)
            if len(box) != 4:
                raise ValueError(f"a lesion box needs 4 numbers (x0, y0, x1, y1), got {len(box)}")
            object.__setattr__(self, "box", box)
        if self.polygon is None and self.box is None:
            raise ValueError("a lesion needs a polygon, a box or both")

    def bounding_box(self) -> tuple[float, float, float, float]:
        """The box if there is one, else the polygon's box (x1, y1 = last pixel + 1)."""
        if self.box is not None:
            return self.box
        return polygon_box(self.polygon)


@dataclass
class Annotation:
    """The lesions of one LabelMe file and what was wrong with it but could be repaired."""

    path: str
    lesions: list[Lesion]
    height: int
    width: int
    warnings: list[str] = field(default_factory=list)


def polygon_box(polygon: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the pixels a polygon covers: x1, y1 = last pixel + 1."""
    polygon = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x0, y0 = polygon.min(axis=0)
    x1, y1 = polygon.max(axis=0)
    return (float(x0), float(y0), float(x1) + 1.0, float(y1) + 1.0)


def _shape_dict(label: str, points: list[list[float]], shape_type: str) -> dict:
    return {
        "label": label,
        "points": points,
        "group_id": None,
        "description": "",
        "shape_type": shape_type,
        "flags": {},
        "mask": None,
    }


def _coordinate(value: float) -> float:
    return round(float(value), 3)


def annotation_to_json(lesions: list[Lesion], image_path: str, height: int, width: int) -> dict:
    """LabelMe 5.x dict as BTXRD writes it: per lesion one rectangle, then one polygon.

    A box-only lesion gets only its rectangle; a polygon-only lesion gets its polygon's box as
    rectangle. ``image_path`` is stored as given (BTXRD stores the bare file name).
    """
    shapes = []
    for lesion in lesions:
        x0, y0, x1, y1 = lesion.bounding_box()
        rectangle = [[_coordinate(x0), _coordinate(y0)], [_coordinate(x1), _coordinate(y1)]]
        shapes.append(_shape_dict(lesion.label, rectangle, "rectangle"))
        if lesion.polygon is not None:
            points = [[_coordinate(x), _coordinate(y)] for x, y in lesion.polygon]
            shapes.append(_shape_dict(lesion.label, points, "polygon"))
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": str(image_path),
        "imageData": None,
        "imageHeight": int(height),
        "imageWidth": int(width),
    }


def write_annotation(
    path: str | Path, lesions: list[Lesion], image_path: str, height: int, width: int
) -> None:
    """Write a LabelMe JSON file atomically (temporary file in the same folder, then rename)."""
    atomic_write_bytes(path, json_bytes(annotation_to_json(lesions, image_path, height, width)))


# Reading ---------------------------------------------------------------------------------------

LESION_SHAPE_TYPES = ("rectangle", "polygon", "circle")
CIRCLE_VERTICES = 64
# A point may sit up to this many pixels beyond the border without a warning: LabelMe lets
# annotators click on the very edge of the canvas.
_BORDER_TOLERANCE = 1.0
_FIX_RESAVE = "Re-save the file from LabelMe (5.x), or fix it in a text editor"


@dataclass
class _Shape:
    order: int
    label: str
    points: np.ndarray  # (N, 2) float64


def read_annotation(path: str | Path, image_shape: tuple[int, int] | None = None) -> Annotation:
    """Read a LabelMe JSON file into lesions in the real image's pixels.

    Args:
        path: the JSON file.
        image_shape: (height, width) of the real image; when given and the JSON's
            imageHeight/imageWidth differ, points are scaled to it (with a warning).

    Raises:
        AnnotationError: the file is missing, unreadable, not JSON, or not a LabelMe object
            (message names the file, the problem and the fix).
    """
    path = Path(path)
    where = str(path)
    raw = read_file_bytes(
        path,
        AnnotationError,
        where=where,
        name="the annotation file",
        kind="a LabelMe JSON file",
        point_to="the .json file",
    )
    if not raw.strip():
        raise AnnotationError(
            "is empty (no JSON in it)",
            where=where,
            fix="Re-save the annotation from LabelMe, or delete the file if the image has no lesion",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AnnotationError(
            "is not UTF-8 text, so it is not a LabelMe JSON file", where=where, fix=_FIX_RESAVE
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnnotationError(
            f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})",
            where=where,
            fix=_FIX_RESAVE,
        ) from None
    return parse_annotation(data, image_shape=image_shape, where=where)


def parse_annotation(
    data: object, image_shape: tuple[int, int] | None = None, where: str = "annotation"
) -> Annotation:
    """Turn an already-decoded LabelMe JSON value into an Annotation (see read_annotation).

    ``where`` names the source in messages (a path, or "upload").
    """
    if not isinstance(data, dict):
        raise AnnotationError(
            f"holds a JSON {_json_type(data)} where a LabelMe object is expected",
            where=where,
            fix="A LabelMe file is one JSON object with 'shapes', 'imageHeight' and "
            "'imageWidth'; re-save it from LabelMe (5.x)",
        )
    shapes = data.get("shapes")
    if not isinstance(shapes, list):
        problem = (
            "has no 'shapes' list"
            if shapes is None
            else f"has 'shapes' as a JSON {_json_type(shapes)}, not a list"
        )
        raise AnnotationError(problem, where=where, fix=_FIX_RESAVE)

    warnings: list[str] = []
    json_height, json_width, height, width = _sizes(data, image_shape, where, warnings)
    scale_x, scale_y = width / json_width, height / json_height

    polygons: list[_Shape] = []
    rectangles: list[_Shape] = []
    unknown: dict[str, int] = {}
    circles = 0
    clipped_shapes: list[int] = []
    for index, shape in enumerate(shapes):
        if not isinstance(shape, dict):
            raise AnnotationError(
                f"shape {index} is a JSON {_json_type(shape)}, not an object",
                where=where,
                fix=_FIX_RESAVE,
            )
        shape_type = shape.get("shape_type") or "polygon"  # LabelMe < 4 wrote no shape_type
        label = "" if shape.get("label") is None else str(shape.get("label")).strip()
        if shape_type not in LESION_SHAPE_TYPES:
            unknown[str(shape_type)] = unknown.get(str(shape_type), 0) + 1
            continue
        points = _points(shape.get("points"), index, label, where)
        if shape_type == "circle":
            points = _circle_polygon(points, index, label, warnings)
            if points is None:
                continue
            circles += 1
        if shape_type == "rectangle":
            points = points * (scale_x, scale_y)  # box corners scale as edges
            limit = (width, height)
        else:
            points = (points + 0.5) * (scale_x, scale_y) - 0.5  # pixel centres
            limit = (width - 1, height - 1)
        if len(points) and (
            (points < -_BORDER_TOLERANCE).any() or (points > np.add(limit, _BORDER_TOLERANCE)).any()
        ):
            clipped_shapes.append(index)
        points = np.clip(points, 0.0, limit)
        target = rectangles if shape_type == "rectangle" else polygons
        target.append(_Shape(index, label, points))

    if clipped_shapes:
        warnings.append(
            f"points outside the {width}x{height} image were clipped to its border "
            f"(shape{'s' if len(clipped_shapes) > 1 else ''} "
            f"{', '.join(str(index) for index in clipped_shapes)})"
        )
    if circles:
        warnings.append(
            f"{circles} circle shape{'s were' if circles > 1 else ' was'} read as "
            f"{CIRCLE_VERTICES}-point polygons"
        )
    if unknown:
        listed = ", ".join(f"{name} ({count})" for name, count in sorted(unknown.items()))
        warnings.append(
            f"ignored {sum(unknown.values())} shape{'s' if sum(unknown.values()) > 1 else ''} "
            f"of types that do not outline a lesion: {listed}; only rectangle, polygon and "
            "circle are read"
        )

    lesions = _pair(polygons, rectangles, warnings)
    return Annotation(where, lesions, height, width, warnings)


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _positive_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not np.isfinite(value) or value < 1 or value != int(value):
        return None
    return int(value)


def _sizes(
    data: dict, image_shape: tuple[int, int] | None, where: str, warnings: list[str]
) -> tuple[int, int, int, int]:
    """(json_height, json_width, height, width): the size the points use and the real size."""
    json_height = _positive_int(data.get("imageHeight"))
    json_width = _positive_int(data.get("imageWidth"))
    if image_shape is not None:
        height, width = (int(value) for value in image_shape[:2])
        if height < 1 or width < 1:
            raise ValueError(f"image_shape must be positive (height, width), got {image_shape}")
    if json_height is None or json_width is None:
        got = f"imageHeight={data.get('imageHeight')!r}, imageWidth={data.get('imageWidth')!r}"
        if image_shape is None:
            raise AnnotationError(
                f"has no valid image size ({got})",
                where=where,
                fix="Add imageHeight and imageWidth (the image's size in pixels) or re-save the "
                "file from LabelMe with the image open",
            )
        warnings.append(
            f"no valid image size in the JSON ({got}); used the image's {width}x{height}"
        )
        return height, width, height, width
    if image_shape is None or (json_height, json_width) == (height, width):
        return json_height, json_width, json_height, json_width
    note = (
        " (width and height are swapped: the image may have been rotated by its EXIF orientation)"
        if (json_height, json_width) == (width, height)
        else ""
    )
    warnings.append(
        f"the JSON describes a {json_width}x{json_height} image but the image is "
        f"{width}x{height} (width x height); points were scaled to the image{note}"
    )
    return json_height, json_width, height, width


def _points(value: object, index: int, label: str, where: str) -> np.ndarray:
    """Validate LabelMe points: a list of [x, y] number pairs -> (N, 2) float64."""
    valid = isinstance(value, list) and all(
        isinstance(point, list | tuple)
        and len(point) == 2
        and all(
            isinstance(coordinate, int | float) and not isinstance(coordinate, bool)
            for coordinate in point
        )
        for point in value
    )
    points = np.asarray(value, dtype=np.float64).reshape(-1, 2) if valid else None
    if points is None or not np.isfinite(points).all():
        shown = json.dumps(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise AnnotationError(
            f"shape {index} ({label!r}) has points that are not [x, y] number pairs: {shown}",
            where=where,
            fix="Each point must be two numbers, e.g. [885.9, 343.2]; fix the file or redraw "
            "the shape in LabelMe",
        )
    return points


def _circle_polygon(
    points: np.ndarray, index: int, label: str, warnings: list[str]
) -> np.ndarray | None:
    """A LabelMe circle (centre, a point on the rim) as a polygon; None if degenerate."""
    if len(points) != 2 or np.allclose(points[0], points[1]):
        warnings.append(f"circle shape {index} ({label!r}) has no radius; ignored")
        return None
    radius = float(np.hypot(*(points[1] - points[0])))
    angles = np.linspace(0.0, 2.0 * np.pi, CIRCLE_VERTICES, endpoint=False)
    return points[0] + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _rectangle_box(points: np.ndarray) -> tuple[float, float, float, float] | None:
    if len(points) < 2:
        return None
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    if x1 <= x0 or y1 <= y0:
        return None
    return (float(x0), float(y0), float(x1), float(y1))


def _box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    intersection = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union if union > 0 else 0.0


def _inside_fraction(points: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Share of a polygon's vertices inside a box widened by 2 px + 2 % of its size."""
    if len(points) == 0:
        return 0.0
    x0, y0, x1, y1 = box
    margin_x = 2.0 + 0.02 * (x1 - x0)
    margin_y = 2.0 + 0.02 * (y1 - y0)
    inside = (
        (points[:, 0] >= x0 - margin_x)
        & (points[:, 0] <= x1 + margin_x)
        & (points[:, 1] >= y0 - margin_y)
        & (points[:, 1] <= y1 + margin_y)
    )
    return float(inside.mean())


def _pair(polygons: list[_Shape], rectangles: list[_Shape], warnings: list[str]) -> list[Lesion]:
    """Pair each polygon with the rectangle that contains it; the rest stand alone.

    A polygon without a rectangle gets its own box; a rectangle without a polygon is a
    box-only lesion.

    A pair needs at least half the polygon's vertices inside the rectangle and the same label;
    rectangles with another label are paired only if they hold 90 % of the vertices. Among
    candidates the same label, then containment, then box overlap decide.
    """
    boxes = [_rectangle_box(rectangle.points) for rectangle in rectangles]
    for rectangle, box in zip(rectangles, boxes, strict=True):
        if box is None:
            warnings.append(
                f"rectangle shape {rectangle.order} ({rectangle.label!r}) has no area; ignored"
            )
    candidates = []
    for polygon_index, polygon in enumerate(polygons):
        polygon_bounds = polygon_box(polygon.points) if len(polygon.points) else None
        for rectangle_index, (rectangle, box) in enumerate(zip(rectangles, boxes, strict=True)):
            if box is None or polygon_bounds is None:
                continue
            inside = _inside_fraction(polygon.points, box)
            same_label = polygon.label.casefold() == rectangle.label.casefold()
            if inside < 0.5 or (not same_label and inside < 0.9):
                continue
            overlap = _box_iou(polygon_bounds, box)
            candidates.append(
                (same_label, round(inside, 2), overlap, polygon_index, rectangle_index)
            )
    candidates.sort(key=lambda candidate: (-candidate[0], -candidate[1], -candidate[2]))
    rectangle_of: dict[int, int] = {}
    used_rectangles: set[int] = set()
    for _, _, _, polygon_index, rectangle_index in candidates:
        if polygon_index in rectangle_of or rectangle_index in used_rectangles:
            continue
        rectangle_of[polygon_index] = rectangle_index
        used_rectangles.add(rectangle_index)

    ordered: list[tuple[int, Lesion]] = []
    for polygon_index, polygon in enumerate(polygons):
        rectangle_index = rectangle_of.get(polygon_index)
        rectangle = None if rectangle_index is None else rectangles[rectangle_index]
        box = None if rectangle_index is None else boxes[rectangle_index]
        name = f"polygon shape {polygon.order} ({polygon.label!r})"
        if len(polygon.points) < 3:
            count = f"has {len(polygon.points)} point{'' if len(polygon.points) == 1 else 's'}"
            if rectangle is None:
                warnings.append(f"{name} {count} (3 needed) and no rectangle; ignored")
                continue
            warnings.append(f"{name} {count} (3 needed); its rectangle is used instead")
            ordered.append(
                (min(polygon.order, rectangle.order), Lesion(rectangle.label, None, box))
            )
            continue
        if rectangle is None:
            lesion = Lesion(polygon.label, polygon.points, polygon_box(polygon.points))
            ordered.append((polygon.order, lesion))
            continue
        if rectangle.label != polygon.label:
            warnings.append(
                f"{name} is paired with rectangle shape {rectangle.order} "
                f"({rectangle.label!r}); the polygon's label is kept"
            )
        ordered.append(
            (min(polygon.order, rectangle.order), Lesion(polygon.label, polygon.points, box))
        )
    for rectangle_index, (rectangle, box) in enumerate(zip(rectangles, boxes, strict=True)):
        if rectangle_index not in used_rectangles and box is not None:
            ordered.append((rectangle.order, Lesion(rectangle.label, None, box)))
    ordered.sort(key=lambda item: item[0])
    return [lesion for _, lesion in ordered]


# Masks -----------------------------------------------------------------------------------------


def lesions_mask(
    lesions: list[Lesion],
    shape: tuple[int, int],
    target_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Rasterise lesions into a binary mask: the polygon where there is one, else the box.

    Args:
        lesions: lesions in the pixels of an image of ``shape``.
        shape: (height, width) the lesion coordinates refer to.
        target_shape: (height, width) of the mask wanted; the coordinates (not a mask) are
            rescaled, so the mask is crisp at any size. Defaults to ``shape``.

    Returns:
        (H, W) uint8 in {0, 1}.
    """
    import cv2

    height, width = (int(value) for value in shape[:2])
    out_height, out_width = (int(value) for value in (target_shape or shape)[:2])
    if min(height, width, out_height, out_width) < 1:
        raise ValueError(f"shapes must be positive, got {shape} and {target_shape}")
    scale = np.array([out_width / width, out_height / height])
    mask = np.zeros((out_height, out_width), dtype=np.uint8)
    for lesion in lesions:
        if lesion.polygon is not None:
            points = (lesion.polygon + 0.5) * scale - 0.5
            fixed = np.round(points * 256.0).astype(np.int64)
            fixed = np.clip(fixed, -(2**30), 2**30).astype(np.int32)
            cv2.fillPoly(mask, [fixed.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=8)
        else:
            x0, y0, x1, y1 = np.asarray(lesion.box) * np.tile(scale, 2)
            # Pixel c is covered when its centre lies in [x0 - 0.5, x1 - 0.5).
            column0, row0 = max(0, int(np.ceil(x0 - 0.5))), max(0, int(np.ceil(y0 - 0.5)))
            column1, row1 = int(np.ceil(x1 - 0.5)), int(np.ceil(y1 - 0.5))
            if column1 > column0 and row1 > row0:
                mask[row0:row1, column0:column1] = 1
    return mask


def mask_to_lesions(mask: np.ndarray, label: str = "tumor", min_area: int = 1) -> list[Lesion]:
    """Outline each connected region of a mask as a lesion (polygon + box).

    Regions are 8-connected; holes are filled (LabelMe polygons have none). The polygon is the
    region's outer boundary through the centres of its border pixels with only collinear points
    dropped, so ``lesions_mask`` reproduces each hole-free region exactly.

    Args:
        mask: (H, W) array; non-zero is lesion.
        label: label of every lesion.
        min_area: regions with fewer pixels (holes included) are dropped.

    Returns:
        lesions ordered top to bottom, then left to right.
    """
    import cv2

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    binary = (mask > 0).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    lesions = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        local = np.zeros((h, w), dtype=np.uint8)
        cv2.drawContours(local, [contour - np.array([x, y], dtype=contour.dtype)], -1, 1, -1)
        if int(local.sum()) < min_area:
            continue
        points = contour.reshape(-1, 2).astype(np.float64)
        if len(points) < 3:  # one pixel, or a line of pixels: repeat the end to make a polygon
            points = np.concatenate([points, np.repeat(points[-1:], 3 - len(points), axis=0)])
        lesions.append(Lesion(label, points, (float(x), float(y), float(x + w), float(y + h))))
    lesions.sort(key=lambda lesion: (lesion.box[1], lesion.box[0]))
    return lesions
