"""The synthetic radiographs also as DICOM files, for DICOM viewers and the DICOM paths of btseg.

``write_dicom_files`` reads a written synthetic set (its table and JPEG images) and writes
``dicom/<image stem>.dcm`` beside images/: Digital X-Ray Image Storage - For Presentation,
Modality DX, 8-bit MONOCHROME2 holding the JPEG's grey values unchanged (window 128 / 256, the
identity), Pixel Spacing and Imager Pixel Spacing of 0.10-0.20 mm per image, Body Part Examined
from the site (tumour images) or the region (normal images). The views of one surrogate patient
(btseg.data.splits.surrogate_patient_ids) share a Patient ID ("SYN<seed>-<id>"), a patient name
("SYNTHETIC^<id>") and a Study Instance UID; each image is its own series. UIDs are derived from
the seed, the number of images and the patient's or image's id, so writing the same set again
gives the same files. The JPEG images and the table are not touched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DICOM_FOLDER = "dicom"
PIXEL_SPACING_MM = (0.10, 0.20)
_UID_SOURCE = "btseg synthetic BTXRD"

#: Body Part Examined (DICOM PS3.16 Annex L terms) of each BTXRD site and region.
BODY_PART: dict[str, str] = {
    "hand": "HAND", "ulna": "ULNA", "radius": "RADIUS", "humerus": "HUMERUS", "foot": "FOOT",
    "tibia": "TIBIA", "fibula": "FIBULA", "femur": "FEMUR", "hip bone": "PELVIS",
    "ankle-joint": "ANKLE", "knee-joint": "KNEE", "hip-joint": "HIP", "wrist-joint": "WRIST",
    "elbow-joint": "ELBOW", "shoulder-joint": "SHOULDER",
    "upper limb": "UPPERLIMB", "lower limb": "LOWERLIMB", "pelvis": "PELVIS",
}  # fmt: skip


def study_uid(seed: int, n: int, first_image_id: str) -> str:
    """The Study Instance UID of the surrogate patient whose first image is `first_image_id`."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[_UID_SOURCE, str(seed), str(n), "study", first_image_id]))


def pixel_spacing_mm(seed: int, image_id: str) -> float:
    """The square pixel spacing of one image, 0.10-0.20 mm, fixed by the seed and its id."""
    import hashlib

    digest = hashlib.sha256(f"{_UID_SOURCE}:{seed}:{image_id}:spacing".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    low, high = PIXEL_SPACING_MM
    return round(low + fraction * (high - low), 3)


def write_dicom_files(data_dir: str | Path, seed: int, n: int) -> list[Path]:
    """Write ``<data_dir>/dicom/<stem>.dcm`` for every image of the synthetic set at `data_dir`.

    Args:
        data_dir: a synthetic dataset folder (dataset.xlsx and images/ written).
        seed, n: the seed and number of images it was generated with (they enter the UIDs).

    Returns:
        The paths written, in table order.
    """
    from pydicom.uid import generate_uid

    from btseg.data.btxrd import open_dataset
    from btseg.data.images import read_image
    from btseg.data.splits import surrogate_patient_ids

    data_dir = Path(data_dir)
    table = open_dataset(data_dir).table
    table = table[table["has_image"].to_numpy(dtype=bool)]
    patients = surrogate_patient_ids(table)
    first_image = {}
    for image_id, patient in zip(table["image_id"], patients, strict=True):
        first_image.setdefault(int(patient), str(image_id))  # the group's first row
    out_dir = data_dir / DICOM_FOLDER
    out_dir.mkdir(exist_ok=True)
    written = []
    for (_, row), patient in zip(table.iterrows(), patients, strict=True):
        image_id = str(row["image_id"])
        patient = int(patient)

        def uid(kind: str, key: str = image_id) -> str:
            return str(generate_uid(entropy_srcs=[_UID_SOURCE, str(seed), str(n), kind, key]))

        path = out_dir / f"{image_id.rsplit('.', 1)[0]}.dcm"
        _write_one(
            path,
            read_image(row["image_path"]).pixels,
            row,
            patient=patient,
            patient_id=f"SYN{seed}-{patient:05d}",
            study_instance_uid=study_uid(seed, n, first_image[patient]),
            series_instance_uid=uid("series"),
            sop_instance_uid=uid("instance"),
            spacing=pixel_spacing_mm(seed, image_id),
        )
        written.append(path)
    return written


def _write_one(
    path: Path,
    pixels: np.ndarray,
    row,
    *,
    patient: int,
    patient_id: str,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    spacing: float,
) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

    import btseg

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta

    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = sop_instance_uid
    # Patient
    ds.PatientName = f"SYNTHETIC^{patient}"
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    gender = str(row.get("gender") or "").upper()
    ds.PatientSex = gender if gender in ("M", "F") else ""
    age = row.get("age")
    if age is not None and np.isfinite(float(age)):
        ds.PatientAge = f"{int(age):03d}Y"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "synthetic image generated by btseg; no real patient"
    # Study
    ds.StudyInstanceUID = study_instance_uid
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic bone radiographs (btseg)"
    # Series (one image each)
    ds.Modality = "DX"
    ds.SeriesInstanceUID = series_instance_uid
    ds.SeriesNumber = 1
    ds.SeriesDescription = f"{row.get('region') or ''} {row.get('view') or ''}".strip()[:64]
    body_part = BODY_PART.get(str(row.get("site") or "")) or BODY_PART.get(
        str(row.get("region") or "")
    )
    if body_part:
        ds.BodyPartExamined = body_part
    ds.PresentationIntentType = "FOR PRESENTATION"
    # Equipment
    ds.Manufacturer = "btseg (synthetic)"
    ds.SoftwareVersions = f"btseg {btseg.__version__}"
    # Image
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ContentDate = ""
    ds.ContentTime = ""
    ds.BurnedInAnnotation = "YES"  # the rendered L/R marker
    ds.LossyImageCompression = "01"  # the pixels come from the JPEG
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.PixelSpacing = [spacing, spacing]
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    ds.WindowCenter = 128  # with width 256 the window maps each stored value to itself
    ds.WindowWidth = 256
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
