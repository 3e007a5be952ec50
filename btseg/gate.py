"""The input gate: is this a bone radiograph btseg can judge? Checked before any model runs, for
`btseg predict` and the Segment page alike.

    result = check_input(read_image("chest_ct.dcm"))
    result.accepted        # False
    result.reason          # "is a CT image (DICOM Modality CT), not a radiograph ..."

What it refuses, and why:
- a DICOM image whose Modality is not a radiograph (CT, MR, NM, US, PT, ...): the models were
  trained on projection radiographs only. CR, DX and RG are accepted; no Modality or OT ("other")
  is accepted with a note, since many exported radiographs carry one of these;
- an image smaller than MIN_SIDE_PX on a side: too little to hold a bone and a lesion;
- an image without content: (nearly) one grey value.

``allow_any_modality`` lets a user who knows better run the models on another modality; the
other checks always apply. A refused image gets the verdict "inconclusive" with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from btseg.data.images import DecodedImage

#: DICOM modalities of projection radiographs.
RADIOGRAPH_MODALITIES = ("CR", "DX", "RG")
#: Modalities that say nothing about the kind of image.
UNSPECIFIED_MODALITIES = ("", "OT")
#: Names of the modalities a refusal names (DICOM PS3.3 C.7.3.1.1.1).
MODALITY_NAMES = {
    "CT": "CT", "MR": "MR", "NM": "nuclear medicine", "US": "ultrasound", "PT": "PET",
    "MG": "mammography", "XA": "angiography", "RF": "fluoroscopy", "SC": "secondary capture",
    "IO": "intra-oral radiograph", "PX": "panoramic dental radiograph", "ES": "endoscopy",
    "SM": "slide microscopy", "XC": "photograph", "OP": "ophthalmic photograph",
}  # fmt: skip
#: The shortest side, in pixels, of an image the gate accepts.
MIN_SIDE_PX = 64
#: An image whose 1st to 99th percentile grey values span less than this has no content.
MIN_CONTENT_RANGE = 8


@dataclass(frozen=True)
class GateResult:
    """The gate's answer: accepted or not, why not, and notes for an accepted image."""

    accepted: bool
    reason: str = ""
    fix: str = ""
    notes: tuple[str, ...] = ()


def check_input(image: DecodedImage, allow_any_modality: bool = False) -> GateResult:
    """Check one decoded image (see the module docstring for the rules)."""
    notes: list[str] = []
    modality = (image.modality or "").strip().upper()
    if image.format == "DICOM":
        if modality in RADIOGRAPH_MODALITIES:
            notes.append(f"DICOM Modality {modality}")
        elif modality in UNSPECIFIED_MODALITIES:
            notes.append(
                "DICOM without a Modality: taken for a radiograph"
                if not modality
                else "DICOM Modality OT (other): taken for a radiograph"
            )
        elif allow_any_modality:
            notes.append(
                f"DICOM Modality {modality} is not a radiograph; the models were run on it "
                "because the modality check was overridden"
            )
        else:
            name = MODALITY_NAMES.get(modality, modality)
            return GateResult(
                False,
                f"is a {name} image (DICOM Modality {modality}), not a radiograph: btseg's "
                "models were trained on X-ray radiographs of bones only",
                "use a radiograph (Modality CR, DX or RG); to run the models anyway, pass "
                "--allow-any-modality (or tick the override on the Segment page)",
            )
    height, width = image.shape
    if min(height, width) < MIN_SIDE_PX:
        return GateResult(
            False,
            f"is only {width} x {height} px: too small to show a bone and a lesion",
            f"use the full-resolution radiograph (at least {MIN_SIDE_PX} px on each side)",
        )
    low, high = np.percentile(image.pixels, [1, 99])
    if float(high) - float(low) < MIN_CONTENT_RANGE:
        return GateResult(
            False,
            "has no content: (nearly) every pixel has the same grey value",
            "check the export: the radiograph may have been saved blank or with the wrong window",
        )
    return GateResult(True, notes=tuple(notes))
