"""Cached loaders and small drawing helpers shared by the dashboard's pages.

Loaders are keyed by the dataset folder and a cheap signature of it (names, sizes and mtimes of
its top-level entries: the table file and the images/ and Annotations/ folders, whose mtimes
change when files are added, removed or renamed), so a changed dataset is read again while
reruns of a page reuse the parsed table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from btseg import config, viz
from btseg.data.btxrd import Dataset, Problem, open_dataset
from btseg.data.images import read_image
from btseg.data.labelme import read_annotation
from btseg.data.splits import split_for, split_summary, surrogate_patient_ids
from btseg.errors import AnnotationError, BtsegError
from btseg.stats import dataset_statistics, lesion_measurements

SYNTHETIC_NAME = "Synthetic BTXRD-format dataset (generated, not patient data)"
RESEARCH_NOTICE = (
    "Research use only. btseg is not a medical device: its outputs must not be used for "
    "diagnosis or treatment decisions."
)
DATASET_FIX_COMMANDS = (
    "# generate the synthetic BTXRD-format dataset (the embedded default)\n"
    "btseg demo-data --out data/synthetic\n"
    "\n"
    "# or point btseg at a real BTXRD folder (images/, Annotations/, dataset.xlsx)\n"
    "export BTSEG_DATA_DIR=/path/to/BTXRD"
)
THUMBNAIL_SIDE = 384

APP_ROOT = Path(__file__).resolve().parent.parent
PAGE_FILE = re.compile(r"^(\d+)_([A-Za-z][A-Za-z0-9_]*)\.py$")
PAGE_ICONS = {
    "Home": ":material/home:",
    "Dataset": ":material/bar_chart:",
    "Segment": ":material/center_focus_strong:",
    "Thresholds": ":material/tune:",
    "Compare": ":material/compare:",
    "Reading_room": ":material/view_module:",
}


# --------------------------------------------------------------------------------------------
# Pages


@dataclass(frozen=True)
class PageFile:
    """A page of the dashboard: pages/<number>_<name>.py, served at /<name>."""

    name: str
    path: str  # relative to the app folder, as st.page_link expects
    icon: str

    @property
    def title(self) -> str:
        return self.name.replace("_", " ")


def page_files() -> list[PageFile]:
    """The pages after Home, in the order of their number prefix."""
    found = []
    for path in (APP_ROOT / "pages").glob("*.py"):
        match = PAGE_FILE.match(path.name)
        if match:
            name = match.group(2)
            found.append((int(match.group(1)), name, f"pages/{path.name}"))
    return [
        PageFile(name, relative, PAGE_ICONS.get(name, ":material/article:"))
        for _, name, relative in sorted(found)
    ]


def sidebar_navigation() -> None:
    """Page links at the top of the sidebar, when config hides Streamlit's own list
    (client.showSidebarNavigation = false): it would name the home page after app.py."""
    if st.get_option("client.showSidebarNavigation") is not False:
        return
    with st.sidebar:
        st.page_link("app.py", label="Home", icon=PAGE_ICONS["Home"])
        for page in page_files():
            st.page_link(page.path, label=page.title, icon=page.icon)
        st.divider()


# --------------------------------------------------------------------------------------------
# Naming the dataset


def dataset_name(data_dir: Path) -> str:
    """How the pages name the dataset: the synthetic set as such, a real one by its path."""
    return SYNTHETIC_NAME if config.is_synthetic(data_dir) else f"BTXRD at {data_dir}"


def dataset_signature(data_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime_ns) of each top-level entry of the dataset folder; () if unreadable."""
    try:
        entries = sorted(Path(data_dir).iterdir())
    except OSError:
        return ()
    signature = []
    for entry in entries:
        try:
            status = entry.stat()
        except OSError:
            continue
        signature.append((entry.name, status.st_size, status.st_mtime_ns))
    return tuple(signature)


# --------------------------------------------------------------------------------------------
# Cached loaders


