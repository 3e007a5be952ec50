"""btseg dashboard: the home page and entry point (`streamlit run app.py`).

Every file pages/<number>_<Name>.py is a page at /<Name>, listed after Home in number order.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import streamlit as st

from btseg import config
from btseg.errors import BtsegError
from btseg_app import common

PAGE_DESCRIPTIONS = {
    "Dataset": "Classes, ages, sites, views, centres and lesion sizes; the patient-grouped "
    "train / validation / test split; sample images with their outlines.",
    "Segment": "Upload an X-ray and see where the tumour is and what kind it may be.",
    "Thresholds": "Tune the segmentation threshold against the test split.",
    "Compare": "The basic against the attention U-Net.",
}


def dataset_section(data_dir: Path, dataset) -> None:
    table = dataset.table
    counts = table["label"].value_counts()
    if config.is_synthetic(data_dir):
        st.markdown(
            f":material/science: **{common.SYNTHETIC_NAME}** at `{data_dir}`. It follows the "
            "BTXRD format exactly, so a real BTXRD folder opens unchanged: set "
            "`BTSEG_DATA_DIR=/path/to/BTXRD`."
        )
    else:
        st.markdown(f":material/folder_open: **{common.dataset_name(data_dir)}**")
    columns = st.columns(5)
    columns[0].metric("Images", f"{len(table):,}", border=True)
    for column, name in zip(columns[1:4], config.CLASS_NAMES, strict=True):
        column.metric(name.capitalize(), f"{int(counts.get(name, 0)):,}", border=True)
    columns[4].metric(
        "Surrogate patients", f"{int(table['surrogate_patient_id'].nunique()):,}", border=True
    )
    if dataset.problems:
        st.caption(
            f":material/rule: {len(dataset.problems)} kinds of validation problem are reported "
            "(not fixed) on the Dataset page."
        )


def pages_section() -> None:
    st.subheader("Pages")
    pages = common.page_files()
    for column, page in zip(st.columns(max(len(pages), 2)), pages, strict=False):
        with column.container(border=True):
            st.page_link(page.path, label=page.title, icon=page.icon)
            st.caption(PAGE_DESCRIPTIONS.get(page.name, ""))


def models_section() -> None:
    """Trained models: for now, the run folders found under the models folder."""
    st.subheader("Models")
    if importlib.util.find_spec("btseg.runs") is None:
        st.info("Model training and inference are not part of this version yet.")
        return
    models_dir = config.models_dir()
    runs = (
        sorted(
            path for path in models_dir.iterdir() if path.is_dir() and not path.name.startswith(".")
        )
        if models_dir.is_dir()
        else []
    )
    if not runs:
        st.info(f"No trained model in `{models_dir}`. Train the demo models with:")
        st.code("make prepare", language="bash")
        return
    for run in runs:
        st.markdown(f"- **{run.name}** · `{run}`")


def main() -> None:
    st.set_page_config(page_title="btseg", page_icon=":material/radiology:", layout="wide")
    data_dir = config.data_dir()
    dataset, dataset_error = None, None
    try:
        dataset = common.load_dataset(data_dir)
    except BtsegError as error:
        dataset_error = error
    common.sidebar_dataset_badge(data_dir, dataset)
    common.research_notice()

    st.title("btseg")
    st.markdown("#### Bone tumour segmentation and classification on X-rays")
    st.markdown(
        "btseg finds primary bone tumours on radiographs: a U-Net with attention gates outlines "
        "the lesion, and a classifier says whether the image looks normal, benign or malignant. "
        "It reads the public BTXRD dataset format (radiographs, LabelMe outlines and a metadata "
        "table) and splits it by surrogate patient, so that no patient is in both the training "
        "and the test data."
    )
    common.research_notice(sidebar=False)

    st.subheader("Dataset")
    if dataset_error is not None:
        common.dataset_error_box(dataset_error, data_dir)
    else:
        dataset_section(data_dir, dataset)

    pages_section()
    models_section()


main()
