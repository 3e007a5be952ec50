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
- an image without content: (nearly) one grey value;
- an image that does not look like the radiographs the models were trained on: the Mahalanobis
  distance of its appearance (grey-level and edge statistics, ``appearance_features``) from the
  training radiographs exceeds a threshold chosen on the validation radiographs
  (``AppearanceGate``, fitted by ``fit_appearance_gate`` and saved as models/input_gate.json).

``allow_any_modality`` lets a user who knows better run the models on another modality; the
other checks always apply. A refused image gets the verdict "inconclusive" with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from btseg.data.images import DecodedImage
from btseg.errors import RunError

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


def check_input(
    image: DecodedImage,
    allow_any_modality: bool = False,
    appearance: AppearanceGate | None = None,
) -> GateResult:
    """Check one decoded image (see the module docstring for the rules); the appearance check
    runs when an ``appearance`` gate is given."""
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
    if appearance is not None:
        distance = appearance.distance(image.pixels)
        if distance > appearance.threshold:
            return GateResult(
                False,
                f"does not look like the radiographs the models were trained on (appearance "
                f"distance {distance:.1f}, above the {appearance.threshold:.1f} that "
                f"{100 * appearance.quantile:.0f}% of validation radiographs stay under)",
                "use a bone radiograph like those of the training data; results on other images "
                "would mean nothing",
            )
        notes.append(f"appearance distance {distance:.1f} (limit {appearance.threshold:.1f})")
    return GateResult(True, notes=tuple(notes))


# ------------------------------------------------------------------------------------------------
# Appearance: is it like the training radiographs?

APPEARANCE_FILE = "input_gate.json"
#: Images are described at this long side.
APPEARANCE_SIDE = 128
#: Share of validation radiographs the threshold lets through ...
APPEARANCE_QUANTILE = 0.99
#: ... and the floor: the chi-square quantile of a Gaussian of the fitted covariance.
GAUSSIAN_FLOOR = 0.999
APPEARANCE_FEATURES = (
    "q01", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "q99", "mean", "std", "dark_share",
    "bright_share", "edge_q50", "edge_q75", "edge_q90", "edge_q99", "log_laplacian_var",
    "row_profile_std", "column_profile_std",
)  # fmt: skip


