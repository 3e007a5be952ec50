"""The one prediction pipeline (btseg.predict): Predictor, `btseg predict` (predict_paths /
run_predict) on folders of good and bad files, and its agreement with `btseg evaluate`."""

from __future__ import annotations

import json
import shutil
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest
from dicom_support import write_dicom
from scipy import ndimage
from test_infer import tiny_runs

from btseg.data.images import DecodedImage
from btseg.data.labelme import lesions_mask, read_annotation
from btseg.decisions import decide, most_probable_lesion
from btseg.errors import ConfigError, RunError
from btseg.infer import Classifier, Segmenter
from btseg.predict import (
    SUMMARY_COLUMNS,
    Predictor,
    expand_paths,
    predict_paths,
    run_predict,
)


@pytest.fixture(scope="module")
def runs(trained_models):
    return tiny_runs(trained_models)


@pytest.fixture(scope="module")
def models(runs):
    return Segmenter.from_run(runs["attention"]), Classifier.from_run(runs["classifier"])


def small_xrays(runs, count: int) -> list[np.ndarray]:
    """Synthetic radiographs shrunk to at most 200 px a side, to keep the test quick."""
    images = []
    for path in sorted((runs["data"] / "images").iterdir())[:count]:
        pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        scale = 200 / max(pixels.shape)
        size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
        images.append(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))
    return images


@pytest.fixture
def folder(tmp_path, runs):
    """Good JPEG and PNG files, one bad file of each kind, a note and a subfolder."""
    folder = tmp_path / "scans"
    folder.mkdir()
    first, second, third = small_xrays(runs, 3)
    cv2.imwrite(str(folder / "a_good.jpg"), first)
    cv2.imwrite(str(folder / "b_good.PNG"), second)
    pixels = second.copy()
    pixels[0, 0], pixels[-1, -1] = 0, 255  # the full range: min/max scaling leaves it unchanged
    write_dicom(folder / "b_scan.dcm", pixels, bits=8, PixelSpacing=[0.2, 0.15])
    jpeg = cv2.imencode(".jpg", third)[1].tobytes()
    (folder / "c_corrupt.jpeg").write_bytes(jpeg[:20] + bytes(200))
    (folder / "d_empty.jpg").write_bytes(b"")
    (folder / "e_text.png").write_text("not an image\n")
    (folder / "notes.txt").write_text("scanned on Monday\n")
    (folder / "older").mkdir()
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    return folder


def low_threshold(segmenter, image) -> float:
    """A threshold that leaves lesions on this tiny, barely trained model."""
    return float(np.quantile(segmenter.probability_maps([image])[0], 0.9))


