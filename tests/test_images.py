import io
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from dicom_support import write_dicom
from PIL import Image

from btseg.data.images import (
    MAX_PIXELS,
    letterbox,
    letterbox_image,
    postprocess,
    preprocess,
    preprocess_mask,
    read_image,
)
from btseg.errors import ImageError


def gradient(height=48, width=64):
    rows, columns = np.mgrid[0:height, 0:width]
    return ((rows * 3 + columns * 2) % 256).astype(np.uint8)


def save(image, path, format, **options):
    image.save(path, format=format, **options)
    return path


def iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


# JPEG and PNG ----------------------------------------------------------------------------------


def test_gray_jpeg(tmp_path):
    pixels = gradient()
    path = save(Image.fromarray(pixels), tmp_path / "IMG000001.jpeg", "JPEG", quality=95)
    image = read_image(path)
    assert image.pixels.shape == (48, 64) and image.pixels.dtype == np.uint8
    assert (image.format, image.bit_depth, image.original_mode) == ("JPEG", 8, "L")
    assert image.source == "IMG000001.jpeg"
    assert image.pixel_spacing_mm is None and image.notes == ()
    assert np.abs(image.pixels.astype(int) - pixels).mean() < 3


def test_rgb_jpeg_of_gray_content(tmp_path):
    pixels = gradient()
    rgb = Image.fromarray(np.stack([pixels] * 3, axis=2))
    path = save(rgb, tmp_path / "IMG000002.jpg", "JPEG", quality=95)
    image = read_image(path)
    assert image.original_mode == "RGB" and image.pixels.shape == (48, 64)
    assert np.abs(image.pixels.astype(int) - pixels).mean() < 3


def test_rgb_png_uses_luma_weights(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (100, 100, 100)
    rgb[0, 1] = (255, 0, 0)
    rgb[1, 0] = (0, 255, 0)
    rgb[1, 1] = (0, 0, 255)
    image = read_image(save(Image.fromarray(rgb), tmp_path / "a.png", "PNG"))
    # 0.299, 0.587, 0.114 of 255 -> 76.2, 149.7, 29.1
    np.testing.assert_array_equal(image.pixels, [[100, 76], [150, 29]])


def test_gray_png_is_exact(tmp_path):
    pixels = gradient()
    image = read_image(save(Image.fromarray(pixels), tmp_path / "a.png", "PNG"))
    assert (image.format, image.bit_depth) == ("PNG", 8)
    np.testing.assert_array_equal(image.pixels, pixels)


def test_16_bit_png_is_mapped_by_its_bit_depth_so_an_8_bit_copy_gives_the_same_pixels(tmp_path):
    eight = np.array([[10, 60], [120, 200]], dtype=np.uint8)
    sixteen = eight.astype(np.uint16) * 257  # the same image stored in 16 bits
    image = read_image(save(Image.fromarray(sixteen), tmp_path / "a.png", "PNG"))
    assert image.bit_depth == 16
    assert image.original_mode.startswith("I")
    np.testing.assert_array_equal(image.pixels, eight)  # not stretched to its own extremes
    assert any("by their bit depth" in note for note in image.notes)
    plain = read_image(save(Image.fromarray(eight), tmp_path / "b.png", "PNG"))
    np.testing.assert_array_equal(plain.pixels, image.pixels)


def test_rgba_png_is_composited_on_black(tmp_path):
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (200, 200, 200, 255)
    rgba[0, 1] = (200, 200, 200, 128)
    rgba[0, 2] = (200, 200, 200, 0)
    image = read_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png", "PNG"))
    assert image.original_mode == "RGBA"
    np.testing.assert_array_equal(image.pixels, [[200, 100, 0]])  # 200 * 128 / 255 = 100.4
    assert any("composited on black" in note for note in image.notes)


def test_opaque_rgba_png_keeps_its_values(tmp_path):
    rgba = np.full((2, 2, 4), 255, np.uint8)
    rgba[..., :3] = 90
    image = read_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png", "PNG"))
    np.testing.assert_array_equal(image.pixels, np.full((2, 2), 90))
    assert image.notes == ()


def test_palette_png(tmp_path):
    palette_image = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    palette_image.putpalette([0, 0, 0, 120, 120, 120, 250, 250, 250] + [0] * 759)
    image = read_image(save(palette_image, tmp_path / "a.png", "PNG"))
    assert image.original_mode == "P"
    np.testing.assert_array_equal(image.pixels, [[0, 120], [250, 120]])


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40), np.uint8)  # stored 40 wide, 20 high
    pixels[:5, :5] = 255  # a bright corner, top left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = save(Image.fromarray(pixels), tmp_path / "a.jpeg", "JPEG", quality=95, exif=exif)
    image = read_image(path)
    assert image.pixels.shape == (40, 20)
    assert image.pixels[:5, -5:].mean() > 200  # top left went to top right
    assert image.pixels[:5, :5].mean() < 50
    assert any("EXIF orientation 6" in note for note in image.notes)


