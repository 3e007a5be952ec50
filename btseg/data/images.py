"""Decoding radiographs (JPEG, PNG, DICOM) into display-ready grayscale, and the letterbox transform.

``preprocess`` / ``postprocess`` are the one geometric transform shared by training and
inference: keep the aspect ratio, scale the longest side to ``size``, pad evenly with zeros;
``postprocess`` crops the padding and resizes back, its exact inverse.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from btseg.errors import ImageError, read_file_bytes

MAX_PIXELS = 60_000_000
ACCEPTED_FORMATS = "JPEG (.jpeg, .jpg), PNG (.png) or DICOM (.dcm)"

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_SUFFIXES = (".jpeg", ".jpg", ".jpe", ".jfif")
_FIX_DAMAGED = (
    "Copy the file again from the original dataset, or open it in an image viewer and "
    "re-export it as PNG or JPEG"
)


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded radiograph.

    Attributes:
        pixels: (H, W) uint8 grayscale, display-ready (VOI LUT or window applied, MONOCHROME1
            inverted, EXIF orientation applied, 16-bit data scaled by its min/max or window).
        source: the file name, or "upload".
        format: "JPEG", "PNG" or "DICOM" (from the content, not the extension).
        bit_depth: bits of the stored samples (8, 16, 12 ...).
        pixel_spacing_mm: (row, column) millimetres per pixel, DICOM only, else None.
        original_mode: PIL mode ("L", "RGB", "RGBA", "I;16", "P" ...) or the DICOM photometric
            interpretation ("MONOCHROME1", "MONOCHROME2", "RGB" ...).
        notes: what was done to the data that a user may want to know (alpha composited, EXIF
            rotation, extension that does not match the content, first frame only, how more
            than 8 bits were mapped, MONOCHROME1 inverted ...).
        modality: the DICOM Modality ("DX", "CT" ...; "" when the file has none), None for
            JPEG and PNG.
        study_uid, patient_id: the DICOM StudyInstanceUID and PatientID ("" for other files),
            which group the views of one examination.
    """

    pixels: np.ndarray
    source: str
    format: str
    bit_depth: int
    pixel_spacing_mm: tuple[float, float] | None
    original_mode: str
    notes: tuple[str, ...] = ()
    modality: str | None = None
    study_uid: str = ""
    patient_id: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))


def read_image(source: str | Path | bytes, name: str | None = None) -> DecodedImage:
    """Decode a JPEG, PNG or DICOM radiograph into (H, W) uint8 grayscale plus metadata.

    The format is detected from the content, not the extension.

    Args:
        source: a path, or the file's bytes (an upload).
        name: the file name to report (and, for bytes, to check a ".dcm" extension against);
            defaults to the path's name, or "upload" for bytes.

    Raises:
        ImageError: the file is missing, empty, not an accepted image, damaged, larger than
            MAX_PIXELS pixels, or a DICOM file without pixel data (``where`` = the file name).
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        label = name or "upload"
    else:
        path = Path(source)
        label = name or path.name
        data = read_file_bytes(
            path,
            ImageError,
            where=label,
            name="the image file",
            kind="an image file",
            point_to="an image file",
        )
    if not data:
        raise ImageError(
            "is empty (0 bytes)",
            where=label,
            fix="Copy the file again from the original dataset; an interrupted download or "
            "copy leaves empty files",
        )

    suffix = Path(label).suffix.lower()
    if data.startswith(_JPEG_MAGIC):
        kind = "JPEG"
    elif data.startswith(_PNG_MAGIC):
        kind = "PNG"
    elif data[128:132] == b"DICM":
        return _read_dicom(data, label, force=False)
    elif suffix == ".dcm":
        return _read_dicom(data, label, force=True)
    else:
        raise ImageError(
            f"is not an image btseg can read: {_describe(data)}",
            where=label,
            fix=f"Use {ACCEPTED_FORMATS}; convert other formats, e.g. to PNG",
        )
    notes = []
    expected = {"JPEG": _JPEG_SUFFIXES, "PNG": (".png",)}[kind]
    if suffix and suffix not in expected:
        notes.append(f"the file is a {kind} despite its {suffix} extension")
    return _read_pil(data, label, kind, notes)


def _describe(data: bytes) -> str:
    """A short guess of what a non-image file is, for the error message."""
    head = data[:64]
    signatures = (
        (b"%PDF", "it looks like a PDF document"),
        (b"GIF8", "it looks like a GIF image"),
        (b"BM", "it looks like a BMP image"),
        (b"II*\x00", "it looks like a TIFF image"),
        (b"MM\x00*", "it looks like a TIFF image"),
        (b"\x00\x00\x00\x0cjP  ", "it looks like a JPEG 2000 image"),
        (b"\xff\x4f\xff\x51", "it looks like a JPEG 2000 codestream"),
        (b"PK\x03\x04", "it looks like a ZIP archive (or an Office document)"),
        (b"\x1f\x8b", "it looks like a gzip archive"),
    )
    for magic, description in signatures:
        if head.startswith(magic):
            return description
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "it looks like a WebP image"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "it looks like a HEIC/AVIF image"
    try:
        text = data[:2048].decode("utf-8")
    except UnicodeDecodeError:
        return "its content matches no known image format"
    stripped = text.lstrip("\ufeff \t\r\n").lower()
    if stripped.startswith(("<!doctype html", "<html")):
        return "it looks like an HTML page (a failed download?)"
    if stripped.startswith(("{", "[")):
        return "it looks like JSON text"
    return "it looks like a text file"


# PIL (JPEG, PNG) -------------------------------------------------------------------------------


def _header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the PNG IHDR or the JPEG SOF marker, without decoding."""
    if kind == "PNG":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return None
    start_of_frame = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            index += 2
            continue
        if marker in start_of_frame:
            if index + 9 > len(data):
                return None
            height = int.from_bytes(data[index + 5 : index + 7], "big")
            width = int.from_bytes(data[index + 7 : index + 9], "big")
            return width, height
        index += 2 + int.from_bytes(data[index + 2 : index + 4], "big")
    return None


