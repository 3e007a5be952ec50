"""Read and validate a BTXRD-format dataset folder.

A BTXRD folder holds dataset.xlsx (or dataset.csv) with one row per image and 37 columns,
images/ with the radiographs and Annotations/ with one LabelMe JSON per tumour image. Rows are
paired with files by stem, case-insensitively, whatever the extension written in the table.

`open_dataset` reads the table into a tidy DataFrame and collects every validation problem it
finds as a `Problem`: rows are never dropped or corrected. It raises DataError only when the
folder cannot be used at all (no table, unreadable table, essential columns missing, no image).
Reading an .xlsx with openpyxl is most of the cost (about 0.6 s for the 3,746 BTXRD rows);
everything after it is vectorised.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from btseg.errors import DataError

COLUMNS: tuple[str, ...] = (
    "image_id", "center", "age", "gender",
    "hand", "ulna", "radius", "humerus", "foot", "tibia", "fibula", "femur", "hip bone",
    "ankle-joint", "knee-joint", "hip-joint", "wrist-joint", "elbow-joint", "shoulder-joint",
    "tumor", "benign", "malignant",
    "osteochondroma", "multiple osteochondromas", "simple bone cyst", "giant cell tumor",
    "osteofibroma", "synovial osteochondroma", "other bt", "osteosarcoma", "other mt",
    "upper limb", "lower limb", "pelvis",
    "frontal", "lateral", "oblique",
)
SITE_COLUMNS: tuple[str, ...] = COLUMNS[4:19]
BONE_COLUMNS: tuple[str, ...] = SITE_COLUMNS[:9]
JOINT_COLUMNS: tuple[str, ...] = SITE_COLUMNS[9:]
LABEL_COLUMNS: tuple[str, ...] = ("tumor", "benign", "malignant")
BENIGN_SUBTYPES: tuple[str, ...] = COLUMNS[22:29]
MALIGNANT_SUBTYPES: tuple[str, ...] = COLUMNS[29:31]
SUBTYPE_COLUMNS: tuple[str, ...] = BENIGN_SUBTYPES + MALIGNANT_SUBTYPES
REGION_COLUMNS: tuple[str, ...] = ("upper limb", "lower limb", "pelvis")
VIEW_COLUMNS: tuple[str, ...] = ("frontal", "lateral", "oblique")
BINARY_COLUMNS: tuple[str, ...] = COLUMNS[4:]
#: Without these the table cannot say which image shows what.
ESSENTIAL_COLUMNS: tuple[str, ...] = ("image_id", "tumor", "benign", "malignant")

#: The region each anatomical site belongs to.
SITE_REGION: dict[str, str] = {
    **dict.fromkeys(
        ("hand", "ulna", "radius", "humerus", "wrist-joint", "elbow-joint", "shoulder-joint"),
        "upper limb",
    ),
    **dict.fromkeys(
        ("foot", "tibia", "fibula", "femur", "ankle-joint", "knee-joint"), "lower limb"
    ),
    **dict.fromkeys(("hip bone", "hip-joint"), "pelvis"),
}

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpeg", ".jpg", ".png", ".dcm")
TABLE_NAMES: tuple[str, ...] = ("dataset.xlsx", "dataset.csv")
IMAGES_FOLDER = "images"
ANNOTATIONS_FOLDER = "Annotations"

#: Tidy columns, in order; the 33 remaining original columns (0/1 ints) follow them.
TIDY_COLUMNS: tuple[str, ...] = (
    "image_id", "stem", "image_path", "annotation_path", "center", "age", "gender",
    "label", "subtype", "subtypes", "sites", "site", "region", "view", "has_image",
)

BTXRD_SOURCE = (
    "Download the real BTXRD dataset (figshare, DOI 10.6084/m9.figshare.27865398) and point "
    "btseg at the folder that holds dataset.xlsx, or write the synthetic set with "
    "`btseg demo-data --out DIR`"
)
PREVIEW_IDS = 5
_HEADER_SEARCH_ROWS = 10


@dataclass(frozen=True)
class Problem:
    """One validation finding about the dataset, covering every row or file it concerns.

    kind: a short key such as "missing_image", "label_conflict" (see open_dataset).
    message: a sentence naming the count and the first few ids.
    image_ids: every image id (or file name, for files without a row) concerned.
    count: how many rows, files or columns it concerns (defaults to len(image_ids)).
    """

    kind: str
    message: str
    image_ids: tuple[str, ...] = ()
    count: int = 0

    def __post_init__(self) -> None:
        if not self.count and self.image_ids:
            object.__setattr__(self, "count", len(self.image_ids))


@dataclass
class Dataset:
    """A BTXRD-format folder: its tidy table and the problems found while reading it."""

    root: Path
    table: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    table_path: Path | None = None
    missing_columns: tuple[str, ...] = ()  # BTXRD columns the table lacks (read as 0)

    @property
    def usable(self) -> pd.DataFrame:
        """Rows whose image file exists and is not empty."""
        return self.table[self.table["has_image"].to_numpy(dtype=bool)]

    @property
    def is_synthetic(self) -> bool:
        """True for the generated synthetic dataset (it carries SYNTHETIC.txt)."""
        return (self.root / "SYNTHETIC.txt").is_file()

    def problems_of(self, kind: str) -> list[Problem]:
        return [problem for problem in self.problems if problem.kind == kind]


def load_table(data_dir: str | Path) -> pd.DataFrame:
    """The tidy table of a BTXRD folder: open_dataset(data_dir).table."""
    return open_dataset(data_dir).table


def open_dataset(data_dir: str | Path) -> Dataset:
    """Read a BTXRD-format folder into a tidy table and a list of problems.

    The table has one row per table row, in the original order, with TIDY_COLUMNS followed by
    the other 33 original columns as 0/1 ints. Problems found (all reported, none fatal):
    missing_columns, duplicate_columns, missing_value, invalid_value, missing_image_id,
    duplicate_image_id, missing_image, empty_image, duplicate_file, orphan_file,
    orphan_annotation, unsupported_file, label_conflict, subtype_conflict, site_conflict,
    region_conflict, view_conflict, region_site_conflict, normal_with_annotation,
    missing_annotation.

    Raises:
        DataError: the folder or table is missing or unreadable, image_id or a label column
            (tumor, benign, malignant) is missing, or no row has an image file.
    """
    root = Path(data_dir).expanduser()
    if root.is_file() and root.name.lower() in TABLE_NAMES:
        root = root.parent
    if not root.is_dir():
        raise DataError(
            "the dataset folder does not exist" if not root.exists() else "this is not a folder",
            where=str(root),
            fix="Give the folder that holds dataset.xlsx, images/ and Annotations/. " + BTXRD_SOURCE,
        )
    layout = _locate(root)
    problems: list[Problem] = []
    raw, row_numbers = _read_raw_table(layout.table_path)
    columns = _match_columns(raw, layout.table_path, problems)
    raw = raw.iloc[:, list(columns.values())]
    raw.columns = list(columns.keys())

    table, names, flags = _tidy(raw, row_numbers, problems)
    _pair_files(table, names, layout, problems)
    _check_rows(table, names, flags, problems)

    if not table["has_image"].any():
        raise DataError(_no_image_problem(table, layout), where=str(root), fix=_no_image_fix(layout))
    missing = tuple(name for name in COLUMNS if name not in columns)
    return Dataset(
        root=root,
        table=table,
        problems=problems,
        table_path=layout.table_path,
        missing_columns=missing,
    )


# ------------------------------------------------------------------------------------------
# Folder layout


@dataclass
class _Layout:
    root: Path
    table_path: Path
    images_dir: Path | None
    annotations_dir: Path | None


def _locate(root: Path) -> _Layout:
    tables: dict[str, Path] = {}
    folders: dict[str, list[Path]] = {}
    other_tables: list[str] = []
    subfolders_with_table: list[str] = []
    with os.scandir(root) as entries:
        for entry in entries:
            lower = entry.name.lower()
            if entry.is_dir():
                folders.setdefault(lower, []).append(Path(entry.path))
                if any((Path(entry.path) / name).exists() for name in TABLE_NAMES):
                    subfolders_with_table.append(entry.name)
            elif lower in TABLE_NAMES:
                tables.setdefault(lower, Path(entry.path))
            elif lower.endswith((".xlsx", ".xls", ".csv")):
                other_tables.append(entry.name)

    def folder(name: str) -> Path | None:
        candidates = sorted(folders.get(name.lower(), []), key=lambda path: path.name != name)
        return candidates[0] if candidates else None

    table_path = tables.get("dataset.xlsx") or tables.get("dataset.csv")
    if table_path is None:
        hints = []
        if subfolders_with_table:
            hints.append(f"the subfolder {subfolders_with_table[0]}/ holds one: point btseg at it")
        if other_tables:
            hints.append(f"found {', '.join(sorted(other_tables)[:3])}: name the table dataset.xlsx")
        present = "; ".join(hints) + ". " if hints else ""
        raise DataError(
            "no metadata table: expected dataset.xlsx or dataset.csv beside images/ and "
            "Annotations/ (BTXRD layout)",
            where=str(root),
            fix=present + BTXRD_SOURCE,
        )
    return _Layout(root, table_path, folder(IMAGES_FOLDER), folder(ANNOTATIONS_FOLDER))


# ------------------------------------------------------------------------------------------
# Reading the table


def _read_raw_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """All cells as read (object dtype, columns by position; header cells in attrs["header"]).

    Returns the frame and each body row's 1-based spreadsheet row number.
    """
    fix = (
        "Open it in a spreadsheet program and save it again as .xlsx or .csv with the 37 BTXRD "
        "columns, or replace it with the original dataset.xlsx from BTXRD"
    )
    try:
        rows = _read_xlsx_rows(path) if path.suffix.lower() == ".xlsx" else _read_csv_rows(path)
    except DataError:
        raise
    except Exception as error:  # any failure to parse means the file is unusable
        kind = "an Excel workbook" if path.suffix.lower() == ".xlsx" else "a CSV file"
        raise DataError(
            f"cannot read the table as {kind} ({type(error).__name__}: {error})",
            where=str(path),
            fix=fix,
        ) from error
    # Blank rows (formatting left-overs) are skipped; spreadsheet row numbers are kept.
    numbered = [
        (number, row)
        for number, row in enumerate(rows, start=1)
        if any(not _is_blank(value) for value in row)
    ]
    if not numbered:
        raise DataError("the table is empty", where=str(path), fix=fix)
    header_index = 0
    for index, (_, row) in enumerate(numbered[:_HEADER_SEARCH_ROWS]):
        if "image id" in {_normalise_name(value) for value in row}:
            header_index = index
            break
    header = list(numbered[header_index][1])
    body = numbered[header_index + 1 :]
    width = max(len(header), max((len(row) for _, row in body), default=0))
    header += [None] * (width - len(header))
    frame = pd.DataFrame(
        [tuple(row) + (None,) * (width - len(row)) for _, row in body],
        columns=range(width),
        dtype=object,
    )
    frame.attrs["header"] = header
    return frame, np.array([number for number, _ in body], dtype=np.int64)


def _read_xlsx_rows(path: Path) -> list[tuple]:
    # openpyxl directly (the engine pandas.read_excel uses) skips pandas' per-cell conversion.
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # some writers store a wrong <dimension>; read every cell
        return list(sheet.iter_rows(values_only=True))
    finally:
        workbook.close()


def _read_csv_rows(path: Path) -> list[tuple]:
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if not text.strip():
        return []
    first_line = text.lstrip().split("\n", 1)[0]
    separator = max((",", ";", "\t"), key=first_line.count)
    from io import StringIO

    frame = pd.read_csv(
        StringIO(text), sep=separator, header=None, dtype=str, skip_blank_lines=True
    )
    return list(frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None))


def _is_blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _normalise_name(name: object) -> str:
    """Column-name key: case, surrounding space and -/_ separators ignored."""
    if name is None:
        return ""
    return re.sub(r"[\s_\-]+", " ", str(name).replace("\ufeff", "").strip().lower()).strip()


_CANONICAL_BY_KEY = {_normalise_name(name): name for name in COLUMNS}


def _match_columns(raw: pd.DataFrame, path: Path, problems: list[Problem]) -> dict[str, int]:
    """Canonical column name -> position in `raw`; reports or raises on missing columns."""
    header = raw.attrs["header"]
    positions: dict[str, int] = {}
    duplicates: list[str] = []
    unknown: list[str] = []
    for position, name in enumerate(header):
        key = _normalise_name(name)
        if not key:
            continue
        canonical = _CANONICAL_BY_KEY.get(key)
        if canonical is None:
            unknown.append(str(name).strip())
        elif canonical in positions:
            duplicates.append(str(name).strip())
        else:
            positions[canonical] = position
    missing = [name for name in COLUMNS if name not in positions]
    hint = f" The table has unrecognised columns: {', '.join(unknown[:10])}." if unknown else ""
    fix = (
        "Add the missing columns with the exact BTXRD names (case and surrounding spaces do not "
        "matter), or use the original dataset.xlsx"
    )
    fatal = [name for name in ESSENTIAL_COLUMNS if name in missing]
    if fatal:
        raise DataError(
            f"missing {len(missing)} of the 37 BTXRD columns: {', '.join(missing)}; "
            f"without {', '.join(fatal)} the images cannot be labelled.{hint}",
            where=str(path),
            fix=fix,
        )
    if missing:
        problems.append(
            Problem(
                "missing_columns",
                f"{path.name} lacks {len(missing)} of the 37 BTXRD columns: {', '.join(missing)}; "
                f"they are read as 0 (empty).{hint} {fix}.",
                count=len(missing),
            )
        )
    if duplicates:
        problems.append(
            Problem(
                "duplicate_columns",
                f"{path.name} has {len(duplicates)} columns whose names repeat an earlier "
                f"column ({', '.join(duplicates)}); the first of each is used.",
                count=len(duplicates),
            )
        )
    return {name: positions[name] for name in COLUMNS if name in positions}


# ------------------------------------------------------------------------------------------
# Tidy table


def preview_ids(ids: Sequence[str]) -> str:
    """'a, b, c, d, e and 3 more': the first PREVIEW_IDS items of a list."""
    shown = ", ".join(ids[:PREVIEW_IDS])
    more = len(ids) - PREVIEW_IDS
    return shown + (f" and {more} more" if more > 0 else "")


def _report(
    problems: list[Problem], kind: str, text: str, ids: Sequence[str], details: Sequence[str] = ()
) -> None:
    """Append a Problem naming the count and the first few ids (with details if given)."""
    if not len(ids):
        return
    shown = list(details) if len(details) else list(ids)
    if len(ids) == 1:
        verb, rest = text.split(" ", 1)
        text = _SINGULAR.get(verb, verb) + " " + rest.replace(" their ", " its ")
    noun = "row" if len(ids) == 1 else "rows"
    problems.append(
        Problem(kind, f"{len(ids)} {noun} {text}: {preview_ids(shown)}", tuple(str(i) for i in ids))
    )


_SINGULAR = {"have": "has", "are": "is", "share": "shares", "match": "matches"}


def _row_names(ids: Sequence[str], row_numbers: Sequence[int]) -> np.ndarray:
    """Image id, or 'row N' (spreadsheet row number) where the id is empty."""
    names = [i if i else f"row {r}" for i, r in zip(ids, row_numbers, strict=True)]
    return np.array(names, dtype=object)


_WORD_VALUES = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "y": 1.0, "n": 0.0}


def _parse_binary(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0/1 cells of any type -> (int64 0/1 values, blank mask, invalid mask).

    Blank cells read as 0; numbers other than 0/1 read as 1 if non-zero; text that is not a
    number, true/false or yes/no reads as 0. Both are flagged for reporting.
    """
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, copy=True)
    blank = _blank_where_nan(column, numbers)
    unparsed = np.isnan(numbers) & ~blank
    if unparsed.any():
        words = column[unparsed].astype(str).str.strip().str.lower().map(_WORD_VALUES)
        numbers[unparsed] = words.to_numpy(dtype=float)
    invalid = (np.isnan(numbers) & ~blank) | ((numbers != 0) & (numbers != 1) & ~np.isnan(numbers))
    values = np.where(np.isnan(numbers), 0, numbers != 0).astype(np.int64)
    return values, blank, invalid