def test_png_named_jpeg_decodes_with_a_note(tmp_path):
    pixels = gradient()
    path = save(Image.fromarray(pixels), tmp_path / "IMG000003.jpeg", "PNG")
    image = read_image(path)
    assert image.format == "PNG"
    np.testing.assert_array_equal(image.pixels, pixels)
    assert any("PNG despite its .jpeg extension" in note for note in image.notes)


def test_bytes_are_read_as_an_upload(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(gradient()).save(buffer, format="PNG")
    image = read_image(buffer.getvalue())
    assert image.source == "upload"
    named = read_image(buffer.getvalue(), name="scan.png")
    assert named.source == "scan.png" and named.notes == ()


def jpeg_bytes(height=32, width=32):
    buffer = io.BytesIO()
    Image.fromarray(gradient(height, width)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("keep", [0.5, 0.1, 20])
def test_truncated_jpeg_is_refused_as_damaged(tmp_path, keep):
    data = jpeg_bytes()
    cut = int(len(data) * keep) if keep < 1 else keep
    path = tmp_path / "IMG000004.jpeg"
    path.write_bytes(data[:cut])
    with pytest.raises(ImageError, match="damaged JPEG") as caught:
        read_image(path)
    assert caught.value.where == "IMG000004.jpeg"
    assert "re-export" in caught.value.fix


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "IMG000005.jpeg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"is empty \(0 bytes\)") as caught:
        read_image(path)
    assert caught.value.where == "IMG000005.jpeg" and caught.value.fix


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"patient notes\nnothing to see here\n", "text file"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF document"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "HTML page"),
        (b"GIF89a\x01\x00\x01\x00", "GIF image"),
        (b"\x00\x01\x02\x03\xfe\xfd", "no known image format"),
    ],
)
def test_non_images_are_refused_with_the_accepted_formats(tmp_path, content, looks_like):
    path = tmp_path / "IMG000006.jpeg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=looks_like) as caught:
        read_image(path)
    assert "JPEG" in caught.value.fix and "PNG" in caught.value.fix and "DICOM" in caught.value.fix


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "IMG009999.jpeg")


def png_claiming(width, height):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR CRC
    return bytes(data)


def test_png_header_claiming_30000_squared_is_refused_quickly(tmp_path):
    path = tmp_path / "IMG000008.png"
    path.write_bytes(png_claiming(30000, 30000))
    start = time.perf_counter()
    with pytest.raises(ImageError, match="30000x30000 pixels") as caught:
        read_image(path)
    assert time.perf_counter() - start < 2.0
    assert "900 megapixels" in str(caught.value) and "Downscale" in caught.value.fix


def test_jpeg_header_claiming_30000_squared_is_refused(tmp_path):
    data = bytearray(jpeg_bytes(8, 8))
    start_of_frame = data.index(b"\xff\xc0")
    data[start_of_frame + 5 : start_of_frame + 9] = struct.pack(">HH", 30000, 30000)
    with pytest.raises(ImageError, match="30000x30000 pixels"):
        read_image(bytes(data), name="IMG000009.jpeg")


def test_just_under_the_limit_passes_the_header_check():
    # 7000 x 8000 = 56 megapixels: not refused for its size (then refused as damaged).
    assert 7000 * 8000 <= MAX_PIXELS
    with pytest.raises(ImageError, match="damaged"):
        read_image(png_claiming(7000, 8000), name="big.png")


