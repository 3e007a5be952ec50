"""Dataset page: what is in the configured BTXRD-format dataset, with filters.

Widgets -> btseg (table, split, annotations) -> btseg.viz figures -> drawing. No TensorFlow here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from btseg import config, viz
from btseg.data import queries
from btseg.errors import BtsegError, ImageError
from btseg_app import common

GALLERY_SIZE = 8
GALLERY_COLUMNS = 4


def filters_ui(table: pd.DataFrame) -> queries.TableFilter:
    """Sidebar filters; returns the selection (empty selections mean "all")."""
    sidebar = st.sidebar
    sidebar.subheader("Filters")
    if sidebar.button("Reset filters", key="dataset_reset_filters", icon=":material/restart_alt:"):
        for key in list(st.session_state):
            if str(key).startswith("dataset_filter_"):
                del st.session_state[key]
    labels = sidebar.multiselect(
        "Class",
        list(config.CLASS_NAMES),
        key="dataset_filter_class",
        placeholder="All classes",
    )
    sites = sidebar.multiselect(
        "Anatomical site",
        queries.site_options(table),
        key="dataset_filter_site",
        placeholder="All sites",
        help="Normal images record no site, so choosing a site shows tumour images only.",
    )
    centers = sidebar.multiselect(
        "Centre",
        sorted(int(center) for center in table["center"].dropna().unique()),
        format_func=lambda center: f"{center} · {viz.CENTER_NAMES.get(center, 'other')}",
        key="dataset_filter_center",
        placeholder="All centres",
    )
    genders = sidebar.multiselect(
        "Gender",
        sorted(table["gender"].dropna().unique()),
        format_func=lambda gender: viz.GENDER_NAMES.get(gender, str(gender) or "not recorded"),
        key="dataset_filter_gender",
        placeholder="Both",
    )
    ages = table["age"].dropna()
    age_range = None
    if not ages.empty and ages.min() < ages.max():
        low, high = int(ages.min()), int(ages.max() + 0.999)
        chosen = sidebar.slider("Age (years)", low, high, (low, high), key="dataset_filter_age")
        if tuple(chosen) != (low, high):
            age_range = (float(chosen[0]), float(chosen[1]))
    return queries.TableFilter(
        labels=tuple(labels),
        sites=tuple(sites),
        centers=tuple(centers),
        genders=tuple(genders),
        age_range=age_range,
    )


def draw_header(data_dir: Path, dataset_size: int) -> None:
    st.title("Dataset")
    if config.is_synthetic(data_dir):
        st.info(
            f"**{common.SYNTHETIC_NAME}** · {dataset_size:,} images at `{data_dir}`.  \n"
            "Images, masks and metadata follow the BTXRD format exactly; point btseg at a real "
            "BTXRD folder with `BTSEG_DATA_DIR=/path/to/BTXRD`.",
            icon=":material/science:",
        )
    else:
        st.caption(f"{common.dataset_name(data_dir)} · {dataset_size:,} images")


def draw_metrics(table: pd.DataFrame, full_size: int, filtered: bool) -> None:
    counts = table["label"].value_counts()
    annotated = int((table["annotation_path"].astype(str) != "").sum())
    patients = int(table["surrogate_patient_id"].nunique())
    values = [
        ("Images", len(table), f"Rows of the table{' matching the filters' if filtered else ''}."),
        ("Normal", int(counts.get("normal", 0)), "Images without a tumour."),
        ("Benign", int(counts.get("benign", 0)), "Images of a benign bone tumour."),
        ("Malignant", int(counts.get("malignant", 0)), "Images of a malignant bone tumour."),
        ("Annotated images", annotated, "Images with a LabelMe outline of the lesion(s)."),
        (
            "Surrogate patients",
            patients,
            "BTXRD has no patient id: runs of consecutive images with the same centre, age, "
            "gender, site and diagnosis, plus exact duplicates, are taken as one patient.",
        ),
    ]
    # The last two labels are longer: wider columns keep them from being cut.
    widths = [1, 1, 1, 1, 1.35, 1.45]
    common.metric_cards([(label, f"{value:,}", help_text) for label, value, help_text in values],
                        widths)
    if filtered:
        st.caption(
            f"Filters active: {len(table):,} of {full_size:,} images. Every chart below shows "
            "the filtered images."
        )


def draw_chart(figure, key: str) -> None:
    st.plotly_chart(figure, key=key, config={"displaylogo": False}, width="stretch")


def draw_chart_pair(left_figure, right_figure, keys: tuple[str, str]) -> None:
    """Two charts side by side, at the height of the taller so the rows stay aligned."""
    height = max(left_figure.layout.height or 0, right_figure.layout.height or 0) or None
    for column, figure, key in zip(st.columns(2), (left_figure, right_figure), keys, strict=True):
        with column:
            draw_chart(figure.update_layout(height=height), key)


def draw_population(table: pd.DataFrame) -> None:
    st.header("Population", divider="gray")
    draw_chart_pair(
        viz.class_distribution_figure(table),
        viz.age_by_class_figure(table),
        ("chart_classes", "chart_age"),
    )
    draw_chart_pair(
        viz.gender_by_class_figure(table),
        viz.center_figure(table),
        ("chart_gender", "chart_centres"),
    )


def draw_tumours(table: pd.DataFrame, lesions: pd.DataFrame) -> None:
    st.header("Tumours and images", divider="gray")
    draw_chart_pair(
        viz.site_frequency_figure(table),
        viz.subtype_figure(table),
        ("chart_sites", "chart_subtypes"),
    )
    shown = lesions[lesions["image_id"].isin(set(table["image_id"]))]
    draw_chart_pair(
        viz.view_figure(table),
        viz.lesion_area_figure(shown["area_percent"], shown["label"]),
        ("chart_views", "chart_lesion_area"),
    )


def draw_split(table: pd.DataFrame, data_dir: Path) -> None:
    st.header("Train / validation / test split", divider="gray")
    try:
        split = common.load_split(data_dir)
    except BtsegError as error:
        common.error_box(error)
        return
    left, right = st.columns([3, 2])
    with left:
        draw_chart(viz.split_composition_figure(table, split.assignment), "chart_split")
    with right:
        summary = split.summary
        st.markdown(
            f"**{summary['groups']:,} surrogate patients** in {summary['images']:,} images, "
            "split 70 / 15 / 15 by patient group and stratified by class. "
            "No surrogate patient appears in two parts, so the test images show patients the "
            "models never saw."
        )
        rows = [
            {
                "part": part,
                "images": values["images"],
                "patients": values["groups"],
                **{name: values["by_label"].get(name, 0) for name in config.CLASS_NAMES},
            }
            for part, values in summary["parts"].items()
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption(f"Split id `{summary['split_id']}` (seed {summary['seed']}), whole dataset.")


def draw_gallery(table: pd.DataFrame) -> None:
    st.header("Sample images", divider="gray")
    top_left, top_right = st.columns([4, 1])
    with top_left:
        st.markdown(
            "Lesion outlines from the LabelMe annotations, in the class colour: "
            + common.class_legend_markdown(("benign", "malignant")),
            unsafe_allow_html=True,
        )
    with top_right:
        if st.button("Other samples", key="dataset_gallery_shuffle", icon=":material/shuffle:"):
            st.session_state["dataset_gallery_seed"] = (
                st.session_state.get("dataset_gallery_seed", 0) + 1
            )
    sample = queries.gallery_sample(
        table, GALLERY_SIZE, seed=st.session_state.get("dataset_gallery_seed", 0)
    )
    if sample.empty:
        st.info("No image file matches the filters.")
        return
    rows = [
        sample.iloc[start : start + GALLERY_COLUMNS]
        for start in range(0, len(sample), GALLERY_COLUMNS)
    ]
    for row_sample in rows:
        # One st.columns row per gallery row keeps the thumbnails aligned whatever the captions.
        for column, (_, row) in zip(
            st.columns(GALLERY_COLUMNS), row_sample.iterrows(), strict=False
        ):
            with column:
                draw_thumbnail(row)


def draw_thumbnail(row: pd.Series) -> None:
    stem = Path(str(row["image_id"])).stem
    details = [row["label"]]
    if row["subtype"]:
        details.append(row["subtype"])
    details.append(row["site"] or row["region"] or "site not recorded")
    if row["view"]:
        details.append(row["view"])
    try:
        thumbnail, lesion_count, note = common.load_thumbnail(
            str(row["image_path"]), str(row["annotation_path"]), str(row["label"])
        )
    except ImageError as error:
        st.warning(f"{stem}: {error}", icon=":material/broken_image:")
        return
    if lesion_count > 1:
        details.append(f"{lesion_count} lesions")
    st.image(thumbnail, caption=f"**{stem}** · {' · '.join(details)}", width="stretch")
    if note:
        st.caption(f":material/warning: {note}")


def draw_problems(problems: list) -> None:
    problems = queries.problems_table(problems)
    if problems.empty:
        title = "Validation problems: none found"
    else:
        title = (
            f"Validation problems: {len(problems)} kind{'s' if len(problems) != 1 else ''}, "
            f"{int(problems['count'].sum()):,} rows or files — reported, not fixed"
        )
    with st.expander(title, icon=":material/rule:"):
        if problems.empty:
            st.write("Every row has its image, one class, one view and a consistent region.")
            return
        st.markdown(
            "btseg reports rows that disagree with themselves or with the files on disk and "
            "keeps them as they are: nothing is dropped or silently corrected. The real BTXRD "
            "table, for example, has about 20 tumour rows whose region contradicts their bone."
        )
        st.dataframe(
            problems,
            hide_index=True,
            width="stretch",
            column_config={
                "kind": "Kind",
                "count": st.column_config.NumberColumn("Count", format="%d"),
                "first_ids": "First image ids",
                "details": st.column_config.TextColumn("Details", width="large"),
            },
        )


def draw_table(table: pd.DataFrame) -> None:
    with st.expander(f"Table of the {len(table):,} shown images", icon=":material/table:"):
        shown = table[
            ["image_id", "label", "subtype", "site", "region", "view", "center", "age", "gender"]
        ].copy()
        shown["sites"] = table["sites"].map(", ".join)
        st.dataframe(shown, hide_index=True, width="stretch", height=320)
        st.download_button(
            "Download as CSV",
            shown.to_csv(index=False).encode(),
            file_name="btseg_dataset_filtered.csv",
            mime="text/csv",
            key="dataset_download_csv",
            icon=":material/download:",
        )


def main() -> None:
    st.set_page_config(
        page_title="Dataset · btseg", page_icon=":material/bar_chart:", layout="wide"
    )
    data_dir = config.data_dir()
    try:
        dataset = common.load_dataset(data_dir)
    except BtsegError as error:
        common.sidebar_dataset_badge(data_dir, None)
        common.research_notice()
        st.title("Dataset")
        common.dataset_error_box(error, data_dir)
        return
    full_table = dataset.table
    statistics = common.load_statistics(data_dir)
    common.sidebar_dataset_badge(data_dir, dataset)
    selection = filters_ui(full_table)
    common.research_notice()
    table = queries.filter_table(full_table, selection)

    draw_header(data_dir, len(full_table))
    draw_metrics(table, len(full_table), selection.active)
    if table.empty:
        st.warning(
            "No image matches the filters. Widen them in the sidebar.",
            icon=":material/filter_alt_off:",
        )
        draw_problems(statistics.problems)
        return
    draw_population(table)
    draw_tumours(table, statistics.lesions)
    draw_split(table, data_dir)
    draw_gallery(table)
    draw_problems(statistics.problems)
    draw_table(table)


main()
