"""AppTest of the home and Dataset pages on a tiny synthetic dataset, and on broken folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from page_checks import assert_page_runs_without_tensorflow
from streamlit.testing.v1 import AppTest

from btseg.data.btxrd import COLUMNS, open_dataset
from btseg.data.splits import surrogate_patient_ids

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC_NAME = "Synthetic BTXRD-format dataset (generated, not patient data)"


def run_home() -> AppTest:
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    return app.run()


def run_dataset_page() -> AppTest:
    return run_home().switch_page("pages/1_Dataset.py").run()


def metrics(app: AppTest) -> dict[str, int]:
    return {metric.label: int(metric.value.replace(",", "")) for metric in app.metric}


def page_text(app: AppTest) -> str:
    parts = [element.value for element in [*app.markdown, *app.info, *app.caption, *app.warning]]
    return "\n".join(str(part) for part in parts)


def chart(app: AppTest, title: str) -> dict:
    """The Plotly JSON of the chart whose title is `title`."""
    for element in app.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        if spec["layout"]["title"]["text"] == title:
            return spec
    raise AssertionError(f"no chart titled {title!r}")


def expected_counts(table: pd.DataFrame) -> dict[str, int]:
    return {
        "Images": len(table),
        "Normal": int((table["label"] == "normal").sum()),
        "Benign": int((table["label"] == "benign").sum()),
        "Malignant": int((table["label"] == "malignant").sum()),
        "Annotated images": int((table["annotation_path"] != "").sum()),
    }


def test_dataset_page_shows_the_synthetic_dataset_and_its_counts(app_env):
    app = run_dataset_page()
    assert not app.exception, [item.value for item in app.exception]
    assert not app.error, [item.value for item in app.error]
    assert SYNTHETIC_NAME in page_text(app)

    table = open_dataset(app_env).table
    shown = metrics(app)
    for label, value in expected_counts(table).items():
        assert shown[label] == value, label
    assert shown["Images"] == 40
    assert shown["Surrogate patients"] == surrogate_patient_ids(table).nunique()

    classes = chart(app, "Class distribution")["data"][0]
    assert classes["y"] == [shown["Normal"], shown["Benign"], shown["Malignant"]]
    assert len(app.get("plotly_chart")) == 9
    assert len(app.get("image")) == 8  # the gallery
    assert any("Validation problems" in expander.label for expander in app.expander)


def test_class_filter_updates_metrics_and_charts(app_env):
    app = run_dataset_page()
    table = open_dataset(app_env).table
    malignant = table[table["label"] == "malignant"]
    assert len(malignant) > 0

    app.multiselect(key="dataset_filter_class").set_value(["malignant"]).run()
    assert not app.exception
    shown = metrics(app)
    assert shown == {
        **expected_counts(malignant),
        "Surrogate patients": surrogate_patient_ids(table)[malignant.index].nunique(),
    }
    assert shown["Normal"] == 0 and shown["Benign"] == 0
    assert chart(app, "Class distribution")["data"][0]["y"] == [0, 0, len(malignant)]
    assert f"{len(malignant)} of 40 images" in page_text(app)


def test_age_and_gender_filters_combine(app_env):
    app = run_dataset_page()
    table = open_dataset(app_env).table
    app.slider(key="dataset_filter_age").set_range(20, 60)
    app.multiselect(key="dataset_filter_gender").set_value(["F"]).run()
    assert not app.exception
    expected = table[table["age"].between(20, 60) & (table["gender"] == "F")]
    assert metrics(app)["Images"] == len(expected)


def test_filters_matching_nothing_show_a_warning_not_charts(app_env):
    app = run_dataset_page()
    app.multiselect(key="dataset_filter_class").set_value(["normal"])
    app.multiselect(key="dataset_filter_site").set_value(
        [app.multiselect(key="dataset_filter_site").options[0]]
    )
    app.run()
    assert not app.exception
    assert metrics(app)["Images"] == 0
    assert any("No image matches the filters" in item.value for item in app.warning)
    assert len(app.get("plotly_chart")) == 0


def gallery_captions(app: AppTest) -> list[str]:
    return [caption for image in app.get("image") for caption in image.captions]


def test_other_samples_shows_other_images(app_env):
    app = run_dataset_page()
    first = gallery_captions(app)
    app.button(key="dataset_gallery_shuffle").click().run()
    assert not app.exception
    second = gallery_captions(app)
    assert len(first) == len(second) == 8
    assert first != second


def test_images_that_cannot_be_decoded_are_named_in_the_gallery(app_env, tmp_path, monkeypatch):
    copy = tmp_path / "damaged"
    shutil.copytree(app_env, copy)
    for number, image in enumerate(sorted((copy / "images").iterdir())):
        image.write_bytes(f"not an image {number}".encode())
    monkeypatch.setenv("BTSEG_DATA_DIR", str(copy))
    app = run_dataset_page()
    assert not app.exception, [item.value for item in app.exception]
    assert len(app.get("image")) == 0
    damaged = [item.value for item in app.warning]
    assert len(damaged) == 8
    assert all(Path(str(value).split(":")[0]).name.startswith("IMG") for value in damaged)
    assert len(app.get("plotly_chart")) == 9  # the table and charts still work


def broken_folder(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "missing_columns":
        (folder / "images").mkdir()
        (folder / "dataset.csv").write_text("image_id,center,age\nIMG000001.jpeg,1,30\n")
    elif kind == "no_images":
        row = {name: 0 for name in COLUMNS}
        row.update({"image_id": "IMG000001.jpeg", "center": 1, "age": 30, "gender": "M"})
        pd.DataFrame([row]).to_csv(folder / "dataset.csv", index=False)
    return folder


@pytest.mark.parametrize("kind", ["empty", "missing_columns", "no_images", "does_not_exist"])
def test_a_broken_dataset_shows_the_error_and_the_fix(app_env, tmp_path, monkeypatch, kind):
    folder = tmp_path / "nowhere" if kind == "does_not_exist" else broken_folder(tmp_path, kind)
    monkeypatch.setenv("BTSEG_DATA_DIR", str(folder))
    for app in (run_dataset_page(), run_home()):
        assert not app.exception, [item.value for item in app.exception]
        assert len(app.error) == 1
        assert str(folder) in app.error[0].value
        assert any("btseg demo-data --out data/synthetic" in block.value for block in app.code)
        assert any("BTSEG_DATA_DIR" in block.value for block in app.code)


def test_home_page_names_the_dataset_and_links_every_page(app_env):
    app = run_home()
    assert not app.exception, [item.value for item in app.exception]
    text = page_text(app)
    assert SYNTHETIC_NAME in text
    assert "Research use only" in text
    assert metrics(app)["Images"] == 40
    links = [element.proto.page for element in app.get("page_link")]
    assert any(link.endswith("Dataset") or "1_Dataset" in link for link in links), links
    # No model is trained in app_env's empty models folder: each card gives its train command.
    commands = [block.value for block in app.code]
    for model in ("basic", "attention", "classifier"):
        assert any(f"btseg train --model {model} --data" in command for command in commands), commands
    assert len(app.warning) >= 3


def test_dataset_page_does_not_import_tensorflow(app_env):
    assert_page_runs_without_tensorflow(
        "pages/1_Dataset.py", 'len(app.get("plotly_chart")) > 0', 120
    )