# DICOM -----------------------------------------------------------------------------------------


WINDOWED_INPUT = [[0, 1000, 1500], [2500, 3000, 4000]]
# Window centre 2000.5, width 2001 (LINEAR): <= 1000 -> black, > 3000 -> white, and
# (x - 2000) / 2000 + 0.5 between: 1500 -> 63.75, 2500 -> 191.25.
WINDOWED_OUTPUT = np.array([[0, 0, 64], [191, 255, 255]])


@pytest.mark.parametrize(
    ("photometric", "spacing_element", "spacing", "expected"),
    [
        ("MONOCHROME2", "PixelSpacing", (0.139, 0.14), WINDOWED_OUTPUT),
        ("MONOCHROME1", "ImagerPixelSpacing", (0.2, 0.25), 255 - WINDOWED_OUTPUT),  # inverted
    ],
)
def test_dicom_window_spacing_and_photometric_interpretation(
    tmp_path, photometric, spacing_element, spacing, expected
):
    path = write_dicom(
        tmp_path / "IMG000010.dcm", WINDOWED_INPUT, photometric=photometric,
        WindowCenter="2000.5", WindowWidth="2001", **{spacing_element: list(spacing)},
    )  # fmt: skip
    image = read_image(path)
    assert (image.format, image.bit_depth, image.original_mode) == ("DICOM", 12, photometric)
    assert image.pixel_spacing_mm == spacing
    np.testing.assert_array_equal(image.pixels, expected)


def test_dicom_without_window_is_mapped_by_its_stored_bit_range(tmp_path):
    image = read_image(write_dicom(tmp_path / "a.dcm", [[0, 819], [1638, 4095]]))  # 12 bits
    np.testing.assert_array_equal(image.pixels, [[0, 51], [102, 255]])  # x * 255 / 4095
    darker = read_image(write_dicom(tmp_path / "b.dcm", [[0, 819], [1638, 2000]]))
    assert darker.pixels[1, 1] == 125  # not stretched to 255 by its own maximum
    assert image.pixel_spacing_mm is None and image.modality == "DX"
    assert any("12-bit range" in note for note in image.notes)


def test_dicom_rescale_is_applied_before_the_window(tmp_path):
    # Stored x -> 2x - 1000 gives -1000, -250, 250, 1000; window centre 0.5, width 1001.
    path = write_dicom(
        tmp_path / "a.dcm",
        [[0, 375, 625, 1000]],
        RescaleSlope="2",
        RescaleIntercept="-1000",
        WindowCenter="0.5",
        WindowWidth="1001",
    )
    np.testing.assert_array_equal(read_image(path).pixels, [[0, 64, 191, 255]])


def test_multi_frame_dicom_gives_the_first_frame(tmp_path):
    frames = np.array([[[0, 4095]], [[4095, 0]]])
    image = read_image(write_dicom(tmp_path / "a.dcm", frames, frames=2))
    np.testing.assert_array_equal(image.pixels, [[0, 255]])
    assert any("first of 2 frames" in note for note in image.notes)


def test_dicom_is_recognised_by_content_and_as_bytes(tmp_path):
    path = write_dicom(tmp_path / "IMG000011.jpeg", [[0, 4000]])
    image = read_image(path.read_bytes(), name="IMG000011.jpeg")
    assert image.format == "DICOM" and image.source == "IMG000011.jpeg"