def _refuse_if_too_large(width: int, height: int, label: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), more than the "
            f"{MAX_PIXELS / 1e6:.0f} megapixels btseg accepts",
            where=label,
            fix="Downscale the image (radiographs need no more than a few thousand pixels a "
            "side) and try again",
        )


def _read_pil(data: bytes, label: str, kind: str, notes: list[str]) -> DecodedImage:
    from PIL import Image, ImageOps

    size = _header_size(data, kind)
    if size is not None:
        _refuse_if_too_large(*size, label)
    damaged = ImageError(
        f"is a damaged {kind} file that cannot be decoded", where=label, fix=_FIX_DAMAGED
    )
    with warnings.catch_warnings():
        # Our own MAX_PIXELS check replaces PIL's decompression-bomb warning.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as error:
            raise ImageError(
                f"is too large to decode safely ({error})",
                where=label,
                fix="Downscale the image and try again",
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise damaged from None
        _refuse_if_too_large(*image.size, label)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError):
            raise damaged from None
    original_mode = image.mode
    bit_depth = _pil_bit_depth(image, data, kind)

    try:
        orientation = int(image.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not make a readable image unreadable
        orientation = 1
    if 2 <= orientation <= 8:
        try:
            transposed = ImageOps.exif_transpose(image)
            if transposed is not None:
                image = transposed
                notes.append(f"turned upright from EXIF orientation {orientation}")
        except Exception:
            notes.append(f"EXIF orientation {orientation} could not be applied; shown as stored")

    pixels = _pil_to_gray(image, notes, bit_depth)
    # Alike in shape to btseg/predict.py:compose_prediction on purpose: both fill a dataclass by
    # keyword, field by field.
    return DecodedImage(
        pixels=pixels,
        source=label,
        format=kind,
        bit_depth=bit_depth,
        pixel_spacing_mm=None,
        original_mode=original_mode,
        notes=tuple(notes),
    )


def _pil_bit_depth(image, data: bytes, kind: str) -> int:
    if kind == "PNG" and len(data) >= 25 and data[12:16] == b"IHDR":
        return int(data[24])
    if image.mode == "1":
        return 1
    if image.mode.startswith("I;16"):
        return 16
    if image.mode in ("I", "F"):
        return 32
    return 8


def _pil_to_gray(image, notes: list[str], bit_depth: int = 8) -> np.ndarray:
    """Any PIL image -> (H, W) uint8 grayscale. Samples of more than 8 bits are mapped by their
    bit depth (0 .. 2**bit_depth - 1 -> 0 .. 255), so that an image and its 16-bit copy
    (values x 257) give the same pixels; 32-bit integer and float images, which have no such
    range, are mapped by their own minimum and maximum (with a note)."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode == "PA":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode == "1":
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()
    if mode == "L":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image)
        if values.ndim == 3:  # e.g. a multi-channel 16-bit mode: take the luma-like mean
            values = values.mean(axis=2)
        if mode.startswith("I;16") or (mode == "I" and 8 < bit_depth <= 16):
            top = float(2**bit_depth - 1)
            notes.append(f"{bit_depth}-bit samples mapped to 8 bits by their bit depth (0-{top:.0f})")
            return _scale_range(values.astype(np.float64), 0.0, top)
        notes.append(f"{mode} samples have no fixed range: mapped by their minimum and maximum")
        return _scale_to_uint8(values.astype(np.float64), notes)
    if mode in ("LA", "La"):
        image = image.convert("LA")
        gray_alpha = np.asarray(image, dtype=np.float64)
        return _composite_on_black(gray_alpha[..., 0], gray_alpha[..., 1], notes)
    if mode in ("RGBA", "RGBa"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
        gray = _rgb_to_gray(rgba[..., :3])
        return _composite_on_black(gray.astype(np.float64), rgba[..., 3].astype(np.float64), notes)
    return _rgb_to_gray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) uint8; exact for RGB-encoded grayscale (equal channels)."""
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0].copy()
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def _composite_on_black(gray: np.ndarray, alpha: np.ndarray, notes: list[str]) -> np.ndarray:
    if (alpha >= 255).all():
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    notes.append("transparent pixels were composited on black")
    return np.clip(np.rint(gray * alpha / 255.0), 0, 255).astype(np.uint8)


