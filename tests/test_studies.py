"""btseg.studies: grouping views into studies and one verdict per study."""

from __future__ import annotations

import numpy as np

from btseg.data.images import DecodedImage
from btseg.decisions import Verdict
from btseg.studies import group_by_study, name_prefix, study_key, study_verdict


def dicom(study: str, patient: str = "P1") -> DecodedImage:
    return DecodedImage(np.zeros((4, 4), np.uint8), "x.dcm", "DICOM", 8, None, "MONOCHROME2",
                        modality="DX", study_uid=study, patient_id=patient)  # fmt: skip


def test_name_prefix():
    assert name_prefix("knee_ap.png") == "knee"
    assert name_prefix("knee-lateral.jpeg") == "knee"
    assert name_prefix("patient 12 - lateral.png") == "patient 12"
    assert name_prefix("IMG000001.jpeg") == "IMG000001"
    assert name_prefix("a_b_c.png") == "a_b"


def test_study_key_prefers_the_user_then_dicom_then_the_name():
    assert study_key("knee_ap.png", None) == "knee"
    assert study_key("x_1.dcm", dicom("1.2.3")) == "P1 / 1.2.3"
    assert study_key("x_1.dcm", dicom("1.2.3"), {"x_1.dcm": "mine"}) == "mine"
    files = [("a_ap.png", None), ("a_lat.png", None), ("b.dcm", dicom("9")), ("c.dcm", dicom("9"))]
    assert group_by_study(files) == {"a": [0, 1], "P1 / 9": [2, 3]}


def verdict(label: str, probability: float | None = None) -> Verdict:
    probabilities = {} if probability is None else {label: probability}
    return Verdict(label, f"{label} reason", probabilities)


def test_the_most_severe_confident_finding_decides_the_study():
    result = study_verdict([verdict("normal"), verdict("benign", 0.8), verdict("malignant", 0.7)])
    assert result.label == "malignant" and result.reason.startswith("view 3 of 3")
    # An unconfident malignant finding yields to a confident benign one.
    result = study_verdict([verdict("malignant", 0.4), verdict("benign", 0.9)])
    assert result.label == "benign" and "view 2" in result.reason
    result = study_verdict([verdict("malignant", 0.4), verdict("normal")])
    assert result.label == "malignant" and "low confidence" in result.reason
    result = study_verdict([verdict("normal"), verdict("inconclusive")])
    assert result.label == "normal" and "the others were inconclusive" in result.reason
    assert study_verdict([verdict("inconclusive")]).label == "inconclusive"
    assert study_verdict([]).label == "inconclusive"