@st.cache_data(show_spinner="Reading the dataset table…", max_entries=4)
def _load_dataset(data_dir: str, signature: tuple) -> Dataset:
    dataset = open_dataset(data_dir)
    table = dataset.table.copy()
    table["surrogate_patient_id"] = surrogate_patient_ids(table)
    dataset.table = table
    return dataset


def load_dataset(data_dir: Path | None = None) -> Dataset:
    """The dataset at `data_dir` (default: the configured one), its table extended with
    `surrogate_patient_id`. Raises BtsegError (DataError) when it cannot be opened."""
    data_dir = Path(data_dir) if data_dir is not None else config.data_dir()
    return _load_dataset(str(data_dir), dataset_signature(data_dir))


@dataclass(frozen=True)
class SplitView:
    """What the pages show of the split: image_id -> part, and split_summary()."""

    assignment: dict[str, str]
    summary: dict


@st.cache_data(show_spinner="Computing the train / validation / test split…", max_entries=4)
def _load_split(data_dir: str, signature: tuple, cache_dir: str, seed: int) -> SplitView:
    table = _load_dataset(data_dir, signature).table
    split = split_for(table, cache_dir=cache_dir, seed=seed)
    return SplitView(assignment=dict(split.assignment), summary=split_summary(split, table))


def load_split(data_dir: Path | None = None, seed: int = 0) -> SplitView:
    """The dataset's surrogate-patient split (made once and saved under the cache folder)."""
    data_dir = Path(data_dir) if data_dir is not None else config.data_dir()
    return _load_split(str(data_dir), dataset_signature(data_dir), str(config.cache_dir()), seed)


@dataclass(frozen=True)
class StatisticsView:
    """dataset_statistics() of the whole dataset, its problems as Problem objects (table
    problems plus unreadable or empty annotations), and lesion_measurements() per image."""

    statistics: dict
    problems: list[Problem]
    lesions: pd.DataFrame


@st.cache_data(show_spinner="Measuring the annotated lesions…", max_entries=4)
def _load_statistics(data_dir: str, signature: tuple) -> StatisticsView:
    dataset = _load_dataset(data_dir, signature)
    statistics = dataset_statistics(dataset)
    problems = [
        Problem(
            kind=item["kind"],
            message=item["message"],
            image_ids=tuple(item["image_ids"]),
            count=int(item["count"]),
        )
        for item in statistics["problems"]
    ]
    return StatisticsView(statistics, problems, lesion_measurements(dataset.table))


def load_statistics(data_dir: Path | None = None) -> StatisticsView:
    """Statistics, problems and per-image lesion measurements of the whole dataset."""
    data_dir = Path(data_dir) if data_dir is not None else config.data_dir()
    return _load_statistics(str(data_dir), dataset_signature(data_dir))


@st.cache_data(show_spinner=False, max_entries=512)
def _thumbnail(
    image_path: str, annotation_path: str, label: str, stamp: tuple, side: int
) -> tuple[np.ndarray, int, str]:
    pixels = read_image(image_path).pixels
    small, scale = viz.downscale(pixels, side)
    lesions: list = []
    note = ""
    if annotation_path:
        try:
            lesions = read_annotation(annotation_path, image_shape=pixels.shape[:2]).lesions
        except AnnotationError as error:
            note = str(error)
    color = viz.CLASS_COLORS.get(label, viz.CLASS_COLORS["malignant"])
    outlined = viz.draw_outlines(small, lesions, color=color, scale=scale, fill_alpha=0.18)
    return viz.pad_to_square(outlined, side), len(lesions), note


def _file_stamp(*paths: str) -> tuple:
    stamp = []
    for path in paths:
        try:
            status = Path(path).stat() if path else None
        except OSError:
            status = None
        stamp.append((status.st_size, status.st_mtime_ns) if status else (-1, -1))
    return tuple(stamp)


