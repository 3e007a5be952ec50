"""`btseg predict` throughput (images/s) at batch sizes 1, 8 and 32 over the same images.

    python bench/bench_predict.py                     # 64 synthetic radiographs
    python bench/bench_predict.py --images 32 --batch-sizes 1 4 16 --repeats 3
    python bench/bench_predict.py --fallback tiny     # train tiny runs if models/ has none

Models: the attention U-Net and classifier runs of models/ (BTSEG_MODELS_DIR) when both are
complete. Otherwise, by default, models of the demo profile's architecture and input size with
random weights: they cost exactly what trained demo models cost, and need no training. With
--fallback tiny, tiny-profile runs are trained into a temporary folder instead (minutes; 64 px
inputs, so the model's share of the time is far smaller than with real models).

Each batch size runs the whole predict_paths (decode, preprocess, one segmenter and one
classifier call per batch, postprocess, threshold, mask PNG, LabelMe JSON, summary.csv) over
the same files, after a warm-up that traces the models at each batch size; rounds take the
batch sizes in turn and the best of --repeats rounds counts. The model-only rows time the two model calls alone on the decoded images.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_models(models_dir: Path, fallback: str, work: Path, data: Path):
    """(segmenter, classifier, description)."""
    from btseg.infer import Classifier, Segmenter
    from btseg.runs import is_complete

    attention, classifier = models_dir / "attention_unet", models_dir / "classifier"
    if is_complete(attention) and is_complete(classifier):
        return (
            Segmenter.from_run(attention),
            Classifier.from_run(classifier),
            f"trained runs from {models_dir}",
        )
    if fallback == "tiny":
        from btseg.train import train_model

        print(f"{models_dir} has no complete attention_unet + classifier: training tiny runs ...")
        for name in ("attention", "classifier"):
            train_model(name, data, work / "models", profile="tiny", cache_dir=work / "cache",
                        progress=lambda line: None)  # fmt: skip
        return (
            Segmenter.from_run(work / "models" / "attention_unet"),
            Classifier.from_run(work / "models" / "classifier"),
            f"tiny-profile runs trained into {work / 'models'} (64 px inputs)",
        )
    from btseg.runs import Run
    from btseg.train import build_model, make_config

    models = []
    for name, cls in (("attention", Segmenter), ("classifier", Classifier)):
        config = make_config(name, "demo")
        model = build_model(config)
        task = "segmentation" if config.is_segmenter else "classification"
        run_config = {  # as config.json records it: the working size and mirrored TTA too
            "run": config.run_name, "task": task, "input_size": config.input_size,
            "working_size": config.working_size, "inference_window": config.inference_window,
            "tta_mirror": config.tta_mirror, "input_mode": config.input_mode,
        }  # fmt: skip
        threshold = 0.5 if config.is_segmenter else None
        models.append(cls(Run(model, run_config, threshold, work / config.run_name)))
    return (
        models[0],
        models[1],
        "untrained models of the demo architecture (random weights; same cost as trained "
        f"demo models) because {models_dir} has no complete attention_unet + classifier",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", type=Path, default=None, help="default: models/")
    parser.add_argument("--fallback", choices=("untrained", "tiny"), default="untrained")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    import numpy as np

    from btseg.config import models_dir
    from btseg.data.images import read_image
    from btseg.predict import Predictor, predict_paths
    from btseg.synthetic import generate

    with tempfile.TemporaryDirectory(prefix="bench_predict_") as temporary:
        work = Path(temporary)
        start = time.perf_counter()
        data = generate(work / "data", n=args.images, seed=args.seed)
        paths = sorted((data / "images").iterdir())
        sides = np.array([read_image(path).shape for path in paths])
        print(f"{len(paths)} synthetic radiographs (btseg.synthetic) of "
              f"{sides.min()}-{sides.max()} px a side, made in "
              f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        segmenter, classifier, description = load_models(
            args.models or models_dir(), args.fallback, work, data
        )
        predictor = Predictor(segmenter, classifier)
        print(f"Models: {description}")
        print(f"  segmenter {segmenter.name} at {segmenter.inference_size} px, "
              f"classifier at {classifier.input_size} px")  # fmt: skip
        print(f"CPU cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} at start")

        images = [read_image(path).pixels for path in paths]
        for batch_size in args.batch_sizes:  # trace the models at each batch shape
            warm = paths[: min(len(paths), batch_size)]
            predict_paths(warm, work / "warm", predictor, batch_size=batch_size)
        # Rounds go through every batch size in turn, so that a load spike on the shared
        # machine hits them alike; the best round of each counts.
        best = {size: [float("inf")] * 3 for size in args.batch_sizes}
        for repeat in range(args.repeats):
            for batch_size in args.batch_sizes:
                out = work / f"out-{batch_size}-{repeat}"
                wall, cpu = time.perf_counter(), cpu_seconds()
                summary = predict_paths([data / "images"], out, predictor, batch_size=batch_size)
                wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
                if not (summary["status"] == "ok").all():
                    raise SystemExit(f"images failed: {summary[summary['status'] != 'ok']}")
                model_wall = time.perf_counter()
                segmenter.model_probabilities(images)  # one image per call at any batch size
                classifier.predict_batch(images, batch_size)
                model_wall = time.perf_counter() - model_wall
                best[batch_size] = [
                    min(old, new)
                    for old, new in zip(best[batch_size], (wall, cpu, model_wall), strict=True)
                ]
        results = {size: tuple(values) for size, values in best.items()}

        count = len(paths)
        base = results[args.batch_sizes[0]]
        print()
        print(f"predict_paths over {count} images, best of {args.repeats}:")
        print(f"{'batch':>6} {'images/s':>9} {'vs ' + str(args.batch_sizes[0]):>7} "
              f"{'CPU s/img':>10} {'models only img/s':>18} {'vs ' + str(args.batch_sizes[0]):>7}")  # fmt: skip
        for batch_size, (wall, cpu, model_wall) in results.items():
            print(f"{batch_size:>6} {count / wall:>9.1f} {base[0] / wall:>6.2f}x "
                  f"{cpu / count:>10.3f} {count / model_wall:>18.1f} "
                  f"{base[2] / model_wall:>6.2f}x")  # fmt: skip
        print(f"load average {os.getloadavg()[0]:.1f} at the end (2 cores shared: compare ratios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
