"""The evaluation writer (btseg.evaluation: evaluate_all, evaluate_run) on a tiny trained
attention U-Net and a tiny classifier over a 40-image synthetic set.

The numbers in the artifacts are checked against recomputations from independent sources: the
per-image table, the saved predictions mapped back to the original images, scikit-learn, and the
model itself.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from btseg import evaluation, metrics
from btseg.config import CLASS_NAMES
from btseg.data.btxrd import open_dataset
from btseg.data.images import read_image
from btseg.data.labelme import lesions_mask, read_annotation

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESAMPLES = 200  # bootstrap resamples: enough to exercise the intervals, cheap on 2 cores
SEGMENTATION_FILES = ("summary.json", "sweep.csv", "per_image.csv", "per_image_sweep.npz",
                      "pixel_histogram.npz", "curves.npz", "predictions.npz")
CLASSIFIER_FILES = ("summary.json", "predictions.csv", "roc.json", "reliability.json")


@dataclass
class Setup:
    data_dir: Path
    cache_dir: Path
    models_dir: Path
    paths: dict[str, Path]
    messages: list[str]
    stages: list[tuple[str, int, int]]
    n_test: int  # test images of the split, counted from the split itself


def make_classifier_run(folder: Path, segmenter_config: dict) -> None:
    """A small 3-class Keras model in a run folder laid out as btseg.train writes it.

    Training DenseNet-121 even for the tiny profile takes minutes on 2 shared cores; the
    evaluator only needs a model that maps 64 px images to class probabilities.
    """
    import keras

    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((64, 64, 3)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, activation="softmax",
                           kernel_initializer=keras.initializers.RandomNormal(stddev=3.0)),
    ])
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    config = dict(segmenter_config, run="classifier", model="classifier", task="classification",
                  input_size=64)
    for key in ("working_size", "patch_size", "inference_window", "tta_mirror"):
        config.pop(key, None)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "history.csv").write_text("epoch,loss\n0,1.0\n")


@pytest.fixture(scope="session")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    from btseg.evaluation import evaluate_all
    from btseg.synthetic import generate
    from btseg.train import train_model

    root = tmp_path_factory.mktemp("evaluate")
    data_dir = generate(root / "data", n=40, seed=1)
    cache_dir, models_dir = root / "cache", root / "models"
    attention = train_model("attention", data_dir, models_dir, profile="tiny",
                            cache_dir=cache_dir, progress=lambda line: None)
    make_classifier_run(models_dir / "classifier",
                        json.loads((attention / "config.json").read_text()))
    messages: list[str] = []
    stages: list[tuple[str, int, int]] = []
    paths = evaluate_all(models_dir, data_dir, cache_dir=cache_dir, log=messages.append,
                         progress=lambda stage, done, total: stages.append((stage, done, total)),
                         n_resamples=RESAMPLES)
    from btseg.data.splits import split_for

    n_test = len(split_for(open_dataset(data_dir), cache_dir=cache_dir).ids("test"))
    return Setup(data_dir, cache_dir, models_dir, paths, messages, stages, n_test)


def test_every_run_gets_a_complete_evaluation_folder(setup):
    assert setup.paths == {"attention_unet": setup.models_dir / "attention_unet" / "evaluation",
                           "classifier": setup.models_dir / "classifier" / "evaluation"}
    for name in SEGMENTATION_FILES:
        assert (setup.paths["attention_unet"] / name).stat().st_size > 0, name
    for name in CLASSIFIER_FILES:
        assert (setup.paths["classifier"] / name).stat().st_size > 0, name
    leftovers = [p.name for p in setup.models_dir.glob("*/evaluation.*")]
    assert leftovers == []
    for path in setup.paths.values():
        summary = json.loads((path / "summary.json").read_text())
        assert summary["warnings"] == []  # same data and split as in training
        assert summary["schema_version"] == 1
    # Progress: one call before and one per image.
    stage = "attention_unet: predicting and scoring at original resolution"
    assert [s[1] for s in setup.stages if s[0] == stage] == list(range(setup.n_test + 1))


def test_the_artifacts_load_back_without_tensorflow(setup):
    code = (
        "import sys\n"
        "from btseg import evaluation\n"
        f"s = evaluation.load_segmentation_evaluation({str(setup.paths['attention_unet'])!r})\n"
        f"c = evaluation.load_classifier_evaluation({str(setup.paths['classifier'])!r})\n"
        "s.confusion_at(0.3); s.per_image_at(0.01); s.probabilities(); c.class_roc_curves()\n"
        "print(len(s.per_image), len(c.predictions), 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(setup.n_test), str(setup.n_test), "False"]


def test_summary_numbers_equal_the_per_image_table(setup):
    loaded = evaluation.load_segmentation_evaluation(setup.paths["attention_unet"])
    summary, table = loaded.summary, loaded.per_image
    block = summary["at_validation_threshold"]
    tumour = table[table["tumour"]]
    normal = table[table["label"] == "normal"]
    assert summary["n_test_images"] == setup.n_test == len(table)
    assert (summary["n_tumour_images"], summary["n_normal_images"]) == (
        int(table["tumour"].sum()), int((table["label"] == "normal").sum()))
    assert summary["n_tumour_images"] >= 1 and summary["n_normal_images"] >= 1
    assert block["threshold"] == summary["validation_threshold"]
    assert block["mean_dice_tumour"] == pytest.approx(tumour["dice"].mean(), abs=1e-12)
    assert block["mean_iou_tumour"] == pytest.approx(tumour["iou"].mean(), abs=1e-12)
    tp, fp, fn = (int(table[column].sum()) for column in ("tp", "fp", "fn"))
    assert block["pooled_dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
    assert block["counts"] == {"tp": tp, "fp": fp, "fn": fn, "tn": int(table["tn"].sum())}
    assert block["normal_fp_rate"] == pytest.approx(normal["predicted_lesion"].mean())
    for bucket, values in block["by_size"].items():
        assert values["n"] == int((tumour["size_bucket"] == bucket).sum())
    assert sum(values["n_images"] for values in block["by_center"].values()) == setup.n_test
    low, high = block["ci95"]["mean_dice_tumour"]
    assert low <= block["mean_dice_tumour"] <= high
    row = loaded.sweep[loaded.sweep["threshold"] == loaded.validation_threshold].iloc[0]
    assert row["mean_dice"] == pytest.approx(block["mean_dice_tumour"], abs=1e-12)
    assert row["normal_fp_rate"] == pytest.approx(block["normal_fp_rate"])
    best = summary["best_on_test"]
    assert best["optimistic"] is True
    assert best["mean_dice_tumour"] == pytest.approx(loaded.sweep["mean_dice"].max(), abs=1e-12)
    assert table["true_area_px"].gt(0).tolist() == table["label"].ne("normal").tolist()
    assert (table["pred_area_px"] == table["tp"] + table["fp"]).all()


def test_counts_auc_and_ap_equal_a_recomputation_from_the_model_and_masks(setup):
    from btseg.decisions import decide
    from btseg.infer import Segmenter

    loaded = evaluation.load_segmentation_evaluation(setup.paths["attention_unet"])
    segmenter = Segmenter.from_run(setup.models_dir / "attention_unet")
    point = segmenter.operating_point
    assert loaded.summary["operating_point"] == point.to_json()
    table = open_dataset(setup.data_dir).table.set_index("image_id")
    pairs = []
    for image_id in loaded.per_image["image_id"]:
        row = table.loc[image_id]
        pixels = read_image(row["image_path"]).pixels
        truth = np.zeros(pixels.shape, dtype=np.uint8)
        if row["annotation_path"]:
            annotation = read_annotation(row["annotation_path"], image_shape=pixels.shape)
            truth = lesions_mask(annotation.lesions, (annotation.height, annotation.width),
                                 target_shape=pixels.shape)
        pairs.append((truth, segmenter.probability_maps([pixels])[0]))
    # The pixel histogram (ROC, PR, exact confusion at any threshold) keys float16 scores.
    for threshold in (point.threshold, 0.1, float(loaded.thresholds[10]), 0.49):
        expected = metrics.ConfusionCounts(0, 0, 0, 0)
        for truth, scores in pairs:
            high = scores.astype(np.float16).astype(np.float64) >= threshold
            counts = metrics.confusion_counts(truth, high)
            expected = metrics.ConfusionCounts(*(a + b for a, b in zip(expected, counts,
                                                                       strict=True)))
        assert tuple(loaded.confusion_at(threshold)) == tuple(expected), threshold
    # Per image at the operating point: the mask btseg.decisions.decide makes.
    flags = np.asarray(loaded.per_image_sweep["has_lesion"])
    for index, (truth, scores) in enumerate(pairs):
        mask, lesions = decide(scores, point)
        row = loaded.per_image.iloc[index]
        assert int(row["pred_area_px"]) == int(mask.sum())
        assert int(row["tp"]) == int((mask.astype(bool) & truth.astype(bool)).sum())
        assert bool(row["predicted_lesion"]) == bool(lesions)
        direct = [bool(decide(scores, point.at_threshold(t))[1]) for t in loaded.thresholds]
        assert flags[index].tolist() == direct
    truth = np.concatenate([truth.ravel() for truth, _ in pairs])
    scores = np.concatenate([scores.astype(np.float16).ravel() for _, scores in pairs])
    assert loaded.summary["pixel_auc"] == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
    assert loaded.summary["average_precision"] == pytest.approx(
        average_precision_score(truth, scores), abs=1e-12)
    assert loaded.summary["n_pixels"] == truth.size
    assert int(loaded.histogram[0].sum()) == int(truth.sum())


def test_the_verdict_is_scored_on_whole_test_images_through_the_pipeline(setup):
    from btseg.decisions import VERDICT_CLASSES
    from btseg.predict import Predictor

    folder = setup.paths["classifier"]
    verdict = json.loads((folder / "verdict.json").read_text())
    rows = pd.read_csv(folder / "verdict_per_image.csv")
    assert len(rows) == verdict["n_images"] == setup.n_test
    assert set(verdict["recall"]) == set(VERDICT_CLASSES)
    confusion = np.array(verdict["confusion"])
    assert confusion.sum() == setup.n_test
    for k, name in enumerate(VERDICT_CLASSES):
        support = (rows["label"] == name).sum()
        assert confusion[k].sum() == support
        if support:
            hits = ((rows["label"] == name) & (rows["verdict"] == name)).sum()
            assert verdict["recall"][name] == pytest.approx(hits / support)
    present = [value for value in verdict["recall"].values() if value is not None]
    assert verdict["balanced_accuracy"] == pytest.approx(np.mean(present))
    assert verdict["segmentation_run"] == "attention_unet"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["verdict"]["balanced_accuracy"] == verdict["balanced_accuracy"]

    predictor, _ = Predictor.from_models_dir(setup.models_dir)
    table = open_dataset(setup.data_dir).table.set_index("image_id")
    for _, row in rows.iterrows():
        prediction = predictor.predict(read_image(table.loc[row["image_id"], "image_path"]))
        assert prediction.verdict.label == row["verdict"]


def test_a_run_is_evaluated_with_the_cache_deleted(setup, tmp_path):
    from btseg.evaluation import evaluate_run

    run_dir = tmp_path / "attention_unet"
    shutil.copytree(setup.models_dir / "attention_unet", run_dir)
    assert (run_dir / "split.json").is_file()  # training saved the split with the model
    empty_cache = tmp_path / "no_cache"
    evaluate_run(run_dir, setup.data_dir, force=True, cache_dir=empty_cache, log=None,
                 n_resamples=RESAMPLES)
    again = evaluation.load_segmentation_evaluation(run_dir)
    original = evaluation.load_segmentation_evaluation(setup.models_dir / "attention_unet")
    assert again.summary["at_validation_threshold"] == original.summary["at_validation_threshold"]
    assert again.summary["warnings"] == []
    assert again.summary["split_id"] == original.summary["split_id"]
    assert again.summary["split_source"] == "attention_unet/split.json"


def test_an_unchanged_run_is_skipped_and_force_re_evaluates_with_warnings(setup, tmp_path):
    from btseg.evaluation import evaluate_run

    run_dir = tmp_path / "attention_unet"
    shutil.copytree(setup.models_dir / "attention_unet", run_dir)
    summary_path = run_dir / "evaluation" / "summary.json"
    before = summary_path.stat().st_mtime_ns
    messages: list[str] = []
    path = evaluate_run(run_dir, setup.data_dir, cache_dir=setup.cache_dir, log=messages.append,
                        n_resamples=RESAMPLES)
    assert path == run_dir / "evaluation"
    assert summary_path.stat().st_mtime_ns == before
    assert messages == ["attention_unet: evaluation is up to date (same model and data); "
                        "use --force to redo it"]

    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["split_id"] = "000000000000"  # as if trained on another split
    (run_dir / "config.json").write_text(json.dumps(config))
    evaluate_run(run_dir, setup.data_dir, force=True, cache_dir=setup.cache_dir,
                 log=messages.append, n_resamples=RESAMPLES)
    assert summary_path.stat().st_mtime_ns != before
    again = evaluation.load_segmentation_evaluation(run_dir)
    original = evaluation.load_segmentation_evaluation(setup.models_dir / "attention_unet")
    assert again.summary["at_validation_threshold"] == original.summary["at_validation_threshold"]
    assert any("not the split the model was trained with" in w
               for w in again.summary["warnings"])
    assert any(m.startswith("Warning (attention_unet): the test split") for m in messages)


def test_an_up_to_date_run_is_recognised_without_tensorflow(setup):
    code = (
        "import sys\n"
        "from btseg.evaluation import evaluate_run\n"
        f"evaluate_run({str(setup.models_dir / 'attention_unet')!r}, {str(setup.data_dir)!r}, "
        f"cache_dir={str(setup.cache_dir)!r}, n_resamples={RESAMPLES})\n"
        "print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "attention_unet: evaluation is up to date (same model and data); use --force to redo it",
        "False",
    ]


def test_classifier_predictions_are_the_models_on_the_training_preprocessing(setup):
    import keras

    from btseg.data.images import preprocess

    loaded = evaluation.load_classifier_evaluation(setup.paths["classifier"])
    table = open_dataset(setup.data_dir).table.set_index("image_id")
    model = keras.saving.load_model(setup.models_dir / "classifier" / "model.keras")
    images = np.stack([preprocess(read_image(table.loc[i, "image_path"]).pixels, 64)
                       for i in loaded.predictions["image_id"]])
    expected = model.predict_on_batch(images)
    np.testing.assert_allclose(loaded.probabilities(), expected, atol=1e-6)
    assert loaded.predictions["label"].tolist() == [
        table.loc[i, "label"] for i in loaded.predictions["image_id"]]

    report = metrics.classification_report(loaded.labels(), loaded.probabilities(), CLASS_NAMES)
    summary = loaded.summary
    for key in ("accuracy", "balanced_accuracy", "macro_auc"):
        assert summary[key] == pytest.approx(report[key], abs=1e-12), key
        low, high = summary["ci95"][key]
        assert low <= summary[key] <= high
    assert summary["accuracy"] == pytest.approx(loaded.predictions["correct"].mean())
    assert summary["confusion_matrix"] == report["confusion_matrix"]
    curves = loaded.class_roc_curves()
    for name in ("normal", "benign"):
        is_class = loaded.labels() == CLASS_NAMES.index(name)
        assert curves[name]["auc"] == pytest.approx(
            roc_auc_score(is_class, loaded.probabilities()[:, CLASS_NAMES.index(name)]))
    assert loaded.reliability_curve()["count"].sum() == setup.n_test


def test_evaluate_all_skips_missing_runs_with_the_command_that_trains_them(setup):
    from btseg.evaluation import evaluate_all

    messages: list[str] = []
    paths = evaluate_all(setup.models_dir, setup.data_dir, models=["basic", "attention"],
                         cache_dir=setup.cache_dir, log=messages.append, n_resamples=RESAMPLES)
    assert list(paths) == ["attention_unet"]
    assert messages[0].startswith("Skipping basic_unet:")
    assert f"`btseg train --model basic --data {setup.data_dir}`" in messages[0]
    assert "up to date" in messages[1]


def test_the_report_prints_the_metric_table(setup):
    report = evaluation.format_evaluation_report(setup.paths)
    assert "| Attention U-Net | validation |" in report
    assert f"Classifier on {setup.n_test} test images" in report
    table = evaluation.metric_table(
        {"attention_unet": evaluation.load_segmentation_evaluation(setup.paths["attention_unet"])})
    assert not math.isnan(table.loc[0, "pixel_auc"])
    assert isinstance(table, pd.DataFrame)


def test_a_region_classifier_is_evaluated_on_the_largest_lesion_or_a_sampled_region(
    setup, tmp_path
):
    import keras

    from btseg.data.images import preprocess
    from btseg.data.regions import crop, largest_lesion_box
    from btseg.errors import RunError
    from btseg.evaluation import evaluate_run

    models_dir = tmp_path / "models"
    config = json.loads((setup.models_dir / "classifier" / "config.json").read_text())
    config.update(input_mode="region",
                  region={"source_size": 128, "side_range": [0.05, 0.2], "seed": 0, "margin": 0.15})
    make_classifier_run(models_dir / "classifier", config)
    run = models_dir / "classifier"
    evaluate_run(run, setup.data_dir, cache_dir=setup.cache_dir, log=None, n_resamples=RESAMPLES)
    loaded = evaluation.load_classifier_evaluation(run)
    assert loaded.summary["input_mode"] == "region"
    assert loaded.summary["region"]["source_size"] == 128

    # Scored as served: the crop Classifier.predict makes of the full-resolution image.
    table = open_dataset(setup.data_dir).table.set_index("image_id")
    model = keras.saving.load_model(run / "model.keras")
    tumour = loaded.predictions[loaded.predictions["label"] != "normal"]
    assert len(tumour) > 0
    for _, row in tumour.iterrows():
        entry = table.loc[row["image_id"]]
        pixels = read_image(entry["image_path"]).pixels
        annotation = read_annotation(entry["annotation_path"], image_shape=pixels.shape)
        truth = lesions_mask(annotation.lesions, (annotation.height, annotation.width),
                             target_shape=pixels.shape)
        box = largest_lesion_box(truth)
        region = np.ascontiguousarray(crop(pixels, box))
        expected = model.predict_on_batch(preprocess(region, 64)[None])[0]
        np.testing.assert_allclose([row[f"prob_{name}"] for name in CLASS_NAMES], expected, atol=1e-5)

    del config["region"]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="no valid region settings"):
        evaluate_run(run, setup.data_dir, cache_dir=setup.cache_dir, log=None, force=True,
                     n_resamples=RESAMPLES)


def test_the_classifier_is_calibrated_on_validation_and_served_calibrated(setup):
    from btseg.calibration import apply_temperature
    from btseg.infer import Classifier

    loaded = evaluation.load_classifier_evaluation(setup.paths["classifier"])
    calibration = loaded.calibration
    assert calibration is not None and calibration["temperature"] > 0
    assert calibration["validation_images"] >= 1
    assert calibration["validation_nll_after"] <= calibration["validation_nll_before"] + 1e-9
    scaled = apply_temperature(loaded.probabilities(), calibration["temperature"])
    assert calibration["test_ece_after"] == pytest.approx(
        metrics.expected_calibration_error(loaded.labels(), scaled), abs=1e-12)
    assert loaded.summary["calibration"]["temperature"] == calibration["temperature"]
    classifier = Classifier.from_run(setup.models_dir / "classifier")
    assert classifier.temperature == pytest.approx(calibration["temperature"])
    image = read_image(open_dataset(setup.data_dir).usable["image_path"].iloc[0]).pixels
    raw = classifier.predict(image, calibrated=False)
    served = classifier.predict(image)
    expected = apply_temperature(list(raw.values()), classifier.temperature)
    assert served == pytest.approx(dict(zip(raw, expected, strict=True)))
    assert max(served, key=served.get) == max(raw, key=raw.get)
