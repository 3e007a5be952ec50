"""btseg dashboard: the home page and entry point (`streamlit run app.py`).

Every file pages/<number>_<Name>.py is a page at /<Name>, listed after Home in number order.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from btseg import config, registry
from btseg.errors import BtsegError
from btseg.formatting import format_number, format_threshold
from btseg_app import common

PAGE_DESCRIPTIONS = {
    "Dataset": "Classes, ages, sites, views, centres and lesion sizes; the patient-grouped "
    "train / validation / test split; sample images with their outlines.",
    "Segment": "Upload an X-ray and see where the tumour is and what kind it may be.",
    "Thresholds": "Tune the segmentation threshold against the test split.",
    "Compare": "The basic against the attention U-Net.",
    "Reading_room": "Several X-rays at once, grouped into studies, one verdict per study.",
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


#: The home page's model cards, the segmenter a user sees first first.
MODEL_TITLES = {
    spec.run: spec.long_title or spec.title
    for spec in (*registry.SEGMENTERS, registry.MODELS["classifier"])
}


def _model_card(run_name: str, info: dict) -> None:
    """One trained model: when, on what, how long, how good on validation, its threshold."""
    from btseg.runs import train_command

    with st.container(border=True):
        st.markdown(f"**{MODEL_TITLES.get(run_name, run_name)}**")
        if not info["complete"]:
            st.warning(info["problem"] or "Not trained yet.")
            st.code(train_command(run_name, str(config.data_dir())), language="bash")
            return
        run_config = info["config"]
        data = run_config.get("data") or {}
        validation = run_config.get("validation") or {}
        history = info.get("history") or {}
        date = str(run_config.get("created_utc", ""))[:16].replace("T", " ")
        data_name = "synthetic" if data.get("synthetic") else Path(str(data.get("dir", ""))).name
        working = run_config.get("working_size")
        size = (
            f"{run_config.get('input_size', '?')} px patches of images at {working} px"
            if working
            else f"{run_config.get('input_size', '?')} px"
        )
        st.caption(
            f"{date} UTC · {data_name} data · {run_config.get('epochs_run', history.get('epochs', '?'))} epochs · "
            f"{size}"
            f"{' lesion regions' if run_config.get('input_mode') == 'region' else ''} · "
            f"profile {run_config.get('profile', '?')}"
        )
        point = info.get("operating_point")
        if point is not None:
            score = validation.get("mean_dice")
            left, right = st.columns(2)
            left.metric("Validation mean Dice", format_number(score))
            right.metric("Operating threshold", format_threshold(point.threshold))
            flagged = validation.get("normal_flagged")
            st.caption(
                f"Smallest lesion {100 * point.min_lesion_fraction:.2g}% of the image"
                + ("" if flagged is None else f" · {flagged:.0%} of normal validation images flagged")
            )
        else:
            score = validation.get("balanced_accuracy")
            st.metric("Validation balanced accuracy", format_number(score))
            verdict = _verdict_of(Path(info["path"]))
            if verdict is not None:
                st.caption(
                    f"Verdict on {verdict.get('n_images')} whole test images (with the "
                    f"{registry.title_of(verdict.get('segmentation_run', ''))}): balanced accuracy "
                    f"**{format_number(verdict.get('balanced_accuracy'))}**, malignant recall "
                    f"{format_number((verdict.get('recall') or {}).get('malignant'), digits=2)}"
                )


def _verdict_of(run_dir: Path) -> dict | None:
    """verdict.json of an evaluated classifier run, or None (no TensorFlow)."""
    import json

    from btseg import evaluation

    path = evaluation.evaluation_dir(run_dir) / evaluation.VERDICT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def models_section() -> None:
    """A card per model, or the command that trains it."""
    from btseg.runs import read_run_info

    st.subheader("Models")
    models_dir = config.models_dir()
    columns = st.columns(len(MODEL_TITLES))
    for column, run_name in zip(columns, MODEL_TITLES, strict=True):
        with column:
            _model_card(run_name, read_run_info(models_dir / run_name))
    st.caption(
        f"Run folders in `{models_dir}`. `make prepare` trains the demo models on the synthetic "
        "dataset; `make train DATA=/path/to/BTXRD PROFILE=full` trains on the real one."
    )


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
        "the lesion, and a DenseNet121 classifier says whether the image, or the region of a "
        "lesion, looks normal, benign or malignant. "
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
