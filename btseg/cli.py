"""The `btseg` command: a thin layer over the library.

Every subcommand parses arguments, calls one library function and prints its result. Errors that
users can act on (BtsegError) are printed as one message with the fix and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from btseg import config, registry
from btseg.errors import BtsegError, ConfigError

#: `btseg predict` exit status when some files were not predicted (error, skipped, refused).
PREDICT_INCOMPLETE = 3
#: --model / --models choices, from the registry.
MODEL_KEYS = list(registry.MODELS)
SEGMENTER_KEYS = [spec.key for spec in registry.SEGMENTERS]
FIT_GATE_DESCRIPTION = (
    "Describe the training radiographs' appearance and choose the distance above which btseg "
    "predict and the Segment page refuse an image as unlike them (verdict inconclusive); writes "
    "models/input_gate.json. btseg prepare runs it."
)
PREDICT_DESCRIPTION = (
    "Segment and classify X-rays (JPEG, PNG, DICOM; files or folders). Exit status: 0 when every "
    f"file was predicted, {PREDICT_INCOMPLETE} when any file could not be read, was skipped or "
    "was refused by the input gate (summary.csv lists each with the reason), 2 for a usage or "
    "set-up error (no model, bad option)."
)

def _data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="dataset folder (BTXRD layout); default: $BTSEG_DATA_DIR or the synthetic set",
    )


def _data_dir(args: argparse.Namespace) -> Path:
    return args.data if args.data is not None else config.data_dir()


def _print_json(payload: object) -> None:
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def cmd_demo_data(args: argparse.Namespace) -> int:
    from btseg.progress import ProgressPrinter
    from btseg.synthetic import generate

    out = generate(
        args.out,
        n=args.n,
        seed=args.seed,
        progress=ProgressPrinter("Generating images"),
        dicom=args.dicom,
    )
    print(f"Synthetic BTXRD-format dataset with {args.n} images written to {out}")
    if args.dicom:
        print(f"The images also as DICOM (DX, one study per surrogate patient) in {out / 'dicom'}")
    return 0


def _print_summary(args: argparse.Namespace, summary, formatter) -> int:
    """Print a summary as JSON (--json) or as the formatter's text; exit status 0."""
    if args.json:
        _print_json(summary)
    else:
        print(formatter(summary))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from btseg.data.btxrd import open_dataset
    from btseg.stats import dataset_statistics, format_statistics

    return _print_summary(args, dataset_statistics(open_dataset(_data_dir(args))), format_statistics)


def cmd_split(args: argparse.Namespace) -> int:
    from btseg.data.btxrd import open_dataset
    from btseg.data.splits import format_split_summary, split_for, split_summary

    dataset = open_dataset(_data_dir(args))
    split = split_for(dataset.table, cache_dir=config.cache_dir(), seed=args.seed)
    return _print_summary(args, split_summary(split, dataset.table), format_split_summary)


