"""A tumour mask as a DICOM Segmentation (SEG) of its source radiograph, for DICOM viewers.

``dicom_seg_bytes`` writes a binary SEG instance with highdicom: one segment (category
Morphologically Abnormal Structure, SCT 49755003; type Neoplasm, SCT 108369006; algorithm type
AUTOMATIC with an Algorithm Identification naming btseg and the model run), one frame that covers
the source image pixel for pixel, and the source's patient, study and SOP Instance UID, so
OHIF, 3D Slicer or a PACS shows it over the radiograph.

Geometry. A projection radiograph (DX, CR) has no Frame of Reference and no plane position; for
such a single-frame source highdicom's ``Segmentation`` takes a 2D array as "a single
segmentation frame of a single frame image, such as a planar x-ray", which "must correspond
pixel-for-pixel with the single source image", and refuses plane positions and orientations
(highdicom.seg.Segmentation, ``pixel_array`` and ``plane_positions`` parameters). btseg passes the
mask at the source's resolution and no geometry: highdicom copies the source's Pixel Spacing into
the Pixel Measures when it has one and references the source image in the Derivation Image
Sequence with its spatial locations preserved. A source that has a Frame of Reference (a CT
slice, say) is handled by highdicom's own plane position logic.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from btseg.errors import ImageError

#: Attributes highdicom needs from the source image, with what each is.
REQUIRED_ATTRIBUTES: dict[str, str] = {
    "SOPClassUID": "SOP Class UID",
    "SOPInstanceUID": "SOP Instance UID",
    "StudyInstanceUID": "Study Instance UID",
    "SeriesInstanceUID": "Series Instance UID",
    "PatientID": "Patient ID",
    "Rows": "Rows",
    "Columns": "Columns",
}
SEGMENTATION_SERIES_NUMBER = 900
_MANUFACTURER = "btseg"
_FIX_EXPORT = (
    "Export the radiograph again from the PACS or viewer as a complete DICOM image (it must "
    "carry {names}); a DICOM SEG needs them to point at its source"
)


#: Patient and study attributes a SEG copies from its source: type 2, so empty when unknown.
_TYPE_2_COPIED = (
    "PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber",
)  # fmt: skip


def dicom_seg_bytes(
    source: bytes | str | Path,
    mask: np.ndarray,
    *,
    algorithm_name: str,
    algorithm_version: str,
    segment_label: str = "Bone tumour",
    series_description: str = "btseg tumour segmentation",
) -> bytes:
    """A binary DICOM SEG of `mask` over the single-frame DICOM image `source`, as file bytes.

    Args:
        source: the source DICOM file, as a path or its bytes.
        mask: (H, W) {0, 1} (or bool) tumour mask at the source's resolution (Rows x Columns),
            e.g. ``btseg.predict.Prediction.mask``. An empty mask gives a valid SEG with one
            empty frame.
        algorithm_name: the algorithm (model / run) that made the mask, e.g. "btseg
            attention_unet"; stored in the Algorithm Identification Sequence.
        algorithm_version: its version, e.g. the run's date or manifest version.
        segment_label: the segment's label, as viewers show it.
        series_description: Series Description of the new SEG series.

    Returns:
        The SEG as a DICOM Part 10 file (explicit VR little endian): new series and instance
        UIDs, the source's patient and study, the source's SOP Instance UID referenced.

    Raises:
        ImageError: `source` is not a DICOM file, not an image, has more than one frame, or
            lacks an attribute the SEG needs (SOP Class UID, SOP Instance UID, Study / Series
            Instance UID, Patient ID, Rows, Columns); ``where`` names the file.
        ValueError: `mask` is not 2D, does not match the source's Rows x Columns, or holds
            values other than 0 and 1.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    import btseg

    label = Path(source).name if isinstance(source, str | Path) else "upload"
    dataset = _read_source(source, label)
    mask = _binary_mask(mask, (int(dataset.Rows), int(dataset.Columns)))
    if "FrameOfReferenceUID" not in dataset and "PixelSpacing" in dataset:
        # highdicom 0.28.2 copies such a source's Pixel Spacing into a Pixel Measures item
        # without Slice Thickness, which its own reader (segread) then refuses. Without it the
        # SEG takes highdicom's no-Frame-of-Reference form (no Pixel Measures, Plane Position or
        # Orientation): pixel for pixel on the image it references, which carries the spacing.
        del dataset.PixelSpacing
    # Patient and study attributes of type 2 (present, may be empty) that the SEG copies from
    # its source; exported radiographs often lack them, which is no reason to refuse them.
    for keyword in _TYPE_2_COPIED:
        if keyword not in dataset:
            setattr(dataset, keyword, "")

    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        version=algorithm_version,
        family=codes.cid7162.ArtificialIntelligence,
        source=_MANUFACTURER,
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=segment_label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    try:
        segmentation = hd.seg.Segmentation(
            source_images=[dataset],
            pixel_array=mask,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment],
            series_instance_uid=hd.UID(),
            series_number=SEGMENTATION_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=_MANUFACTURER,
            manufacturer_model_name=algorithm_name,
            software_versions=f"btseg {btseg.__version__}",
            device_serial_number="none (software)",
            content_label="BTSEG",
            content_description=series_description[:64],
            series_description=series_description,
            omit_empty_frames=False,  # an empty mask is still one (empty) frame
        )
    except (AttributeError, ValueError) as error:  # what highdicom says of the source
        raise ImageError(
            f"cannot be the source of a DICOM SEG: {error}",
            where=label,
            fix="Export the radiograph again as a single-frame DICOM image (DX, CR or "
            "secondary capture) from the PACS or viewer",
        ) from None
    buffer = io.BytesIO()
    segmentation.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _read_source(source: bytes | str | Path, label: str):
    """The source as a pydicom Dataset, checked for what a SEG of it needs."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import SegmentationStorage

    if isinstance(source, bytes | bytearray | memoryview):
        stream = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(
                "the source image does not exist" if not path.exists() else "is not a file",
                where=label,
                fix=f"Check the path {path}",
            )
        stream = io.BytesIO(path.read_bytes())
    try:
        dataset = pydicom.dcmread(stream)
    except (InvalidDicomError, EOFError, ValueError, OSError):
        raise ImageError(
            "is not a DICOM file: a DICOM SEG can only be written for a DICOM source image",
            where=label,
            fix="Run btseg on the radiograph's DICOM file to get a DICOM SEG; for JPEG or PNG "
            "inputs use the mask PNG or the LabelMe file instead",
        ) from None
    missing = [name for keyword, name in REQUIRED_ATTRIBUTES.items() if keyword not in dataset]
    if missing:
        names = ", ".join(missing)
        raise ImageError(
            f"is a DICOM file without {names}, which a DICOM SEG needs to reference it",
            where=label,
            fix=_FIX_EXPORT.format(names=names),
        )
    if dataset.SOPClassUID == SegmentationStorage:
        raise ImageError(
            "is itself a DICOM Segmentation, not an image",
            where=label,
            fix="Give the radiograph the segmentation was made of",
        )
    if not any(tag in dataset for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageError(
            "is a DICOM file without pixel data (not an image)",
            where=label,
            fix="Export the radiograph itself (the image instance) from the PACS or viewer",
        )
    try:
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    if frames > 1:
        raise ImageError(
            f"is a multi-frame DICOM image ({frames} frames); btseg segments single-frame "
            "radiographs only",
            where=label,
            fix="Export the one radiograph (a single frame) and run btseg on it",
        )
    return dataset


def _binary_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) {0, 1} or bool -> (H, W) uint8 {0, 1}, checked against the source's shape."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    if mask.shape != shape:
        raise ValueError(
            f"mask shape {mask.shape} differs from the source image's (Rows, Columns) {shape}; "
            "give the mask at the original image resolution"
        )
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise ValueError("mask must hold only 0 and 1 (or be boolean)")
    return mask.astype(np.uint8)
