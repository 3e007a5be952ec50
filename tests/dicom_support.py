"""Small DICOM digital X-ray files for the tests that read DICOM (test_images.py, test_predict.py,
app/test_segment_page.py)."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DIGITAL_XRAY = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def write_dicom(target: Path | BinaryIO, values, photometric: str = "MONOCHROME2", frames: int = 1,
                bits: int = 12, **elements) -> Path | BinaryIO:
    """A DX DICOM of `values` ((rows, columns), or (frames, rows, columns)) in `bits` stored bits
    (8 bits in 8-bit words, more in 16-bit ones), written to `target` (a path or a binary stream)
    with any further data elements given by keyword (PixelSpacing=[0.2, 0.2], ...). Returns
    `target`."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DIGITAL_XRAY
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "DX"
    values = np.ascontiguousarray(values, dtype=np.uint8 if bits <= 8 else np.uint16)
    dataset.Rows, dataset.Columns = values.shape[-2:]
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated = 8 * values.itemsize
    dataset.BitsStored = bits
    dataset.HighBit = bits - 1
    dataset.PixelRepresentation = 0
    if frames > 1:
        dataset.NumberOfFrames = frames
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = values.tobytes()
    dataset.save_as(target, enforce_file_format=True)
    return target