def _blank_where_nan(column: pd.Series, numbers: np.ndarray) -> np.ndarray:
    """Blank-cell mask, testing only the cells that did not parse as numbers (usually none)."""
    blank = np.zeros(len(numbers), dtype=bool)
    candidates = np.flatnonzero(np.isnan(numbers))
    if len(candidates):
        cells = column.to_numpy(dtype=object)[candidates]
        blank[candidates] = [_is_blank(value) for value in cells]
    return blank


def _image_id_text(value: object) -> str:
    if _is_blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _stems(image_ids: pd.Series) -> pd.Series:
    """Lowercase file stem: directory and a known image extension removed."""
    names = image_ids.str.lower().str.replace("\\", "/", regex=False).str.rsplit("/", n=1).str[-1]
    pattern = "(" + "|".join(re.escape(ext) for ext in IMAGE_EXTENSIONS) + r")$"
    return names.str.replace(pattern, "", regex=True).str.strip()


def _tidy(
    raw: pd.DataFrame, row_numbers: np.ndarray, problems: list[Problem]
) -> tuple[pd.DataFrame, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The tidy table, each row's display name, and the (tumor, benign, malignant) flags."""
    count = len(raw)
    ids = pd.Series([_image_id_text(v) for v in raw["image_id"]], dtype=object)
    tidy = pd.DataFrame({"image_id": ids}, index=pd.RangeIndex(count))
    names = _row_names(ids.tolist(), row_numbers.tolist())

    binary: dict[str, np.ndarray] = {}
    blank_by_group: dict[str, np.ndarray] = {}
    blank_columns: set[str] = set()
    invalid_rows = np.zeros(count, dtype=bool)
    invalid_columns: list[str] = []
    groups = {
        "label": LABEL_COLUMNS + SUBTYPE_COLUMNS,
        "site": SITE_COLUMNS,
        "region": REGION_COLUMNS,
        "view": VIEW_COLUMNS,
    }
    group_of = {name: group for group, members in groups.items() for name in members}
    for name in BINARY_COLUMNS:
        if name not in raw.columns:
            binary[name] = np.zeros(count, dtype=np.int64)
            continue
        values, blank, invalid = _parse_binary(raw[name])
        binary[name] = values
        group = group_of[name]
        if blank.any():
            blank_by_group[group] = blank_by_group.get(group, np.zeros(count, dtype=bool)) | blank
            blank_columns.add(name)
        if invalid.any():
            invalid_rows |= invalid
            invalid_columns.append(name)
    for group, blank in blank_by_group.items():
        columns = ", ".join(name for name in groups[group] if name in blank_columns)
        _report(
            problems,
            "missing_value",
            f"have empty cells in the {group} columns ({columns}), read as 0",
            names[blank],
        )
    _report(
        problems,
        "invalid_value",
        f"have values other than 0/1 in {', '.join(invalid_columns)} (non-zero numbers read as 1, "
        "text as 0)",
        names[invalid_rows],
    )

    tidy["stem"] = _stems(ids)
    tidy["image_path"] = ""
    tidy["annotation_path"] = ""
    tidy["center"] = _integer_column(raw, "center", names, problems)
    tidy["age"] = _age_column(raw, names, problems)
    tidy["gender"] = _gender_column(raw, names, problems)

    benign_flag = binary["benign"].astype(bool)
    malignant_flag = binary["malignant"].astype(bool)
    tumour_flag = binary["tumor"].astype(bool)
    subtype_matrix = np.column_stack([binary[name] for name in SUBTYPE_COLUMNS]).astype(bool)
    has_benign_subtype = subtype_matrix[:, : len(BENIGN_SUBTYPES)].any(axis=1)
    has_malignant_subtype = subtype_matrix[:, len(BENIGN_SUBTYPES) :].any(axis=1)
    # Flags decide; where benign and malignant agree (both or neither) the subtypes decide.
    label = np.where(tumour_flag, "benign", "normal").astype(object)
    label[has_benign_subtype & ~has_malignant_subtype] = "benign"
    label[has_malignant_subtype & ~has_benign_subtype] = "malignant"
    label[~tumour_flag & ~benign_flag & ~malignant_flag] = "normal"
    both_without_subtype = benign_flag & malignant_flag & (has_benign_subtype == has_malignant_subtype)
    label[both_without_subtype] = "malignant"
    label[benign_flag & ~malignant_flag] = "benign"
    label[malignant_flag & ~benign_flag] = "malignant"
    tidy["label"] = label

    subtypes = _names_set(subtype_matrix, SUBTYPE_COLUMNS)
    tidy["subtype"] = [" + ".join(names_) for names_ in subtypes]
    tidy["subtypes"] = pd.Series(subtypes, dtype=object)
    site_matrix = np.column_stack([binary[name] for name in SITE_COLUMNS]).astype(bool)
    sites = _names_set(site_matrix, SITE_COLUMNS)
    tidy["sites"] = pd.Series(sites, dtype=object)
    tidy["site"] = _primary_site(site_matrix)
    region_matrix = np.column_stack([binary[name] for name in REGION_COLUMNS]).astype(bool)
    tidy["region"] = _first_set(region_matrix, REGION_COLUMNS)
    view_matrix = np.column_stack([binary[name] for name in VIEW_COLUMNS]).astype(bool)
    tidy["view"] = _first_set(view_matrix, VIEW_COLUMNS)
    tidy["has_image"] = False
    for name in COLUMNS[4:]:
        tidy[name] = binary[name]
    return tidy, names, (tumour_flag, benign_flag, malignant_flag)


def _names_set(matrix: np.ndarray, names: Sequence[str]) -> list[tuple[str, ...]]:
    """Per row, the tuple of column names set to 1, in column order."""
    result: list[tuple[str, ...]] = [()] * len(matrix)
    for row in np.flatnonzero(matrix.any(axis=1)):
        result[row] = tuple(names[column] for column in np.flatnonzero(matrix[row]))
    return result


def _first_set(matrix: np.ndarray, names: Sequence[str]) -> np.ndarray:
    choices = np.array(list(names) + [""], dtype=object)
    first = np.where(matrix.any(axis=1), matrix.argmax(axis=1), len(names))
    return choices[first]


def _primary_site(site_matrix: np.ndarray) -> np.ndarray:
    """The first bone set, else the first joint set, else ''."""
    bones = _first_set(site_matrix[:, : len(BONE_COLUMNS)], BONE_COLUMNS)
    joints = _first_set(site_matrix[:, len(BONE_COLUMNS) :], JOINT_COLUMNS)
    return np.where(bones != "", bones, joints)


def _integer_column(
    raw: pd.DataFrame, name: str, names: np.ndarray, problems: list[Problem]
) -> np.ndarray:
    if name not in raw.columns:
        return np.zeros(len(raw), dtype=np.int64)
    numbers = pd.to_numeric(raw[name], errors="coerce").to_numpy(dtype=float)
    blank = _blank_where_nan(raw[name], numbers)
    invalid = ~blank & (np.isnan(numbers) | (np.nan_to_num(numbers) % 1 != 0))
    _report(problems, "missing_value", f"have no {name}, read as 0", names[blank])
    _report(problems, "invalid_value", f"have a {name} that is not a whole number, read as 0",
            names[invalid])
    return np.where(blank | invalid, 0, np.nan_to_num(numbers)).astype(np.int64)


def _age_column(raw: pd.DataFrame, names: np.ndarray, problems: list[Problem]) -> np.ndarray:
    if "age" not in raw.columns:
        return np.full(len(raw), np.nan)
    ages = pd.to_numeric(raw["age"], errors="coerce").to_numpy(dtype=float, copy=True)
    blank = _blank_where_nan(raw["age"], ages)
    invalid = ~blank & (np.isnan(ages) | (ages < 0) | (ages > 120))
    _report(problems, "missing_value", "have no age", names[blank])
    _report(problems, "invalid_value", "have an age that is not a number of years in 0-120, "
            "left empty", names[invalid])
    ages[invalid] = np.nan
    return ages


_GENDERS = {"m": "M", "male": "M", "f": "F", "female": "F"}


def _gender_column(raw: pd.DataFrame, names: np.ndarray, problems: list[Problem]) -> np.ndarray:
    if "gender" not in raw.columns:
        return np.full(len(raw), "", dtype=object)
    blank = raw["gender"].map(_is_blank).to_numpy(dtype=bool)
    text = raw["gender"].map(lambda value: "" if _is_blank(value) else str(value).strip().lower())
    genders = text.map(_GENDERS).fillna("").to_numpy(dtype=object)
    invalid = ~blank & (genders == "")
    _report(problems, "missing_value", "have no gender", names[blank])
    _report(problems, "invalid_value", "have a gender other than M/F, left empty", names[invalid])
    return genders


# ------------------------------------------------------------------------------------------
# Pairing rows with files


@dataclass
class _Scanned:
    by_stem: dict[str, list[tuple[str, str, int]]]  # stem -> [(name, path, size)]
    unsupported: list[str]


def _scan(folder: Path | None, extensions: Iterable[str], sizes: bool) -> _Scanned:
    """One os.scandir of `folder`: files with the given extensions grouped by lowercase stem."""
    scanned = _Scanned({}, [])
    if folder is None:
        return scanned
    extensions = tuple(extensions)
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            stem, extension = os.path.splitext(name)
            if extension.lower() not in extensions:
                if entry.is_file():
                    scanned.unsupported.append(name)
                continue
            if not entry.is_file():
                continue
            size = entry.stat().st_size if sizes else 1
            scanned.by_stem.setdefault(stem.lower(), []).append((name, entry.path, size))
    return scanned


def _choose(files: list[tuple[str, str, int]], image_id: str, extensions: Sequence[str]):
    """Of several files with one stem: the one named as in the table, else by extension order."""
    for file in files:
        if file[0].lower() == image_id.lower():
            return file
    order = {extension: rank for rank, extension in enumerate(extensions)}
    return min(files, key=lambda file: (order.get(os.path.splitext(file[0])[1].lower(), 99), file[0]))


def _pair_files(
    table: pd.DataFrame, names: np.ndarray, layout: _Layout, problems: list[Problem]
) -> None:
    images = _scan(layout.images_dir, IMAGE_EXTENSIONS, sizes=True)
    annotations = _scan(layout.annotations_dir, (".json",), sizes=False)
    stems = table["stem"].to_numpy(dtype=object)
    ids = table["image_id"].to_numpy(dtype=object)

    image_paths = np.full(len(table), "", dtype=object)
    sizes = np.zeros(len(table), dtype=np.int64)
    ambiguous: list[str] = []
    for row, (stem, image_id) in enumerate(zip(stems, ids, strict=True)):
        files = images.by_stem.get(stem) if stem else None
        if not files:
            continue
        if len(files) > 1:
            ambiguous.append(image_id)
        _, path, size = files[0] if len(files) == 1 else _choose(files, image_id, IMAGE_EXTENSIONS)
        image_paths[row] = path
        sizes[row] = size
    annotation_paths = np.array(
        [annotations.by_stem.get(stem, [("", "", 0)])[0][1] if stem else "" for stem in stems],
        dtype=object,
    )
    table["image_path"] = image_paths
    table["annotation_path"] = annotation_paths
    table["has_image"] = (image_paths != "") & (sizes > 0)

    images_folder = _folder_label(layout.images_dir, IMAGES_FOLDER)
    missing = image_paths == ""
    if layout.images_dir is None:
        _report(problems, "missing_image", f"have no image: there is no {IMAGES_FOLDER}/ folder",
                names[missing])
    else:
        _report(problems, "missing_image", f"have no image file in {images_folder}", names[missing])
    empty = (image_paths != "") & (sizes == 0)
    _report(problems, "empty_image", f"have an empty (0-byte) image file in {images_folder}",
            names[empty])
    _report(problems, "duplicate_file", f"match several files in {images_folder} with the same "
            "stem (the one named as in the table, else .jpeg > .jpg > .png > .dcm, is used)",
            ambiguous)

    table_stems = set(stems)
    for scanned, folder_name, kind in (
        (images, images_folder, "orphan_file"),
        (annotations, _folder_label(layout.annotations_dir, ANNOTATIONS_FOLDER), "orphan_annotation"),
    ):
        orphans = sorted(
            name for stem, files in scanned.by_stem.items() if stem not in table_stems
            for name, _, _ in files
        )
        if orphans:
            noun = "file" if len(orphans) == 1 else "files"
            problems.append(
                Problem(
                    kind,
                    f"{len(orphans)} {noun} in {folder_name} have no row in the table: "
                    f"{preview_ids(orphans)}",
                    tuple(orphans),
                )
            )
    unsupported = sorted(images.unsupported)
    if unsupported:
        problems.append(
            Problem(
                "unsupported_file",
                f"{len(unsupported)} files in {images_folder} are not .jpeg/.jpg/.png/.dcm images "
                f"and are ignored: {preview_ids(unsupported)}",
                tuple(unsupported),
            )
        )


def _folder_label(folder: Path | None, default: str) -> str:
    return (folder.name if folder is not None else default) + "/"


# ------------------------------------------------------------------------------------------
# Row consistency


def _check_rows(
    table: pd.DataFrame,
    names: np.ndarray,
    flags: tuple[np.ndarray, np.ndarray, np.ndarray],
    problems: list[Problem],
) -> None:
    tumour, benign, malignant = flags
    label = table["label"].to_numpy(dtype=object)
    is_tumour_label = label != "normal"

    _report(problems, "missing_image_id", "have no image_id (listed by spreadsheet row)",
            names[table["image_id"].to_numpy(dtype=object) == ""])
    stems = table["stem"]
    duplicated = (stems != "") & stems.duplicated(keep=False)
    _report(problems, "duplicate_image_id", "share an image_id (same stem, ignoring case and "
            "extension) with another row", names[duplicated.to_numpy()])

    _report(problems, "label_conflict", "have tumor 1 but neither benign nor malignant (label "
            "taken from the subtype, else benign)", names[tumour & ~benign & ~malignant])
    _report(problems, "label_conflict", "have both benign and malignant set (label taken from "
            "the subtype, else malignant)", names[benign & malignant])
    _report(problems, "label_conflict", "have tumor 0 but benign or malignant set (label taken "
            "from benign/malignant)", names[~tumour & (benign | malignant)])

    subtype_count = np.array([len(value) for value in table["subtypes"]])
    subtypes = table["subtypes"].to_numpy(dtype=object)
    _report(problems, "subtype_conflict", "have a tumour label but no subtype",
            names[is_tumour_label & (subtype_count == 0)])
    several = subtype_count > 1
    _report(problems, "subtype_conflict", "have more than one subtype", names[several],
            [f"{n} ({' + '.join(s)})" for n, s in zip(names[several], subtypes[several], strict=True)])
    benign_subtype = table[list(BENIGN_SUBTYPES)].to_numpy().any(axis=1)
    malignant_subtype = table[list(MALIGNANT_SUBTYPES)].to_numpy().any(axis=1)
    contradicting = ((label == "benign") & malignant_subtype) | ((label == "malignant") & benign_subtype)
    _report(problems, "subtype_conflict", "have a subtype that contradicts benign/malignant",
            names[contradicting],
            [f"{n} ({lab}: {' + '.join(s)})" for n, lab, s in
             zip(names[contradicting], label[contradicting], subtypes[contradicting], strict=True)])
    _report(problems, "subtype_conflict", "have a normal label but a subtype",
            names[~is_tumour_label & (subtype_count > 0)])

    site_matrix = table[list(SITE_COLUMNS)].to_numpy().astype(bool)
    has_site = site_matrix.any(axis=1)
    _report(problems, "site_conflict", "have a tumour label but no anatomical site",
            names[is_tumour_label & ~has_site])
    _report(problems, "site_conflict", "have a normal label but an anatomical site",
            names[~is_tumour_label & has_site])

    region_matrix = table[list(REGION_COLUMNS)].to_numpy().astype(bool)
    region_count = region_matrix.sum(axis=1)
    _report(problems, "region_conflict", "have no region (upper limb, lower limb, pelvis)",
            names[region_count == 0])
    _report(problems, "region_conflict", "have more than one region", names[region_count > 1])
    view_count = table[list(VIEW_COLUMNS)].to_numpy().sum(axis=1)
    _report(problems, "view_conflict", "have no view (frontal, lateral, oblique)",
            names[view_count == 0])
    _report(problems, "view_conflict", "have more than one view", names[view_count > 1])

    # A row contradicts when none of its sites belongs to any region it is marked with.
    explained = np.zeros(len(table), dtype=bool)
    for index, region in enumerate(REGION_COLUMNS):
        in_region = [SITE_COLUMNS.index(s) for s, r in SITE_REGION.items() if r == region]
        explained |= site_matrix[:, in_region].any(axis=1) & region_matrix[:, index]
    conflict = has_site & (region_count > 0) & ~explained
    regions = [
        "/".join(REGION_COLUMNS[i] for i in np.flatnonzero(row)) for row in region_matrix[conflict]
    ]
    _report(problems, "region_site_conflict", "have a region that contradicts their site",
            names[conflict],
            [f"{n} ({', '.join(s)} marked {r})" for n, s, r in
             zip(names[conflict], table["sites"].to_numpy(dtype=object)[conflict], regions, strict=True)])

    has_annotation = table["annotation_path"].to_numpy(dtype=object) != ""
    _report(problems, "normal_with_annotation", "have a normal label but an annotation file",
            names[~is_tumour_label & has_annotation])
    _report(problems, "missing_annotation", "have a tumour label but no annotation file in "
            "Annotations/", names[is_tumour_label & ~has_annotation])


# ------------------------------------------------------------------------------------------
# Errors


def _no_image_problem(table: pd.DataFrame, layout: _Layout) -> str:
    source = layout.table_path.name
    if layout.images_dir is None:
        return (
            f"{source} has {len(table)} rows but there is no images/ folder beside it, so no "
            "row has an image"
        )
    files = [entry.name for entry in os.scandir(layout.images_dir) if not entry.name.startswith(".")]
    examples = ", ".join(table["image_id"].head(3))
    if not files:
        return f"{source} has {len(table)} rows but {layout.images_dir.name}/ is empty"
    on_disk = ", ".join(sorted(files)[:3])
    return (
        f"none of the {len(table)} rows of {source} has a usable image in "
        f"{layout.images_dir.name}/ (the table names e.g. {examples}; the folder holds e.g. "
        f"{on_disk})"
    )


def _no_image_fix(layout: _Layout) -> str:
    return (
        "Put the radiographs in images/ beside the table, named as in its image_id column "
        "(the extension may differ: .jpeg, .jpg, .png or .dcm). " + BTXRD_SOURCE
    )
