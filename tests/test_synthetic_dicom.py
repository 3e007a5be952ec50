"""The synthetic set as DICOM (`btseg demo-data --dicom`): DX files that btseg reads back and
accepts, one study per surrogate patient, the same UIDs when written again, and the JPEG set
unchanged."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import DigitalXRayImageStorageForPresentation

from btseg.cli import main
from btseg.data.btxrd import open_dataset
from btseg.data.images import read_image
from btseg.data.splits import surrogate_patient_ids
from btseg.gate import check_input
from btseg.synthetic import generate
from btseg.synthetic.dicom import BODY_PART, PIXEL_SPACING_MM

N, SEED = 20, 3


@pytest.fixture(scope="module")
def dicom_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dicom") / "synthetic"
    assert (
        main(["demo-data", "--out", str(out), "--n", str(N), "--seed", str(SEED), "--dicom"]) == 0
    )
    return out


@pytest.fixture(scope="module")
def table(dicom_set: Path) -> pd.DataFrame:
    table = open_dataset(dicom_set).table
    return table.assign(patient=surrogate_patient_ids(table).to_numpy())


def dicom_path(root: Path, image_id: str) -> Path:
    return root / "dicom" / f"{image_id.rsplit('.', 1)[0]}.dcm"


def headers(root: Path, table: pd.DataFrame) -> dict[str, pydicom.Dataset]:
    return {
        image_id: pydicom.dcmread(dicom_path(root, image_id), stop_before_pixels=True)
        for image_id in table["image_id"]
    }


def test_one_dicom_file_per_image(dicom_set: Path, table: pd.DataFrame) -> None:
    files = sorted(path.name for path in (dicom_set / "dicom").iterdir())
    assert len(files) == N == len(table)
    assert all(dicom_path(dicom_set, image_id).is_file() for image_id in table["image_id"])


def test_files_are_8_bit_dx_for_presentation(dicom_set: Path, table: pd.DataFrame) -> None:
    for image_id, row in table.set_index("image_id").iterrows():
        ds = pydicom.dcmread(dicom_path(dicom_set, image_id))
        assert ds.SOPClassUID == DigitalXRayImageStorageForPresentation
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "DX"
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.BitsAllocated, ds.BitsStored, ds.SamplesPerPixel) == (8, 8, 1)
        assert ds.PatientName == f"SYNTHETIC^{row['patient']}"
        assert list(ds.PixelSpacing) == list(ds.ImagerPixelSpacing)
        low, high = PIXEL_SPACING_MM
        assert low <= float(ds.PixelSpacing[0]) <= high
        assert ds.BodyPartExamined == BODY_PART[row["site"] or row["region"]]


def test_btseg_reads_them_back_as_the_jpeg_pixels(dicom_set: Path, table: pd.DataFrame) -> None:
    for image_id, image_path in zip(table["image_id"], table["image_path"], strict=True):
        dicom = read_image(dicom_path(dicom_set, image_id))
        jpeg = read_image(image_path)
        assert dicom.format == "DICOM"
        assert dicom.modality == "DX"
        spacing = pydicom.dcmread(dicom_path(dicom_set, image_id)).PixelSpacing
        assert dicom.pixel_spacing_mm == (float(spacing[0]), float(spacing[1]))
        np.testing.assert_array_equal(dicom.pixels, jpeg.pixels)
        assert check_input(dicom).accepted


def test_one_study_per_surrogate_patient(dicom_set: Path, table: pd.DataFrame) -> None:
    by_id = headers(dicom_set, table)
    studies: dict[int, set[str]] = defaultdict(set)
    patient_ids: dict[int, set[str]] = defaultdict(set)
    for image_id, patient in zip(table["image_id"], table["patient"], strict=True):
        studies[patient].add(by_id[image_id].StudyInstanceUID)
        patient_ids[patient].add(by_id[image_id].PatientID)
    assert any((table["patient"] == patient).sum() > 1 for patient in studies)  # several views
    assert all(len(uids) == 1 for uids in studies.values())
    assert all(len(ids) == 1 for ids in patient_ids.values())
    study_of = [next(iter(uids)) for uids in studies.values()]
    assert len(set(study_of)) == len(study_of)  # patients differ
    assert len({next(iter(ids)) for ids in patient_ids.values()}) == len(patient_ids)
    # each image is its own series and instance
    assert len({ds.SeriesInstanceUID for ds in by_id.values()}) == N
    assert len({ds.SOPInstanceUID for ds in by_id.values()}) == N


def test_written_again_gives_the_same_files_and_the_same_jpeg_set(
    dicom_set: Path, table: pd.DataFrame, tmp_path: Path
) -> None:
    again = generate(tmp_path / "again", n=N, seed=SEED, dicom=True)
    for image_id in table["image_id"]:
        assert (
            dicom_path(again, image_id).read_bytes() == dicom_path(dicom_set, image_id).read_bytes()
        )
    plain = generate(tmp_path / "plain", n=N, seed=SEED)
    assert not (plain / "dicom").exists()
    for folder in ("images", "Annotations"):
        names = sorted(path.name for path in (plain / folder).iterdir())
        assert names == sorted(path.name for path in (dicom_set / folder).iterdir())
        for name in names:
            assert (plain / folder / name).read_bytes() == (dicom_set / folder / name).read_bytes()
    pd.testing.assert_frame_equal(
        pd.read_excel(plain / "dataset.xlsx"), pd.read_excel(dicom_set / "dataset.xlsx")
    )


def test_another_seed_gives_other_studies(
    dicom_set: Path, table: pd.DataFrame, tmp_path: Path
) -> None:
    other = generate(tmp_path / "other", n=N, seed=SEED + 1, dicom=True)
    mine = {ds.StudyInstanceUID for ds in headers(dicom_set, table).values()}
    theirs = {
        pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID
        for path in (other / "dicom").iterdir()
    }
    assert not mine & theirs
