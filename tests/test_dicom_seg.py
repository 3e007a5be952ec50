"""DICOM SEG of a tumour mask (btseg.dicom_seg): read back with pydicom and highdicom, it
references its source radiograph, carries its patient and study, and its frame is the mask;
sources it cannot reference are refused with the reason."""

from __future__ import annotations

import io
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import SegmentationStorage

from btseg.dicom_seg import dicom_seg_bytes
from btseg.errors import ImageError
from btseg.synthetic import generate


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic DX radiograph (a tumour image) as DICOM."""
    root = generate(tmp_path_factory.mktemp("seg") / "synthetic", n=20, seed=2, dicom=True)
    return sorted((root / "dicom").glob("*.dcm"))[3]


def square_mask(source: Path) -> np.ndarray:
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    mask = np.zeros((ds.Rows, ds.Columns), np.uint8)
    mask[40:90, 30:100] = 1
    mask[200, 5] = 1
    return mask


def write_seg(source, mask, **kwargs) -> bytes:
    kwargs = {"algorithm_name": "btseg attention_unet", "algorithm_version": "run 7", **kwargs}
    return dicom_seg_bytes(source, mask, **kwargs)


def test_seg_references_its_source_and_holds_the_mask(source: Path) -> None:
    mask = square_mask(source)
    data = write_seg(source, mask)
    original = pydicom.dcmread(source, stop_before_pixels=True)

    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.SOPClassUID == SegmentationStorage
    assert ds.file_meta.MediaStorageSOPClassUID == SegmentationStorage
    assert ds.Modality == "SEG"
    assert ds.SegmentationType == "BINARY"
    assert ds.StudyInstanceUID == original.StudyInstanceUID
    assert ds.PatientID == original.PatientID
    assert ds.PatientName == original.PatientName
    assert ds.SeriesInstanceUID != original.SeriesInstanceUID
    assert ds.SOPInstanceUID != original.SOPInstanceUID
    referenced = ds.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == original.SeriesInstanceUID
    assert referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == (
        original.SOPInstanceUID
    )

    seg = hd.seg.segread(io.BytesIO(data))
    assert seg.get_source_image_uids() == [
        (original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID)
    ]
    assert seg.number_of_segments == 1
    assert int(seg.NumberOfFrames) == 1
    np.testing.assert_array_equal(seg.pixel_array.reshape(mask.shape), mask)
    derivation = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
    assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID
    assert derivation.SourceImageSequence[0].SpatialLocationsPreserved == "YES"


def test_segment_says_neoplasm_found_by_btseg(source: Path) -> None:
    data = write_seg(source, square_mask(source), segment_label="Tumour")
    seg = hd.seg.segread(io.BytesIO(data))
    segment = seg.get_segment_description(1)
    assert segment.segment_label == "Tumour"
    assert segment.segmented_property_category.value == "49755003"  # SCT
    assert segment.segmented_property_type.value == "108369006"  # SCT Neoplasm
    assert segment.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    algorithm = segment.algorithm_identification[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == (
        "btseg attention_unet",
        "run 7",
    )
    assert algorithm.AlgorithmSource == "btseg"
    assert seg.Manufacturer == "btseg"


def test_empty_mask_gives_one_empty_frame(source: Path) -> None:
    mask = np.zeros_like(square_mask(source))
    data = write_seg(source.read_bytes(), mask.astype(bool))  # bytes and a bool mask
    seg = hd.seg.segread(io.BytesIO(data))
    assert int(seg.NumberOfFrames) == 1
    assert seg.pixel_array.shape[-2:] == mask.shape
    assert not seg.pixel_array.any()


def test_a_ct_slice_with_a_frame_of_reference_keeps_its_geometry() -> None:
    ct = get_testdata_file("CT_small.dcm")
    original = pydicom.dcmread(ct)
    mask = np.zeros((original.Rows, original.Columns), np.uint8)
    mask[10:20, 10:30] = 1
    seg = hd.seg.segread(io.BytesIO(write_seg(ct, mask)))
    assert seg.FrameOfReferenceUID == original.FrameOfReferenceUID
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert list(measures.PixelSpacing) == list(original.PixelSpacing)
    np.testing.assert_array_equal(seg.pixel_array.reshape(mask.shape), mask)


def test_png_source_is_refused(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "xray.png"
    cv2.imwrite(str(path), np.full((80, 80), 120, np.uint8))
    with pytest.raises(ImageError, match="not a DICOM file") as caught:
        write_seg(path, np.zeros((80, 80), np.uint8))
    assert caught.value.where == "xray.png"
    assert "PNG" in caught.value.fix


@pytest.mark.parametrize(
    ("keyword", "named"),
    [("SOPClassUID", "SOP Class UID"), ("PatientID", "Patient ID"),
     ("StudyInstanceUID", "Study Instance UID")],
)  # fmt: skip
def test_dicom_without_what_a_seg_needs_is_refused(
    source: Path, tmp_path: Path, keyword: str, named: str
) -> None:
    ds = pydicom.dcmread(source)
    delattr(ds, keyword)
    path = tmp_path / f"without_{keyword}.dcm"
    ds.save_as(path)
    with pytest.raises(ImageError, match=f"without {named}") as caught:
        write_seg(path, square_mask(source))
    assert "Export the radiograph again" in caught.value.fix


def test_multi_frame_source_is_refused(source: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(source)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    path = tmp_path / "two_frames.dcm"
    ds.save_as(path)
    with pytest.raises(ImageError, match="multi-frame DICOM image \\(2 frames\\)"):
        write_seg(path, square_mask(source))


def test_mask_must_match_the_source_and_be_binary(source: Path) -> None:
    mask = square_mask(source)
    with pytest.raises(ValueError, match="differs from the source"):
        write_seg(source, mask[:-1])
    with pytest.raises(ValueError, match="only 0 and 1"):
        write_seg(source, mask * 255)


def test_a_source_without_patient_and_study_details_still_gets_a_seg(
    source: Path, tmp_path: Path
) -> None:
    """Exported radiographs often lack type 2 attributes (birth date, study date ...)."""
    import highdicom as hd

    dataset = pydicom.dcmread(source)
    for keyword in ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "AccessionNumber", "StudyID"):  # fmt: skip
        if keyword in dataset:
            delattr(dataset, keyword)
    bare = tmp_path / "bare.dcm"
    dataset.save_as(bare)
    mask = square_mask(source)
    seg = hd.seg.segread(io.BytesIO(write_seg(bare, mask)))
    assert seg.PatientBirthDate == "" and seg.StudyInstanceUID == dataset.StudyInstanceUID
    np.testing.assert_array_equal(seg.pixel_array.reshape(mask.shape), mask)