def _scale_range(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linearly map low..high to 0..255, clipped."""
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _scale_to_uint8(values: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """Linearly map the array's min..max to 0..255 (a constant image becomes 0)."""
    low, high = float(np.min(values)), float(np.max(values))
    if high <= low:
        if notes is not None:
            notes.append("the image is one constant value")
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# DICOM -----------------------------------------------------------------------------------------


def _read_dicom(data: bytes, label: str, force: bool) -> DecodedImage:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing, pixel_array

    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=force)
    except Exception:
        if force:
            raise ImageError(
                "is named .dcm but is not a DICOM file (nor a JPEG or PNG)",
                where=label,
                fix=f"Use {ACCEPTED_FORMATS}",
            ) from None
        raise ImageError(
            "is a damaged DICOM file that cannot be read", where=label, fix=_FIX_DAMAGED
        ) from None
    if force and not any(
        keyword in dataset for keyword in ("SOPClassUID", "Rows", "Modality", "PixelData")
    ):
        # force=True parses almost any bytes into a few bogus elements.
        raise ImageError(
            "is named .dcm but is not a DICOM file (nor a JPEG or PNG)",
            where=label,
            fix=f"Use {ACCEPTED_FORMATS}",
        )
    if not any(tag in dataset for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageError(
            "is a DICOM file without pixel data (a report, structured document or "
            "presentation state, not an image)",
            where=label,
            fix="Export the radiograph itself (the image instance) from the PACS or viewer",
        )
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
    except (AttributeError, TypeError, ValueError):
        raise ImageError(
            "is a DICOM file without valid Rows/Columns", where=label, fix=_FIX_DAMAGED
        ) from None
    _refuse_if_too_large(columns, rows, label)

    notes: list[str] = []
    try:
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    try:
        if frames > 1:
            values = pixel_array(dataset, index=0)
            notes.append(f"first of {frames} frames")
        else:
            values = dataset.pixel_array
    except Exception as error:
        raise _pixel_data_error(dataset, error, label) from None

    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    bit_depth = int(dataset.get("BitsStored") or dataset.get("BitsAllocated") or 8)
    if values.ndim == 3 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        rgb = values if values.ndim == 3 else np.repeat(values[..., None], 3, axis=2)
        if rgb.dtype != np.uint8:
            rgb = _scale_to_uint8(rgb.astype(np.float64))
        pixels = _rgb_to_gray(rgb[..., :3])
    else:
        pixels = _monochrome_to_uint8(
            values, dataset, apply_modality_lut, apply_voi_lut, apply_windowing, notes
        )
        if photometric == "MONOCHROME1":
            pixels = 255 - pixels
            notes.append("MONOCHROME1: grey values inverted so that bone is bright")
    return DecodedImage(
        pixels=np.ascontiguousarray(pixels),
        source=label,
        format="DICOM",
        bit_depth=bit_depth,
        pixel_spacing_mm=_pixel_spacing(dataset, notes),
        original_mode=photometric,
        notes=tuple(notes),
        modality=str(dataset.get("Modality", "") or "").strip().upper(),
        study_uid=str(dataset.get("StudyInstanceUID", "") or "").strip(),
        patient_id=str(dataset.get("PatientID", "") or "").strip(),
    )


def _pixel_data_error(dataset, error: Exception, label: str) -> ImageError:
    """What is wrong with DICOM pixel data that did not decode, in words: truncated, or in a
    compression no installed decoder reads."""
    text = str(error)
    if "less than expected" in text or "shorter" in text or isinstance(error, EOFError):
        return ImageError(
            "is a truncated DICOM file: its pixel data is shorter than its rows and columns say",
            where=label,
            fix="Copy or export the file again from the PACS or viewer; it was cut short",
        )
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and getattr(syntax, "is_compressed", False):
        return ImageError(
            f"is a DICOM file compressed as {syntax.name}, which no installed decoder reads",
            where=label,
            fix="Export it as uncompressed DICOM or PNG, or install the pydicom decoder plugin "
            "for that compression (e.g. pylibjpeg)",
        )
    return ImageError(
        "is a DICOM file whose pixel data cannot be decoded (its image attributes and pixel "
        "data disagree)",
        where=label,
        fix="Export it again as uncompressed DICOM or PNG",
    )


def _monochrome_to_uint8(
    values, dataset, apply_modality_lut, apply_voi_lut, apply_windowing, notes
) -> np.ndarray:
    """Modality LUT, then the VOI LUT or window (first one), mapped to 0..255."""
    values = apply_modality_lut(values, dataset).astype(np.float64)
    if "VOILUTSequence" in dataset and len(dataset.VOILUTSequence):
        try:
            return _scale_to_uint8(apply_voi_lut(values, dataset, index=0, prefer_lut=True))
        except Exception:
            notes.append("the VOI LUT could not be applied; scaled by min/max")
            return _scale_to_uint8(values)
    if "WindowCenter" in dataset and "WindowWidth" in dataset:
        try:
            windowed = apply_windowing(values, dataset, index=0)
            # The window's output range: what the lowest and highest inputs map to.
            low, high = apply_windowing(np.array([-1e300, 1e300]), dataset, index=0)
        except Exception:
            notes.append("the window could not be applied; scaled by min/max")
            return _scale_to_uint8(values)
        if high > low:
            notes.append("mapped to 8 bits by the DICOM window")
            return _scale_range(windowed, low, high)
    return _by_stored_range(values, dataset, apply_modality_lut, notes)


def _by_stored_range(values, dataset, apply_modality_lut, notes: list[str]) -> np.ndarray:
    """Map a DICOM image without a window by the range its BitsStored can hold (through the
    modality LUT), not by its own extremes: the same radiograph stored with another range of
    values then keeps its contrast."""
    try:
        bits = int(dataset.get("BitsStored") or dataset.get("BitsAllocated") or 8)
        signed = int(dataset.get("PixelRepresentation", 0) or 0) == 1
        raw = (
            np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1])
            if signed
            else np.array([0, 2**bits - 1])
        )
        low, high = (float(value) for value in np.sort(apply_modality_lut(raw, dataset)))
    except Exception:
        low = high = 0.0
    if not high > low or not 1 <= bits <= 32:
        notes.append("no window and no usable bit depth: mapped by the minimum and maximum")
        return _scale_to_uint8(values)
    if bits > 8:
        notes.append(f"no window in the DICOM: mapped by its {bits}-bit range")
    return _scale_range(values, low, high)