def load_thumbnail(
    image_path: str, annotation_path: str, label: str, side: int = THUMBNAIL_SIDE
) -> tuple[np.ndarray, int, str]:
    """A (side, side, 3) uint8 thumbnail with the lesion outlines drawn in the class colour.

    Returns (thumbnail, number of lesions, a note when the annotation could not be read).
    Raises ImageError when the image cannot be decoded.
    """
    stamp = _file_stamp(image_path, annotation_path)
    return _thumbnail(image_path, annotation_path or "", label, stamp, side)


# --------------------------------------------------------------------------------------------
# Drawing helpers


def metric_cards(cards, widths=None) -> None:
    """A row of bordered st.metric cards from (label, value, help text or None) triples."""
    columns = st.columns(widths if widths is not None else len(cards))
    for column, (label, value, help_text) in zip(columns, cards, strict=True):
        column.metric(label, value, help=help_text, border=True)


def error_box(error: BtsegError, commands: str | None = None) -> None:
    """Show a BtsegError as st.error (its message says what, where and how to fix it)."""
    st.error(str(error), icon=":material/error:")
    if commands:
        st.code(commands, language="bash")


def dataset_error_box(error: BtsegError, data_dir: Path) -> None:
    """The dataset cannot be opened: say why and give the commands that fix it."""
    st.error(
        f"**The dataset at `{data_dir}` cannot be opened.**\n\n{error}",
        icon=":material/error:",
    )
    st.markdown("Create the synthetic dataset, or point btseg at a real BTXRD folder:")
    st.code(DATASET_FIX_COMMANDS, language="bash")
    st.caption(
        "`make run` generates the synthetic dataset when it is missing. Reload this page afterwards."
    )


def start_page(title: str, icon: str) -> tuple[Path, Dataset | None]:
    """Page config, the sidebar's dataset card and research notice; (data folder, its dataset
    or None when it cannot be read: the Dataset page explains why)."""
    st.set_page_config(page_title=f"{title} · btseg", page_icon=icon, layout="wide")
    data_dir = config.data_dir()
    try:
        dataset = load_dataset(data_dir)
    except BtsegError:
        dataset = None
    sidebar_dataset_badge(data_dir, dataset)
    research_notice()
    return data_dir, dataset


def sidebar_dataset_badge(data_dir: Path, dataset: Dataset | None) -> None:
    """Sidebar card naming the loaded dataset and its size (after the page links)."""
    sidebar_navigation()
    with st.sidebar:
        with st.container(border=True):
            if dataset is None:
                st.badge("No dataset", icon=":material/error:", color="red")
                st.caption(f"Nothing usable at `{data_dir}`")
            elif config.is_synthetic(data_dir):
                st.badge("Synthetic data", icon=":material/science:", color="orange")
                st.caption(f"{SYNTHETIC_NAME} · {len(dataset.table):,} images")
            else:
                st.badge("BTXRD", icon=":material/folder_open:", color="blue")
                st.caption(f"{dataset_name(data_dir)} · {len(dataset.table):,} images")


def research_notice(sidebar: bool = True) -> None:
    """The research-use-only notice (small in the sidebar, prominent elsewhere)."""
    if sidebar:
        st.sidebar.caption(f":material/info: {RESEARCH_NOTICE}")
    else:
        st.warning(RESEARCH_NOTICE, icon=":material/health_and_safety:")


def class_legend_markdown(names: tuple[str, ...] = config.CLASS_NAMES) -> str:
    """HTML chips in the class colours, for st.markdown(..., unsafe_allow_html=True)."""
    chips = [
        f"<span style='display:inline-block;width:0.8em;height:0.8em;border-radius:2px;"
        f"background:{viz.CLASS_COLORS[name]};margin:0 0.3em 0 0.9em;vertical-align:middle'></span>"
        f"{name}"
        for name in names
    ]
    return "<span style='font-size:0.9em'>" + "".join(chips) + "</span>"