def cmd_fit_gate(args: argparse.Namespace) -> int:
    from btseg.gate import APPEARANCE_FILE, fit_for_dataset

    models = args.models_dir or config.models_dir()
    gate = fit_for_dataset(_data_dir(args), models, cache_dir=config.cache_dir(), seed=args.seed)
    report = gate.report
    print(
        f"Input gate fitted on {report['training_images']} training radiographs: threshold "
        f"{gate.threshold:.2f} ({report['criterion']}); refuses "
        f"{report['validation_refused']:.1%} of {report['validation_images']} validation "
        f"radiographs and {report['non_radiographs_refused']:.0%} of "
        f"{report['non_radiographs']} non-radiographs -> {models / APPEARANCE_FILE}"
    )
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from btseg.data.btxrd import open_dataset
    from btseg.data.cache import build_cache
    from btseg.progress import ProgressPrinter

    dataset = open_dataset(_data_dir(args))
    arrays = build_cache(
        dataset.usable,
        args.size,
        cache_dir=config.cache_dir(),
        workers=args.workers,
        progress=ProgressPrinter("Caching images"),
    )
    print(f"{len(arrays.image_ids)} images cached at {args.size}x{args.size}")
    for image_id, reason in arrays.skipped:
        print(f"  skipped {image_id}: {reason}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from btseg.train import train_all, train_model

    overrides = {
        key: value
        for key, value in {
            "epochs": args.epochs,
            "input_size": args.input_size,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "max_images": args.max_images,
        }.items()
        if value is not None
    }
    classifier_overrides = {
        key: value
        for key, value in {
            "input_mode": args.input_mode,
            "region_source_size": args.region_source_size,
        }.items()
        if value is not None
    }
    data = _data_dir(args)
    models = args.models_dir or config.models_dir()
    if args.model == "all":
        train_all(
            data,
            models,
            profile=args.profile,
            overrides=overrides,
            classifier_overrides=classifier_overrides,
        )
    else:
        if args.model == "classifier":
            overrides.update(classifier_overrides)
        elif classifier_overrides:
            raise ConfigError(
                "--input-mode and --region-source-size are settings of the classifier",
                where="--model",
                fix="use them with --model classifier or --model all",
            )
        run = train_model(args.model, data, models, profile=args.profile, overrides=overrides)
        print(f"Run folder: {run}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from btseg.evaluation import evaluate_all, format_evaluation_report, stage_progress

    models = args.models_dir or config.models_dir()
    paths = evaluate_all(
        models,
        _data_dir(args),
        force=args.force,
        models=args.models or None,
        progress=stage_progress(),
        log=print,
    )
    if not paths:
        print(
            f"No trained model in {models}: run `btseg train --model all` first.", file=sys.stderr
        )
        return 1
    print(format_evaluation_report(paths))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from btseg.predict import run_predict
    from btseg.progress import ProgressPrinter

    summary = run_predict(
        args.paths,
        args.out,
        args.models_dir or config.models_dir(),
        model=args.model,
        threshold=args.threshold,
        batch_size=args.batch_size,
        progress=ProgressPrinter("Predicting"),
        allow_any_modality=args.allow_any_modality,
        report=args.report,
        dicom_seg=args.dicom_seg,
        uncertainty=args.uncertainty,
    )
    for warning in summary.attrs.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    failed = summary[summary["status"] != "ok"]
    predicted = len(summary) - len(failed)
    noun = "file" if len(summary) == 1 else "files"
    if predicted:
        print(
            f"{predicted} of {len(summary)} {noun} predicted; masks, LabelMe JSON and "
            f"summary.csv in {args.out}"
        )
    else:
        print(f"None of the {len(summary)} {noun} could be predicted; summary.csv in {args.out}")
    for row in failed.itertuples():
        print(f"  {row.file} ({row.status}): {row.error}")
    return 0 if failed.empty else PREDICT_INCOMPLETE


def cmd_prepare(args: argparse.Namespace) -> int:
    from btseg.prepare import prepare

    prepare(
        data_dir=args.data,
        models_dir=args.models_dir,
        profile=args.profile,
        train=True if args.train else None,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="btseg",
        description="Bone tumour segmentation and classification on X-rays (BTXRD format).",
    )
    from btseg.train.recipes import PROFILES  # no TensorFlow

    profiles = list(PROFILES)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo-data",
        help="write the synthetic dataset (BTXRD format)",
        description="Write the synthetic dataset: generated radiographs, LabelMe annotations and "
        "dataset.xlsx in the BTXRD layout. Not real patient data.",
    )
    demo.add_argument("--out", type=Path, default=config.default_data_dir())
    demo.add_argument("--n", type=int, default=config.SYNTHETIC_IMAGES, help="number of images")
    demo.add_argument("--seed", type=int, default=config.SYNTHETIC_SEED)
    demo.add_argument(
        "--dicom",
        action="store_true",
        help="also write every image as a DICOM file (Modality DX) in <out>/dicom/",
    )
    demo.set_defaults(handler=cmd_demo_data)

    stats = commands.add_parser("stats", help="dataset statistics and validation problems")
    _data_argument(stats)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=cmd_stats)

    split = commands.add_parser("split", help="surrogate-patient train/val/test split")
    _data_argument(split)
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--json", action="store_true", help="print JSON")
    split.set_defaults(handler=cmd_split)

    fit_gate = commands.add_parser(
        "fit-gate", help="fit the input gate's appearance check on the training radiographs",
        description=FIT_GATE_DESCRIPTION,
    )  # fmt: skip
    _data_argument(fit_gate)
    fit_gate.add_argument("--models-dir", type=Path, default=None)
    fit_gate.add_argument("--seed", type=int, default=0, help="split seed (as in training)")
    fit_gate.set_defaults(handler=cmd_fit_gate)

    cache = commands.add_parser("cache", help="decode and resize every image once")
    _data_argument(cache)
    cache.add_argument("--size", type=int, default=224)
    cache.add_argument("--workers", type=int, default=2)
    cache.set_defaults(handler=cmd_cache)

    train = commands.add_parser("train", help="train models into run folders")
    train.add_argument(
        "--model", choices=[*MODEL_KEYS, "all"], default="all"
    )
    _data_argument(train)
    train.add_argument("--models-dir", type=Path, default=None)
    train.add_argument(
        "--profile",
        choices=profiles,
        default="demo",
        help="demo: patches at 384 px, minutes on a CPU; full: patches at 1024 px (GPU); "
        "study: the paper's recipes on whole 224 px images; tiny: a smoke test",
    )
    train.add_argument("--epochs", type=int)
    train.add_argument("--input-size", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--max-images", type=int)
    train.add_argument(
        "--input-mode",
        choices=["image", "region"],
        help="classifier input: the whole image (full profile) or lesion regions (demo profile)",
    )
    train.add_argument(
        "--region-source-size",
        type=int,
        help="region mode: side of the cached images the regions are cropped from",
    )
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="evaluate trained models on the test split")
    evaluate.add_argument(
        "--models", nargs="+", choices=MODEL_KEYS, default=None
    )
    _data_argument(evaluate)
    evaluate.add_argument("--models-dir", type=Path, default=None)
    evaluate.add_argument("--force", action="store_true", help="evaluate even when up to date")
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser(
        "predict", help="segment and classify images or folders", description=PREDICT_DESCRIPTION
    )
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    predict.add_argument("--out", type=Path, required=True, help="output folder")
    predict.add_argument("--model", choices=SEGMENTER_KEYS, default=SEGMENTER_KEYS[0])
    predict.add_argument("--models-dir", type=Path, default=None)
    predict.add_argument("--threshold", type=float, default=None, help="default: the run's")
    predict.add_argument("--batch-size", type=int, default=8)
    predict.add_argument(
        "--report",
        action="store_true",
        help="also write a self-contained HTML report per image and per study",
    )
    predict.add_argument(
        "--dicom-seg",
        action="store_true",
        help="also write a DICOM Segmentation (SEG) of the mask for each DICOM input",
    )
    predict.add_argument(
        "--uncertainty",
        action="store_true",
        help="also write where the model is unsure: the spread of its mirrored predictions "
        "(<stem>_uncertainty.png; four more model calls per image)",
    )
    predict.add_argument(
        "--allow-any-modality",
        action="store_true",
        help="run the models on DICOM images whose Modality is not a radiograph (CT, MR ...)",
    )
    predict.set_defaults(handler=cmd_predict)

    prepare = commands.add_parser(
        "prepare", help="dataset, demo models and evaluation for the dashboard (make run)"
    )
    _data_argument(prepare)
    prepare.add_argument("--models-dir", type=Path, default=None)
    prepare.add_argument("--profile", choices=profiles, default="demo")
    prepare.add_argument(
        "--train", action="store_true", help="train missing models on real data too"
    )
    prepare.set_defaults(handler=cmd_prepare)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except BtsegError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