def _pixel_spacing(dataset, notes: list[str]) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dataset.get(keyword)
        if value is None:
            continue
        try:
            row, column = (float(number) for number in value)
        except (TypeError, ValueError):
            notes.append(f"{keyword} {value!r} is not two numbers; ignored")
            continue
        if row > 0 and column > 0 and np.isfinite([row, column]).all():
            return (row, column)
        notes.append(f"{keyword} {value!r} is not positive; ignored")
    return None


# Letterbox transform ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Letterbox:
    """Where an image of ``height`` x ``width`` sits inside the ``size`` x ``size`` model input.

    ``scale`` = size / max(height, width); the resized image is ``new_height`` x ``new_width``
    (each side rounded, at least 1) and starts at row ``top``, column ``left`` (padding split
    evenly, the odd pixel at the bottom / right).
    """

    size: int
    height: int
    width: int
    scale: float
    top: int
    left: int
    new_height: int
    new_width: int


def letterbox(original_shape: tuple[int, int], size: int) -> Letterbox:
    """The letterbox geometry for an image of ``original_shape`` (height, width)."""
    height, width = (int(value) for value in original_shape[:2])
    size = int(size)
    if height < 1 or width < 1:
        raise ValueError(f"original_shape must be positive (height, width), got {original_shape}")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    scale = size / max(height, width)
    new_height = min(size, max(1, round(height * scale)))
    new_width = min(size, max(1, round(width * scale)))
    return Letterbox(
        size=size,
        height=height,
        width=width,
        scale=scale,
        top=(size - new_height) // 2,
        left=(size - new_width) // 2,
        new_height=new_height,
        new_width=new_width,
    )