@pytest.mark.slow
def test_folder_with_good_and_bad_files(folder, models, runs, tmp_path):
    segmenter, classifier = models
    threshold = low_threshold(segmenter, small_xrays(runs, 1)[0])
    calls = []
    out = tmp_path / "out"
    predictor = Predictor(segmenter, classifier)
    summary = predict_paths(
        [folder],
        out,
        predictor,
        threshold=threshold,
        batch_size=4,
        progress=lambda done, total: calls.append((done, total)),
    )
    names = [name.split("/")[-1] for name in summary["file"]]
    assert names == [
        "a_good.jpg", "b_good.PNG", "b_scan.dcm", "c_corrupt.jpeg", "d_empty.jpg", "e_text.png",
        "notes.txt", "older",
    ]  # fmt: skip
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert calls == [(done, 8) for done in range(1, 9)]
    status = dict(zip(names, summary["status"], strict=True))
    error = dict(zip(names, summary["error"], strict=True))
    assert status == {
        "a_good.jpg": "ok", "b_good.PNG": "ok", "b_scan.dcm": "ok", "c_corrupt.jpeg": "error",
        "d_empty.jpg": "error", "e_text.png": "error", "notes.txt": "skipped", "older": "skipped",
    }  # fmt: skip
    assert "damaged JPEG" in error["c_corrupt.jpeg"]
    assert "empty (0 bytes)" in error["d_empty.jpg"]
    assert "text file" in error["e_text.png"]
    assert "not an image file name" in error["notes.txt"]
    assert "not searched recursively" in error["older"]
    assert error["a_good.jpg"] == ""

    good = summary[summary["status"] == "ok"]
    probabilities = good[["prob_normal", "prob_benign", "prob_malignant"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert list(good["predicted_class"]) == [
        ("normal", "benign", "malignant")[index] for index in probabilities.argmax(axis=1)
    ]
    assert (good["segmentation_run"] == "attention_unet").all()
    assert (good["classifier_run"] == "classifier").all()
    assert (summary["threshold"] == threshold).all()
    bad = summary[summary["status"] != "ok"]
    assert bad["prob_normal"].isna().all() and bad["height"].isna().all()
    assert (bad["mask_file"] == "").all()

    written = sorted(path.name for path in out.iterdir())
    assert written == ["a_good.json", "a_good_mask.png", "b_good.json", "b_good_mask.png",
                       "b_scan.json", "b_scan.png", "b_scan_mask.png", "studies.csv",
                       "summary.csv"]  # fmt: skip
    png, dicom = (summary[summary["file"].str.endswith(name)].iloc[0]
                  for name in ("b_good.PNG", "b_scan.dcm"))  # fmt: skip
    # LabelMe cannot open DICOM: its JSON points at the PNG written beside it.
    assert json.loads((out / "b_scan.json").read_text())["imagePath"] == "b_scan.png"
    assert dicom["image_file"] == "b_scan.png" and png["image_file"] == ""
    dicom_mask = cv2.imread(str(out / "b_scan_mask.png"), cv2.IMREAD_UNCHANGED) > 0
    assert dicom["lesion_area_mm2"] == pytest.approx(dicom_mask.sum() * 0.2 * 0.15)
    assert dicom["lesions"] >= 1 and np.isnan(png["lesion_area_mm2"])
    from_disk = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert list(from_disk.columns) == list(SUMMARY_COLUMNS)
    assert list(from_disk["status"]) == list(summary["status"])

    images = {"a_good": cv2.imread(str(folder / "a_good.jpg"), cv2.IMREAD_GRAYSCALE),
              "b_good": cv2.imread(str(folder / "b_good.PNG"), cv2.IMREAD_GRAYSCALE)}  # fmt: skip
    for stem, image in images.items():
        row = summary[summary["mask_file"] == f"{stem}_mask.png"].iloc[0]
        mask = cv2.imread(str(out / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.shape == image.shape
        assert set(np.unique(mask)) <= {0, 255}
        assert (row["height"], row["width"]) == image.shape
        assert row["lesion_area_percent"] == pytest.approx(100 * (mask > 0).mean())
        expected = predictor.predict(image, predictor.point(threshold))
        np.testing.assert_array_equal(mask > 0, expected.mask > 0)
        assert row["lesions"] == len(expected.lesions)
        assert row["verdict"] == expected.verdict.label and row["verdict_reason"]
        # The demo classifier classifies regions: that of the most probable lesion.
        assert classifier.classifies_regions
        chosen = most_probable_lesion(expected.lesions)
        assert expected.classified_lesion == chosen
        region = classifier.predict(image, box=chosen.box)
        assert [row[f"prob_{name}"] for name in region] == pytest.approx(list(region.values()), abs=1e-5)

        annotation = read_annotation(out / f"{stem}.json")
        assert (annotation.height, annotation.width) == image.shape
        assert len(annotation.lesions) == row["lesions"] > 0
        label = row["verdict"] if row["verdict"] in ("benign", "malignant") else "tumor"
        assert {lesion.label for lesion in annotation.lesions} == {label}
        drawn = lesions_mask(annotation.lesions, image.shape) > 0
        # LabelMe polygons have no holes: mask_to_lesions fills them (documented).
        truth = ndimage.binary_fill_holes(mask > 0)
        assert (drawn & truth).sum() / (drawn | truth).sum() >= 0.98


@pytest.mark.slow
def test_batch_size_does_not_change_the_results(models, runs, tmp_path):
    segmenter, classifier = models
    folder = tmp_path / "many"
    folder.mkdir()
    for index, image in enumerate(small_xrays(runs, 5)):
        cv2.imwrite(str(folder / f"x{index}.png"), image)
    threshold = low_threshold(segmenter, small_xrays(runs, 1)[0])
    predictor = Predictor(segmenter, classifier)
    one = predict_paths([folder], tmp_path / "one", predictor, threshold, batch_size=1)
    three = predict_paths([folder], tmp_path / "three", predictor, threshold, batch_size=3)
    columns = ["prob_normal", "prob_benign", "prob_malignant"]
    np.testing.assert_allclose(one[columns].to_numpy(), three[columns].to_numpy(), atol=1e-5)
    # The segmenter runs one image per model call: the batch size only groups the decoding.
    assert list(one["lesion_area_percent"]) == list(three["lesion_area_percent"])
    for name in one["mask_file"]:
        first = cv2.imread(str(tmp_path / "one" / name), cv2.IMREAD_UNCHANGED)
        again = cv2.imread(str(tmp_path / "three" / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(first, again)


@pytest.mark.slow
def test_files_given_one_by_one_and_same_stems(models, runs, tmp_path):
    segmenter, _ = models
    image = small_xrays(runs, 1)[0]
    cv2.imwrite(str(tmp_path / "scan.png"), image)
    cv2.imwrite(str(tmp_path / "scan.jpg"), image)
    (tmp_path / "png_really.dat").write_bytes((tmp_path / "scan.png").read_bytes())
    summary = predict_paths(
        [tmp_path / "scan.png", tmp_path / "scan.jpg", tmp_path / "png_really.dat",
         tmp_path / "missing.png"],
        tmp_path / "out", Predictor(segmenter, None),
    )  # fmt: skip
    assert list(summary["status"]) == ["ok", "ok", "ok", "error"]
    assert list(summary["mask_file"]) == ["scan_mask.png", "scan-jpg_mask.png",
                                          "png_really_mask.png", ""]  # fmt: skip
    assert "does not exist" in summary["error"].iloc[3]
    assert summary["prob_benign"].isna().all() and (summary["predicted_class"] == "").all()
    assert set(summary["verdict"][:3]) <= {"normal", "tumour"}  # no classifier: no kind
    assert (summary["threshold"] == segmenter.threshold).all()
    assert (summary["classifier_run"] == "").all()


def test_expand_paths_is_top_level_sorted_and_skips_hidden(tmp_path):
    for name in ("b.JPG", "a.dcm", "c.jpeg", "readme.md", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"x")
    entries = expand_paths([tmp_path])
    assert [(entry.path.name, bool(entry.skipped)) for entry in entries] == [
        ("a.dcm", False), ("b.JPG", False), ("c.jpeg", False), ("readme.md", True),
        ("sub", True),
    ]  # fmt: skip


@pytest.mark.slow
def test_run_predict_loads_runs_and_warns_without_classifier(runs, tmp_path):
    image = small_xrays(runs, 1)[0]
    cv2.imwrite(str(tmp_path / "scan.png"), image)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    shutil.copytree(runs["attention"], models_dir / "attention_unet")
    with pytest.warns(UserWarning, match="btseg train --model classifier"):
        summary = run_predict([tmp_path / "scan.png"], tmp_path / "out", models_dir)
    assert list(summary["status"]) == ["ok"]
    assert summary["prob_normal"].isna().all()
    assert "no class probabilities" in summary.attrs["warnings"][0]

    shutil.copytree(runs["classifier"], models_dir / "classifier")
    with pytest.warns(UserWarning, match="btseg fit-gate"):
        run_predict([tmp_path / "scan.png"], tmp_path / "out", models_dir)
    shutil.copy(runs["attention"].parent / "input_gate.json", models_dir)
    threshold = low_threshold(Segmenter.from_run(runs["attention"]), image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = run_predict(
            [tmp_path / "scan.png"], tmp_path / "out", models_dir, threshold=threshold, batch_size=2
        )
    assert summary["prob_normal"].notna().all() and summary["threshold"].iloc[0] == threshold
    # A region classifier has no region to classify where no lesion is found.
    summary = run_predict([tmp_path / "scan.png"], tmp_path / "none", models_dir, threshold=1.0)
    assert summary["lesions"].iloc[0] == 0 and summary["prob_normal"].isna().all()
    assert summary["predicted_class"].iloc[0] == ""
    assert summary.attrs["warnings"] == []


def test_run_predict_errors_name_the_fix(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    with pytest.raises(ConfigError, match="no file to predict"):
        run_predict([scans], tmp_path / "out", tmp_path / "no_models")
    (scans / "x.png").write_bytes(b"x")
    with pytest.raises(RunError, match="btseg train --model attention"):
        run_predict([scans], tmp_path / "out", tmp_path / "no_models")
    with pytest.raises(RunError, match="btseg train --model basic"):
        run_predict([scans], tmp_path / "out", tmp_path / "no_models", model="basic")
    with pytest.raises(ConfigError, match="--model"):
        run_predict([tmp_path], tmp_path / "out", tmp_path, model="classifier")
    with pytest.raises(ConfigError, match="--threshold"):
        run_predict([tmp_path], tmp_path / "out", tmp_path, threshold=2.0)
    with pytest.raises(ConfigError, match="--batch-size"):
        run_predict([tmp_path], tmp_path / "out", tmp_path, batch_size=0)


@pytest.mark.slow
def test_prediction_at_a_point_and_after_a_threshold_move(models, runs):
    segmenter, classifier = models
    predictor = Predictor(segmenter, classifier)
    spacing = (0.2, 0.1)
    xray = small_xrays(runs, 1)[0]
    image = DecodedImage(xray, "x.png", "PNG", 8, spacing, "L", notes=("a note",))
    probability = segmenter.probability_maps([xray])[0]
    threshold = float(np.quantile(probability, 0.85))  # a cut that leaves several regions
    point = predictor.point(threshold)
    assert point.min_lesion_fraction == segmenter.operating_point.min_lesion_fraction
    prediction = predictor.predict(image, point)
    np.testing.assert_array_equal(prediction.probability_map, probability)
    mask, lesions = decide(probability, point, pixel_spacing_mm=spacing)
    np.testing.assert_array_equal(prediction.mask, mask)
    assert prediction.lesions == lesions and lesions
    above = probability >= threshold
    labels, count = ndimage.label(above, structure=np.ones((3, 3)))
    areas = np.bincount(labels.ravel())
    kept = areas >= point.min_area(xray.shape)
    kept[0] = False
    np.testing.assert_array_equal(prediction.mask, kept[labels].astype(np.uint8))
    assert prediction.lesion_area_mm2 == pytest.approx(prediction.mask.sum() * 0.02)
    assert prediction.notes == ("a note",) and prediction.segmentation_run == "attention_unet"
    assert prediction.verdict.label in ("normal", "benign", "malignant")
    moved = predictor.at_point(predictor.predict(image, predictor.point(0.99)), point, image)
    np.testing.assert_array_equal(moved.mask, prediction.mask)
    assert moved.verdict == prediction.verdict
    assert predictor.predict(image).point == segmenter.operating_point


@pytest.mark.slow
@pytest.mark.parametrize("run_name", ["attention_unet", "basic_unet"])
def test_predict_writes_exactly_the_masks_evaluate_scored(trained_models, run_name, tmp_path):
    """`btseg predict` on every test-split image gives the pixel count per_image.csv reports."""
    models_dir = trained_models.models_dir
    scored = pd.read_csv(models_dir / run_name / "evaluation" / "per_image.csv")
    from btseg.data.btxrd import open_dataset

    table = open_dataset(trained_models.data_dir).table.set_index("image_id")
    paths = [table.loc[image_id, "image_path"] for image_id in scored["image_id"]]
    assert len(paths) == len(scored) > 0 and len(table) > len(scored)
    model = "attention" if run_name == "attention_unet" else "basic"
    summary = run_predict(paths, tmp_path / "out", models_dir, model=model)
    assert list(summary["status"]) == ["ok"] * len(paths)
    for (_, row), (_, written) in zip(scored.iterrows(), summary.iterrows(), strict=True):
        mask = cv2.imread(str(tmp_path / "out" / written["mask_file"]), cv2.IMREAD_UNCHANGED)
        assert int((mask > 0).sum()) == int(row["pred_area_px"]), row["image_id"]


@pytest.mark.slow
def test_refused_images_are_inconclusive_and_the_exit_status_says_so(trained_models, runs,
                                                                    tmp_path, capsys):
    from pathlib import Path

    import pydicom

    from btseg.cli import PREDICT_INCOMPLETE, main

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm",
                folder / "chest_ct.dcm")
    cv2.imwrite(str(folder / "blank.png"), np.full((200, 200), 90, np.uint8))
    cv2.imwrite(str(folder / "tiny.png"), np.arange(64, dtype=np.uint8).reshape(8, 8))
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), small_xrays(runs, 1)[0])
    shutil.copy(good, folder / "good.png")
    models = str(trained_models.models_dir)
    code = main(["predict", str(folder), "--out", str(tmp_path / "out"), "--models-dir", models])
    assert code == PREDICT_INCOMPLETE
    printed = capsys.readouterr().out
    assert "1 of 4 files predicted" in printed and "(refused)" in printed
    summary = pd.read_csv(tmp_path / "out" / "summary.csv", keep_default_na=False)
    rows = {Path(row["file"]).name: row for _, row in summary.iterrows()}
    assert rows["good.png"]["status"] == "ok"
    for name, words in (("chest_ct.dcm", "CT image (DICOM Modality CT)"),
                        ("blank.png", "no content"), ("tiny.png", "too small")):  # fmt: skip
        row = rows[name]
        assert row["status"] == "refused" and row["verdict"] == "inconclusive", name
        assert words in row["error"] and row["mask_file"] == "", name
    assert not (tmp_path / "out" / "chest_ct_mask.png").exists()
    code = main(["predict", str(good), "--out", str(tmp_path / "one"), "--models-dir", models])
    assert code == 0 and "1 of 1 file predicted" in capsys.readouterr().out
    code = main(["predict", str(folder / "tiny.png"), "--out", str(tmp_path / "none"),
                 "--models-dir", models])  # fmt: skip
    assert code == PREDICT_INCOMPLETE and "None of the 1 file" in capsys.readouterr().out


@pytest.mark.slow
def test_studies_get_one_verdict_from_all_their_views(models, runs, tmp_path):
    from btseg.studies import STUDY_RULE

    segmenter, classifier = models
    folder = tmp_path / "study"
    folder.mkdir()
    first, second, third = small_xrays(runs, 3)
    for name, image in (("knee_ap.png", first), ("knee_lat.png", second), ("knee_obl.png", third)):
        cv2.imwrite(str(folder / name), image)
    write_dicom(folder / "zz_scan.dcm", first, bits=8, PixelSpacing=[0.2, 0.2])
    summary = predict_paths([folder], tmp_path / "out", Predictor(segmenter, classifier))
    assert list(summary["study"]) == ["knee", "knee", "knee", "zz"]
    studies = pd.read_csv(tmp_path / "out" / "studies.csv", keep_default_na=False)
    assert list(studies["study"]) == ["knee", "zz"]
    assert list(studies["images"]) == [3, 1]
    assert studies["files"].iloc[0] == "knee_ap.png; knee_lat.png; knee_obl.png"
    assert (studies["rule"] == STUDY_RULE).all()
    assert set(studies["verdict"]) <= {"normal", "benign", "malignant", "inconclusive"}
    assert summary.attrs["studies"][1]["verdict"] == summary["verdict"].iloc[3]


@pytest.mark.slow
def test_predict_report_and_dicom_seg_on_the_synthetic_dicom_set(trained_models, tmp_path):
    """`btseg predict --report --dicom-seg` on synthetic DICOM files: a report per image and per
    study, a DICOM SEG per image that references its source and holds the mask, studies.csv."""
    import highdicom
    import pydicom

    from btseg.cli import main
    from btseg.synthetic import generate

    data = generate(tmp_path / "data", n=20, seed=5, dicom=True)
    sources = sorted((data / "dicom").iterdir())[:6]
    folder = tmp_path / "dicom"
    folder.mkdir()
    for source in sources:
        shutil.copy(source, folder / source.name)
    out = tmp_path / "out"
    code = main(["predict", str(folder), "--out", str(out), "--report", "--dicom-seg",
                 "--models-dir", str(trained_models.models_dir)])  # fmt: skip
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    accepted = summary[summary["status"] == "ok"]
    assert code in (0, 3) and len(accepted) >= 4  # the appearance check may refuse a few
    uids = {pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID for path in sources}
    studies = pd.read_csv(out / "studies.csv", keep_default_na=False)
    assert set(summary["study"]) <= {study for study in studies["study"]}
    assert len(studies) == len({row["study"] for _, row in summary.iterrows()})
    assert all(any(uid in study for uid in uids) for study in studies["study"])
    for _, study in studies.iterrows():
        html = (out / study["report_file"]).read_text()
        assert "Study verdict" in html or study["verdict"] in html
    for _, row in accepted.iterrows():
        report = (out / row["report_file"]).read_text()
        assert row["verdict"] in report and "Research use only" in report
        seg = highdicom.seg.segread(out / row["seg_file"])
        source = pydicom.dcmread(row["file"])
        referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
        assert referenced.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert seg.StudyInstanceUID == source.StudyInstanceUID
        mask = cv2.imread(str(out / row["mask_file"]), cv2.IMREAD_UNCHANGED) > 0
        np.testing.assert_array_equal(seg.pixel_array.reshape(mask.shape) > 0, mask)


@pytest.mark.slow
def test_the_uncertainty_map_is_the_spread_of_the_mirrored_predictions(models, runs, tmp_path):
    from btseg.data.images import postprocess

    segmenter, _ = models
    xray = small_xrays(runs, 1)[0]
    views = segmenter.mirrored_maps(xray)
    assert views.shape == (4, segmenter.inference_size, segmenter.inference_size)
    spread = segmenter.uncertainty_map(xray)
    assert spread.shape == xray.shape and 0.0 <= spread.min() <= spread.max() <= 1.0
    expected = np.clip(postprocess(2.0 * views.std(axis=0), xray.shape), 0, 1)
    np.testing.assert_allclose(spread, expected, atol=1e-6)
    # The average of the views is mirrored test-time augmentation, for every segmenter.
    from btseg.data.images import preprocess
    from btseg.patches import predict_whole

    inputs = preprocess(xray, segmenter.inference_size)[None]
    mirrored = predict_whole(segmenter._call, inputs, window=segmenter.inference_window,
                             mirror=True)[0]  # fmt: skip
    np.testing.assert_allclose(views.mean(axis=0), mirrored, atol=1e-5)
    cv2.imwrite(str(tmp_path / "scan.png"), xray)
    summary = predict_paths([tmp_path / "scan.png"], tmp_path / "out", Predictor(segmenter),
                            uncertainty=True)  # fmt: skip
    written = cv2.imread(str(tmp_path / "out" / summary["uncertainty_file"].iloc[0]),
                         cv2.IMREAD_UNCHANGED)  # fmt: skip
    assert written.dtype == np.uint16 and written.shape == xray.shape
    np.testing.assert_allclose(written / 65535.0, spread, atol=1e-4)