def test_dicom_without_preamble_is_read_when_named_dcm(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", [[0, 4095]])
    headless = path.read_bytes()[132:]  # no preamble, no "DICM"
    np.testing.assert_array_equal(read_image(headless, name="b.dcm").pixels, [[0, 255]])
    with pytest.raises(ImageError, match="not an image"):
        read_image(headless, name="b.jpeg")


def test_dicom_without_pixel_data_is_refused(tmp_path):
    path = write_dicom(tmp_path / "IMG000012.dcm", [[0, 1]])
    from pydicom import dcmread

    dataset = dcmread(path)
    del dataset.PixelData
    dataset.save_as(path, enforce_file_format=True)
    with pytest.raises(ImageError, match="without pixel data") as caught:
        read_image(path)
    assert caught.value.where == "IMG000012.dcm"


def test_text_named_dcm_is_refused(tmp_path):
    path = tmp_path / "a.dcm"
    path.write_text("not a dicom file")
    with pytest.raises(ImageError, match="not a DICOM file"):
        read_image(path)


# Letterbox, preprocess, postprocess ------------------------------------------------------------


def test_letterbox_of_a_tall_btxrd_image():
    box = letterbox((3032, 1640), 256)
    # 1640 * 256 / 3032 = 138.47 -> 138 wide; (256 - 138) // 2 = 59 on the left.
    assert (box.new_height, box.new_width, box.top, box.left) == (256, 138, 0, 59)
    assert box.scale == 256 / 3032
    assert (box.size, box.height, box.width) == (256, 3032, 1640)


def test_letterbox_of_a_wide_btxrd_image():
    box = letterbox((311, 3594), 256)
    # 311 * 256 / 3594 = 22.15 -> 22 high; (256 - 22) // 2 = 117 on top.
    assert (box.new_height, box.new_width, box.top, box.left) == (22, 256, 117, 0)


def test_letterbox_of_square_and_extreme_shapes():
    assert letterbox((100, 100), 64) == letterbox((100, 100), 64)
    square = letterbox((100, 100), 64)
    assert (square.new_height, square.new_width, square.top, square.left) == (64, 64, 0, 0)
    sliver = letterbox((1, 5000), 64)
    assert (sliver.new_height, sliver.top) == (1, 31)
    with pytest.raises(ValueError, match="size"):
        letterbox((10, 10), 0)


def test_preprocess_places_the_image_in_the_letterbox():
    image = np.full((300, 100), 255, np.uint8)
    model_input = preprocess(image, 64)
    assert model_input.shape == (64, 64, 3) and model_input.dtype == np.float32
    box = letterbox((300, 100), 64)  # 64 x 21, left 21
    assert (box.new_width, box.left) == (21, 21)
    assert (model_input[:, 21:42] == 1.0).all()
    assert (model_input[:, :21] == 0.0).all() and (model_input[:, 42:] == 0.0).all()


def test_preprocess_gray_and_rgb_agree():
    gray = gradient(90, 70)
    rgb = np.stack([gray] * 3, axis=2)
    np.testing.assert_array_equal(preprocess(gray, 32), preprocess(rgb, 32))
    np.testing.assert_array_equal(preprocess(gray, 32), preprocess(gray[..., None], 32))
    boxed = letterbox_image(gray, 32)
    assert boxed.shape == (32, 32) and boxed.dtype == np.uint8
    np.testing.assert_array_equal(preprocess(gray, 32)[..., 0], boxed / np.float32(255))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(gray.astype(np.float32), 32)


def test_preprocess_mask_matches_the_image_geometry():
    mask = np.zeros((300, 100), np.uint8)
    mask[:, :] = 1
    boxed = preprocess_mask(mask, 64)
    assert boxed.dtype == np.uint8 and set(np.unique(boxed)) == {0, 1}
    np.testing.assert_array_equal(boxed, preprocess(mask * 255, 64)[..., 0] > 0.5)


def blob(height, width):
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width * 2 // 5, height // 2), (width // 6, height // 5), 25, 0, 360, 1, -1)
    cv2.circle(mask, (width * 3 // 4, height // 4), min(height, width) // 10, 1, -1)
    return mask


@pytest.mark.parametrize("shape", [(600, 1000), (1000, 600), (3032, 1640)])
def test_postprocess_inverts_preprocess_mask(shape):
    mask = blob(*shape)
    restored = postprocess(preprocess_mask(mask, 256).astype(np.float32), shape)
    assert restored.shape == shape and restored.dtype == np.float32
    assert iou(restored >= 0.5, mask) > 0.97


def test_postprocess_crops_exactly_the_padding():
    # A full-white image: any padding pixel leaking back would pull the border below 1.
    for shape in [(3032, 1640), (311, 3594), (77, 50)]:
        model_input = preprocess(np.full(shape, 255, np.uint8), 128)
        back = postprocess(model_input[..., :1], shape)
        assert back.shape == shape
        assert back.min() == pytest.approx(1.0)