def _resize(array: np.ndarray, new_height: int, new_width: int) -> np.ndarray:
    import cv2

    if array.shape[:2] == (new_height, new_width):
        return array.copy()
    shrinking = new_height * new_width < array.shape[0] * array.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(array, (new_width, new_height), interpolation=interpolation)
    if array.ndim == 3 and resized.ndim == 2:  # cv2 drops a single channel axis
        resized = resized[..., None]
    return resized


def letterbox_image(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 -> (size, size[, C]) uint8 with the letterbox geometry.

    ``preprocess`` is this, as 3 channels of float32 in [0, 1]; store this to cache images.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"image must be (H, W) or (H, W, C) uint8, got {image.shape} {image.dtype}"
        )
    box = letterbox(image.shape[:2], size)
    resized = _resize(image, box.new_height, box.new_width)
    output = np.zeros((box.size, box.size, *image.shape[2:]), dtype=np.uint8)
    output[box.top : box.top + box.new_height, box.left : box.left + box.new_width] = resized
    return output


def preprocess(image: np.ndarray, size: int) -> np.ndarray:
    """Model input: (H, W) or (H, W, 1|3) uint8 -> (size, size, 3) float32 in [0, 1].

    Keeps the aspect ratio, scales the longest side to ``size`` (area interpolation when
    shrinking, linear when enlarging) and pads evenly with zeros. The one transform for
    training and inference; ``postprocess`` inverts it.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        raise ValueError(f"image must have 1 or 3 channels, got shape {image.shape}")
    boxed = letterbox_image(image, size)
    if boxed.ndim == 2:
        boxed = boxed[..., None]
    if boxed.shape[2] == 1:
        boxed = np.repeat(boxed, 3, axis=2)
    return boxed.astype(np.float32) / np.float32(255.0)


def preprocess_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """(H, W) {0, 1} mask -> (size, size) uint8 {0, 1} with the letterbox geometry.

    Resized as a float coverage (area when shrinking, linear when enlarging) and thresholded
    at 0.5, so region boundaries land where the image's do.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    box = letterbox(mask.shape, size)
    coverage = _resize((mask > 0).astype(np.float32), box.new_height, box.new_width)
    output = np.zeros((box.size, box.size), dtype=np.uint8)
    output[box.top : box.top + box.new_height, box.left : box.left + box.new_width] = (
        coverage >= 0.5
    )
    return output


def postprocess(probabilities: np.ndarray, original_shape: tuple[int, int]) -> np.ndarray:
    """Map a model-size map back onto the original pixels: the inverse of ``preprocess``.

    Args:
        probabilities: (size, size) or (size, size, 1) float map in model input space.
        original_shape: (height, width) of the original image.

    Returns:
        (height, width) float32: the padding cropped, resized with linear interpolation.
    """
    import cv2

    probabilities = np.asarray(probabilities)
    if probabilities.ndim == 3 and probabilities.shape[2] == 1:
        probabilities = probabilities[..., 0]
    if probabilities.ndim != 2 or probabilities.shape[0] != probabilities.shape[1]:
        raise ValueError(f"probabilities must be (size, size[, 1]), got {probabilities.shape}")
    box = letterbox(original_shape, probabilities.shape[0])
    crop = probabilities[box.top : box.top + box.new_height, box.left : box.left + box.new_width]
    crop = np.ascontiguousarray(crop, dtype=np.float32)
    if crop.shape == (box.height, box.width):
        return crop.copy()
    return cv2.resize(crop, (box.width, box.height), interpolation=cv2.INTER_LINEAR)
