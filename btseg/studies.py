"""Studies: the views of one patient examination, and one verdict from all of them.

    key = study_key("knee_ap.png", image)          # "knee" (name prefix) or the DICOM study
    verdict = study_verdict([verdict_ap, verdict_lateral])

Grouping: a DICOM image belongs to the study its StudyInstanceUID (and PatientID) names; any
other file to the study named by its file name without the last part after "_", "-" or a space
("knee_ap.png" and "knee_lateral.png" -> "knee"), or by a grouping the user sets.

The study verdict (STUDY_RULE): the most severe confident tumour finding among the views
(malignant before benign), a finding being confident when the classifier gives its class at least
CONFIDENT_PROBABILITY; otherwise the most severe unconfident tumour finding, marked as such;
otherwise normal when any view was judged normal; otherwise inconclusive (no view could be
judged). One view showing a malignant lesion makes the study malignant, as a radiologist reads
a study: the views are different looks at one patient, not votes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from btseg.data.images import DecodedImage
from btseg.decisions import Verdict

#: A tumour finding is confident when its class has at least this probability.
CONFIDENT_PROBABILITY = 0.5
#: Severity order of the verdicts (higher is more severe).
SEVERITY = {"inconclusive": -1, "normal": 0, "tumour": 1, "benign": 2, "malignant": 3}
STUDY_RULE = (
    "the most severe confident tumour finding among the views (malignant, then benign; "
    f"confident = class probability at least {CONFIDENT_PROBABILITY:.0%}); else the most severe "
    "unconfident finding, marked low confidence; else normal if any view was judged normal; "
    "else inconclusive"
)
_SEPARATORS = re.compile(r"[_\- ]+")


def name_prefix(file_name: str) -> str:
    """The study a file name suggests: its stem without the last part after "_", "-" or a
    space ("knee_ap.png" -> "knee"); a stem without such a part is its own study."""
    stem = Path(file_name).stem
    parts = [part for part in _SEPARATORS.split(stem) if part]
    if len(parts) < 2:
        return stem or file_name
    cut = stem.rstrip("_- ").rsplit(parts[-1], 1)[0]
    return cut.rstrip("_- ") or stem


def study_key(
    file_name: str, image: DecodedImage | None, groups: Mapping[str, str] | None = None
) -> str:
    """The study of one file: the user's grouping when it names the file, else the DICOM
    study (PatientID / StudyInstanceUID), else the file-name prefix."""
    if groups and file_name in groups and str(groups[file_name]).strip():
        return str(groups[file_name]).strip()
    if image is not None and image.study_uid:
        patient = f"{image.patient_id} / " if image.patient_id else ""
        return f"{patient}{image.study_uid}"
    return name_prefix(file_name)


def _confidence(verdict: Verdict) -> float:
    return float(verdict.probabilities.get(verdict.label, 0.0)) if verdict.probabilities else 0.0


def study_verdict(verdicts: Sequence[Verdict]) -> Verdict:
    """One verdict for the views of a study (STUDY_RULE); its reason names the deciding view(s)
    by their position (1-based) in ``verdicts``."""
    if not verdicts:
        return Verdict("inconclusive", "the study has no image")
    tumours = [
        (index, verdict)
        for index, verdict in enumerate(verdicts, start=1)
        if verdict.label in ("benign", "malignant", "tumour")
    ]
    confident = [
        (index, verdict)
        for index, verdict in tumours
        if verdict.label == "tumour" or _confidence(verdict) >= CONFIDENT_PROBABILITY
    ]
    for pool, note in ((confident, ""), (tumours, " (low confidence: no view is confident)")):
        if pool:
            index, worst = max(pool, key=lambda item: (SEVERITY[item[1].label], _confidence(item[1])))
            return Verdict(
                worst.label,
                f"view {index} of {len(verdicts)}: {worst.reason}{note}",
                dict(worst.probabilities),
                None,
            )
    normal = [index for index, verdict in enumerate(verdicts, start=1) if verdict.label == "normal"]
    if normal:
        return Verdict(
            "normal",
            f"{len(normal)} of {len(verdicts)} views judged normal, none shows a tumour"
            + ("" if len(normal) == len(verdicts) else "; the others were inconclusive"),
        )
    return Verdict("inconclusive", f"none of the {len(verdicts)} views could be judged")


def group_by_study(
    files: Sequence[tuple[str, DecodedImage | None]], groups: Mapping[str, str] | None = None
) -> dict[str, list[int]]:
    """{study key: positions in ``files``} in the order studies first appear."""
    studies: dict[str, list[int]] = {}
    for position, (file_name, image) in enumerate(files):
        studies.setdefault(study_key(file_name, image, groups), []).append(position)
    return studies