def appearance_features(pixels: np.ndarray) -> np.ndarray:
    """(len(APPEARANCE_FEATURES),) float64 description of a (H, W) uint8 grayscale image at a
    long side of APPEARANCE_SIDE: grey-level quantiles, mean and spread, shares of black and
    white, edge-strength quantiles, texture (log variance of the Laplacian) and how much the
    row and column mean profiles vary."""
    import cv2

    pixels = np.asarray(pixels)
    height, width = pixels.shape[:2]
    scale = APPEARANCE_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    quantiles = np.percentile(small, [1, 5, 10, 25, 50, 75, 90, 95, 99])
    gradient_x = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gradient_y = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    edges = np.hypot(gradient_x, gradient_y)
    laplacian = cv2.Laplacian(small, cv2.CV_32F)
    return np.array(
        [
            *quantiles,
            small.mean(),
            small.std(),
            (small < 0.05).mean(),
            (small > 0.95).mean(),
            *np.percentile(edges, [50, 75, 90, 99]),
            math.log(float(laplacian.var()) + 1e-6),
            small.mean(axis=1).std(),
            small.mean(axis=0).std(),
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class AppearanceGate:
    """The appearance of the training radiographs: mean and (shrunk) inverse covariance of
    their features, and the distance threshold chosen on validation radiographs.

    Attributes:
        mean: (F,) feature mean of the training radiographs.
        precision: (F, F) inverse of the Ledoit-Wolf covariance.
        threshold: the Mahalanobis distance above which an image is refused.
        quantile: share of validation radiographs under the threshold.
        data_fingerprint: the data it was fitted on.
        report: counts and refusal rates measured when it was fitted.
    """

    mean: np.ndarray
    precision: np.ndarray
    threshold: float
    quantile: float
    data_fingerprint: str
    report: dict[str, Any]

    def distance(self, pixels: np.ndarray) -> float:
        """Mahalanobis distance of an image's appearance from the training radiographs."""
        return self.distances([appearance_features(pixels)])[0]

    def distances(self, features: Iterable[np.ndarray]) -> np.ndarray:
        difference = np.asarray(list(features), dtype=np.float64) - self.mean
        return np.sqrt(np.einsum("nf,fg,ng->n", difference, self.precision, difference))

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(APPEARANCE_FEATURES),
            "side_px": APPEARANCE_SIDE,
            "mean": self.mean.tolist(),
            "precision": self.precision.tolist(),
            "threshold": self.threshold,
            "quantile": self.quantile,
            "data_fingerprint": self.data_fingerprint,
            "report": self.report,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> AppearanceGate:
        if list(payload.get("features", [])) != list(APPEARANCE_FEATURES):
            raise ValueError("the features differ from this version's")
        mean = np.asarray(payload["mean"], dtype=np.float64)
        precision = np.asarray(payload["precision"], dtype=np.float64)
        if precision.shape != (mean.size, mean.size):
            raise ValueError("mean and precision disagree in shape")
        return cls(
            mean, precision, float(payload["threshold"]), float(payload["quantile"]),
            str(payload.get("data_fingerprint", "")), dict(payload.get("report") or {}),
        )  # fmt: skip


def fit_appearance_gate(
    training: Sequence[np.ndarray],
    validation: Sequence[np.ndarray],
    non_radiographs: Sequence[np.ndarray],
    data_fingerprint: str = "",
    quantile: float = APPEARANCE_QUANTILE,
) -> AppearanceGate:
    """Fit the appearance gate: features of the training radiographs (mean, Ledoit-Wolf
    covariance), threshold = the ``quantile`` of the validation radiographs' distances, and the
    share of ``non_radiographs`` it refuses (recorded in the report, not used to choose).

    Raises:
        ValueError: fewer than 10 training or 5 validation images.
    """
    from scipy.stats import chi2
    from sklearn.covariance import LedoitWolf

    if len(training) < 10 or len(validation) < 3:
        raise ValueError(
            f"{len(training)} training and {len(validation)} validation images are too few to "
            "describe the radiographs (at least 10 and 3)"
        )
    features = np.stack([appearance_features(image) for image in training])
    estimator = LedoitWolf().fit(features)
    gate = AppearanceGate(
        estimator.location_, estimator.precision_, math.inf, quantile, data_fingerprint, {}
    )
    validation_distances = gate.distances(appearance_features(image) for image in validation)
    # Never tighter than the distance a Gaussian of this covariance exceeds once in a thousand
    # draws: with few validation images their quantile alone is a noisy estimate.
    floor = math.sqrt(chi2.ppf(GAUSSIAN_FLOOR, df=features.shape[1]))
    threshold = max(float(np.quantile(validation_distances, quantile)), floor)
    others = gate.distances(appearance_features(image) for image in non_radiographs)
    report = {
        "training_images": len(training),
        "validation_images": len(validation),
        "non_radiographs": len(non_radiographs),
        "validation_refused": float(np.mean(validation_distances > threshold)),
        "non_radiographs_refused": float(np.mean(others > threshold)) if len(others) else None,
        "criterion": (
            f"the {quantile:.0%} quantile of the validation radiographs' distances, at least "
            f"the distance a Gaussian of the fitted covariance exceeds with probability "
            f"{1 - GAUSSIAN_FLOOR:.1%} ({floor:.2f})"
        ),
    }
    return AppearanceGate(
        gate.mean, gate.precision, threshold, quantile, data_fingerprint, report
    )


def non_radiographs(seed: int = 0, count: int = 24) -> list[np.ndarray]:
    """Images that are not bone radiographs, made here or taken from installed packages (no
    patient data): noise, smooth gradients, blobs, checkerboards, text, a photograph-like scene,
    and the CT, MR and nuclear-medicine images that ship with pydicom."""
    import cv2

    rng = np.random.default_rng(seed)
    images: list[np.ndarray] = []
    makers: list[Callable[[], np.ndarray]] = []

    def noise() -> np.ndarray:
        return rng.integers(0, 256, (int(rng.integers(200, 600)), int(rng.integers(200, 600))),
                            dtype=np.uint8)  # fmt: skip

    def gradient() -> np.ndarray:
        height, width = int(rng.integers(200, 600)), int(rng.integers(200, 600))
        ramp = np.linspace(rng.uniform(0, 100), rng.uniform(150, 255), width)
        return np.tile(ramp, (height, 1)).astype(np.uint8)

    def blobs() -> np.ndarray:
        image = np.full((400, 400), int(rng.integers(0, 255)), np.uint8)
        for _ in range(int(rng.integers(3, 12))):
            centre = (int(rng.integers(0, 400)), int(rng.integers(0, 400)))
            cv2.circle(image, centre, int(rng.integers(10, 80)), int(rng.integers(0, 256)), -1)
        return image

    def checkerboard() -> np.ndarray:
        cell = int(rng.integers(8, 60))
        grid = (np.indices((400, 400)) // cell).sum(axis=0) % 2
        return (grid * 255).astype(np.uint8)

    def text() -> np.ndarray:
        image = np.full((400, 500), 255, np.uint8)
        for line in range(int(rng.integers(5, 15))):
            cv2.putText(image, "Lorem ipsum dolor sit amet " * 2, (5, 30 + 25 * line),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.6, 0, 1)  # fmt: skip
        return image

    def scene() -> np.ndarray:
        sky = np.linspace(220, 160, 300)[:, None] * np.ones((1, 450))
        image = sky.astype(np.uint8)
        cv2.rectangle(image, (0, 200), (450, 300), int(rng.integers(40, 120)), -1)
        cv2.circle(image, (int(rng.integers(50, 400)), 60), 30, 250, -1)
        return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)

    makers = [noise, gradient, blobs, checkerboard, text, scene]
    for index in range(count):
        images.append(makers[index % len(makers)]())
    images.extend(_pydicom_images())
    return images


def _pydicom_images() -> list[np.ndarray]:
    """The CT, MR and NM images that ship with pydicom, decoded as btseg reads DICOM."""
    from btseg.data.images import read_image
    from btseg.errors import BtsegError

    folder = Path(__import__("pydicom").__file__).parent / "data" / "test_files"
    images = []
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "emri_small.dcm"):
        try:
            images.append(read_image(folder / name).pixels)
        except BtsegError:
            continue
    return images


def save_appearance_gate(gate: AppearanceGate, models_dir: str | Path) -> Path:
    from btseg.outputs import atomic_write_json

    path = Path(models_dir) / APPEARANCE_FILE
    atomic_write_json(path, gate.to_json())
    return path


def load_appearance_gate(models_dir: str | Path) -> AppearanceGate | None:
    """The fitted appearance gate in ``models_dir``, or None when there is none.

    Raises:
        RunError: the file exists but cannot be read.
    """
    import json

    path = Path(models_dir) / APPEARANCE_FILE
    if not path.is_file():
        return None
    try:
        return AppearanceGate.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunError(
            f"the input gate cannot be read ({error})",
            where=str(path),
            fix="fit it again: btseg fit-gate",
        ) from None


def fit_for_dataset(
    data_dir: str | Path,
    models_dir: str | Path,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    max_images: int = 400,
    progress: Callable[[str], None] | None = None,
) -> AppearanceGate:
    """Fit the appearance gate on a dataset's training radiographs (at most ``max_images``),
    choose its threshold on the validation radiographs, measure it on ``non_radiographs`` and
    save it as models_dir/input_gate.json.

    Raises:
        DataError: the dataset cannot be read. ValueError: too few images.
    """
    from btseg.config import cache_dir as default_cache_dir
    from btseg.data.btxrd import open_dataset
    from btseg.data.cache import data_fingerprint
    from btseg.data.images import read_image
    from btseg.data.splits import split_for
    from btseg.errors import BtsegError

    dataset = open_dataset(data_dir)
    split = split_for(dataset, cache_dir=Path(cache_dir or default_cache_dir()), seed=seed)
    paths = dict(zip(dataset.usable["image_id"].astype(str), dataset.usable["image_path"],
                     strict=True))  # fmt: skip
    rng = np.random.default_rng(seed)

    def images(part: str) -> list[np.ndarray]:
        ids = [image_id for image_id in split.ids(part) if image_id in paths]
        if len(ids) > max_images:
            ids = [ids[i] for i in sorted(rng.choice(len(ids), max_images, replace=False))]
        decoded = []
        for image_id in ids:
            try:
                decoded.append(read_image(paths[image_id]).pixels)
            except BtsegError:
                continue
        return decoded

    if progress is not None:
        progress("Fitting the input gate on the training radiographs")
    gate = fit_appearance_gate(
        images("train"), images("val"), non_radiographs(seed), data_fingerprint(dataset.usable)
    )
    save_appearance_gate(gate, models_dir)
    return gate
