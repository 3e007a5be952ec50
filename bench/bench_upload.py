"""Time from uploaded bytes to overlay for a 3000x2400 JPEG with a warm segmenter.

    python bench/bench_upload.py
    python bench/bench_upload.py --repeats 9 --models /path/to/models

What the Segment page does with an upload: read_image(bytes), segment (preprocess, one model
call, postprocess to 3000x2400, threshold and lesions), then the overlay of the mask and the
lesion boxes on a display copy of the X-ray (btseg.viz). Median of --repeats runs after one warm-up, with each stage's median.
The re-threshold row is what a threshold-slider move costs (no model call).

Model: the attention U-Net run of models/ (BTSEG_MODELS_DIR) when it is complete; otherwise one
of the demo architecture and input size with random weights (the same cost as a trained one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HEIGHT, WIDTH = 3000, 2400


def load_segmenter(models_dir: Path):
    from btseg.infer import Segmenter
    from btseg.runs import Run, is_complete

    run = models_dir / "attention_unet"
    if is_complete(run):
        return Segmenter.from_run(run), f"trained run {run}"
    from btseg.train import build_model, make_config

    config = make_config("attention", "demo")
    run_config = {"run": config.run_name, "task": "segmentation", "input_size": config.input_size}
    segmenter = Segmenter(Run(build_model(config), run_config, 0.5, run))
    return segmenter, (
        f"untrained attention U-Net of the demo architecture ({config.input_size} px, filters "
        f"{config.filters}; random weights, same cost as a trained one): {run} is not complete"
    )


def radiograph_jpeg(seed: int) -> bytes:
    """A synthetic radiograph enlarged to 3000x2400 and encoded as a quality-95 JPEG."""
    import tempfile

    import cv2

    from btseg.synthetic import generate

    with tempfile.TemporaryDirectory(prefix="bench_upload_") as folder:
        data = generate(Path(folder) / "data", n=20, seed=seed)
        pixels = cv2.imread(str(sorted((data / "images").iterdir())[0]), cv2.IMREAD_GRAYSCALE)
    pixels = cv2.resize(pixels, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def overlay_function():
    """(function(pixels, mask, lesions) -> RGB, description) drawing what the Segment page
    draws: btseg.viz.segmentation_overlay on a display copy (viz.downscale) when btseg.viz has
    them, else an inline cv2.addWeighted tint at full resolution."""
    import cv2
    import numpy as np

    from btseg import viz

    if hasattr(viz, "segmentation_overlay") and hasattr(viz, "downscale"):
        side = getattr(viz, "DISPLAY_MAX_SIDE", 1200)

        def page(pixels, mask, lesions):
            display, scale = viz.downscale(pixels, side)
            boxes = [lesion.box for lesion in lesions]
            return viz.segmentation_overlay(display, mask, alpha=0.4, boxes=boxes, box_scale=scale)

        return page, (
            f"btseg.viz.downscale to {side} px + btseg.viz.segmentation_overlay (tint, outline, "
            "numbered boxes), as the Segment page draws it"
        )

    def inline(pixels, mask, lesions):
        rgb = np.repeat(pixels[:, :, None], 3, axis=2)
        coloured = rgb.copy()
        coloured[mask > 0] = (192, 57, 43)
        return cv2.addWeighted(coloured, 0.45, rgb, 0.55, 0.0)

    return inline, "inline cv2.addWeighted at full resolution (btseg.viz has no overlay yet)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", type=Path, default=None, help="default: models/")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    from btseg.config import models_dir
    from btseg.data.images import postprocess, preprocess, read_image
    from btseg.decisions import decide
    from btseg.predict import Predictor

    payload = radiograph_jpeg(args.seed)
    segmenter, description = load_segmenter(args.models or models_dir())
    predictor = Predictor(segmenter, None)
    overlay, overlay_description = overlay_function()
    print(f"Upload: JPEG of {HEIGHT}x{WIDTH} px (height x width), {len(payload) / 1e6:.1f} MB")
    print(f"Model: {description}")
    print(f"Overlay: {overlay_description}")
    print(f"CPU cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} at start")

    stages = ("read_image(bytes)", "preprocess", "preprocess + model call", "postprocess to 3000x2400",
              "threshold + lesions", "overlay")  # fmt: skip
    timings: dict[str, list[float]] = {stage: [] for stage in (*stages, "total", "segment()")}
    rethreshold: list[float] = []
    for repeat in range(args.repeats + 1):  # the first run warms up
        marks = [time.perf_counter()]
        image = read_image(payload)
        marks.append(time.perf_counter())
        preprocess(image.pixels, segmenter.inference_size)  # timed alone; the next call repeats it
        marks.append(time.perf_counter())
        small = segmenter.model_probabilities([image.pixels])[0]
        marks.append(time.perf_counter())
        probability_map = postprocess(small, image.shape)
        marks.append(time.perf_counter())
        mask, lesions = decide(probability_map, segmenter.operating_point)
        marks.append(time.perf_counter())
        overlay(image.pixels, mask, lesions)
        marks.append(time.perf_counter())
        start = time.perf_counter()
        predictor.predict(image)  # the public call that does the middle four stages
        whole = time.perf_counter() - start
        start = time.perf_counter()
        decide(
            probability_map,
            segmenter.operating_point.at_threshold(0.1 + 0.8 * repeat / max(1, args.repeats)),
        )
        slider = time.perf_counter() - start
        if repeat == 0:
            continue
        for stage, begin, end in zip(stages, marks, marks[1:], strict=False):
            timings[stage].append(end - begin)
        timings["total"].append(marks[-1] - marks[0])
        timings["segment()"].append(whole)
        rethreshold.append(slider)

    print()
    print(f"Median of {args.repeats} after 1 warm-up:")
    for stage in stages:
        print(f"  {stage:<26} {1000 * statistics.median(timings[stage]):8.1f} ms")
    print(f"  {'total: bytes -> overlay':<26} {1000 * statistics.median(timings['total']):8.1f} ms")
    print(
        f"  ({'Predictor.predict() alone':<24} {1000 * statistics.median(timings['segment()']):8.1f} ms)"
    )
    print(f"  slider re-threshold         {1000 * statistics.median(rethreshold):8.1f} ms "
          "(btseg.decisions.decide, no model)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
