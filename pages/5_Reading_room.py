"""Reading room page: many X-rays in, a table of findings, one verdict per study.

Widgets -> btseg (images, predict, studies) -> a table and the study verdicts. Each image goes
through the pipeline `btseg predict` uses (input gate, segmenter at its operating point,
classifier, verdict); a row opens in the full Segment view.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from btseg import config, registry
from btseg.errors import BtsegError
from btseg.predict import Predictor
from btseg.studies import STUDY_RULE, group_by_study, name_prefix, study_verdict
from btseg_app import common
from btseg_app import segment_ui as ui

GROUPINGS = {
    "DICOM study, else file-name prefix": "auto",
    "One study per file": "each",
    "All files in one study": "one",
}
HANDOFF_KEY = "segment_handoff"


def uploads_ui() -> list:
    return st.file_uploader(
        "X-rays of one or more studies (JPEG, PNG or DICOM)",
        type=ui.UPLOAD_TYPES,
        accept_multiple_files=True,
        key="reading_uploads",
        help="Views of one examination form a study: DICOM files by their StudyInstanceUID, "
        "other files by their name without the last '_' or '-' part (knee_ap.png and "
        "knee_lat.png are study 'knee'). The files stay in this session's memory.",
    ) or []


def grouping_ui() -> str:
    choice = st.radio(
        "Group into studies by", list(GROUPINGS), key="reading_grouping", horizontal=True
    )
    return GROUPINGS[choice]


def study_groups(names: list[str], mode: str) -> dict[str, str] | None:
    """The user's grouping as {file name: study} (None: the automatic one)."""
    if mode == "each":
        return {name: name for name in names}
    if mode == "one":
        return dict.fromkeys(names, "all files")
    return None


def main() -> None:
    data_dir, _ = common.start_page("Reading room", ":material/view_module:")
    models_dir = config.models_dir()
    st.title("Reading room")
    st.caption(
        "Several X-rays at once: each is read as on the Segment page (input gate, attention "
        "U-Net at its operating point, classifier), and the views of one study get one verdict."
    )
    status = ui.run_status(models_dir, registry.SEGMENTERS[0].run)
    classifier_status = ui.run_status(models_dir, ui.CLASSIFIER_RUN)
    if not status.complete:
        st.warning("The attention U-Net is not trained yet. Train it with:")
        st.code(ui.train_command_for(status, data_dir), language="bash")
        return
    uploads = uploads_ui()
    mode = grouping_ui()
    if not uploads:
        st.info("Upload X-rays to read them together.", icon=":material/upload_file:")
        return
    try:
        segmenter = ui.load_segmenter(status)
        classifier = ui.load_classifier(classifier_status) if classifier_status.complete else None
        appearance = ui.load_appearance(models_dir)
    except BtsegError as error:
        common.error_box(error)
        return
    predictor = Predictor(segmenter, classifier, appearance=appearance)

    names = [upload.name for upload in uploads]
    groups = study_groups(names, mode)
    rows, decoded, verdicts = [], [], {}
    progress = st.progress(0.0, text="Reading the X-rays…")
    for position, upload in enumerate(uploads):
        data = upload.getvalue()
        try:
            source = ui.image_from_bytes(upload.name, data)
        except BtsegError as error:
            decoded.append((upload.name, None))
            rows.append(ui.reading_row(upload.name, None, None, str(error)))
            continue
        decoded.append((upload.name, source.image))
        gate = predictor.gate(source.image)
        if gate.accepted:
            probability = ui.probability_map(source, status, segmenter)
            prediction = predictor.finish(source.image, probability, gate=gate)
        else:
            prediction = predictor.refused(source.image, gate)
        verdicts[position] = prediction.verdict
        rows.append(ui.reading_row(upload.name, source, prediction, ""))
        progress.progress((position + 1) / len(uploads), text=f"Read {upload.name}")
    progress.empty()

    studies = group_by_study(decoded, groups)
    for study, positions in studies.items():
        for position in positions:
            rows[position]["Study"] = study
    table = pd.DataFrame(rows)
    if table["Largest (mm²)"].isna().all():  # no pixel spacing (no DICOM among the files)
        table = table.drop(columns="Largest (mm²)")
    st.markdown(f"##### {len(table)} images in {len(studies)} studies")
    st.dataframe(
        table, hide_index=True, width="stretch", key="reading_table",
        column_config=ui.READING_COLUMNS,
    )  # fmt: skip
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    position = left.selectbox(
        "Open one X-ray in the full Segment view",
        range(len(uploads)),
        format_func=lambda index: f"{names[index]} · {rows[index]['Verdict']}",
        key="reading_choice",
    )
    if right.button("Open in Segment", key="reading_open", icon=":material/open_in_new:"):
        st.session_state[HANDOFF_KEY] = (uploads[position].name, uploads[position].getvalue())
        st.switch_page("pages/2_Segment.py")

    st.markdown("##### Studies")
    for study, positions in studies.items():
        judged = [verdicts[position] for position in positions if position in verdicts]
        verdict = study_verdict(judged)
        views = "view" if len(positions) == 1 else "views"
        with st.container(border=True):
            st.markdown(
                f"**{study}** · {len(positions)} {views} · Study verdict: **{verdict.label}**"
            )
            st.caption(
                f"{', '.join(names[position] for position in positions)}. {verdict.reason}."
            )
    st.caption(f"Study verdict rule: {STUDY_RULE}.")
    if mode == "auto":
        prefixes = {name_prefix(name) for name in names}
        st.caption(
            f"File-name prefixes found: {', '.join(sorted(prefixes))}. Choose another grouping "
            "above if these are not the studies."
        )


main()
