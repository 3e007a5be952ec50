"""Training throughput (images/s) of the three models on this machine.

    python bench/bench_train.py [--profile demo] [--input-size N] [--batch-size N] [--steps N]

Builds each model as the profile configures it, compiles it with its loss and optimizer, runs a
few warm-up steps (graph tracing), then times `--steps` training steps on random images. The
classifier is timed in both phases (backbone as in phase 1, and with the last block unfrozen).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _time_steps(model, images, targets, warmup: int, steps: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) per training step after `warmup` steps.

    On a shared machine the wall time depends on the other processes; the CPU time does not.
    """
    for _ in range(warmup):
        model.train_on_batch(images, targets)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.train_on_batch(images, targets)
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", choices=["demo", "full", "tiny"])
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--models", default="basic,attention,classifier")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from btseg.models.classifier import set_backbone_trainable
    from btseg.train import build_model, make_config
    from btseg.train.fit import device, loss_and_metrics

    hardware = device()
    rng = np.random.default_rng(0)
    rows = []
    for name in args.models.split(","):
        overrides = {"input_size": args.input_size, "batch_size": args.batch_size}
        config = make_config(name, args.profile, overrides)
        config = dataclasses.replace(config, weights=None)
        size, batch = config.input_size, config.batch_size
        images = rng.random((batch, size, size, 3), dtype=np.float32)
        if config.is_segmenter:
            targets = (rng.random((batch, size, size, 1)) < 0.05).astype(np.float32)
        else:
            targets = rng.integers(0, 3, size=batch).astype(np.int32)
        phases = ["train"] if config.is_segmenter else [config.phase1_backbone, "last_block"]
        for phase in phases:
            with hardware.strategy.scope():
                model = build_model(config)
                if not config.is_segmenter:
                    set_backbone_trainable(model, phase)
                loss, metrics = loss_and_metrics(config, [1.0, 1.0, 1.0])
                model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss,
                              metrics=metrics)
            seconds, cpu_seconds = _time_steps(model, images, targets, args.warmup, args.steps)
            label = config.run_name if config.is_segmenter else f"classifier ({phase})"
            rows.append((label, size, batch, model.count_params(), seconds, cpu_seconds))
            keras.backend.clear_session()

    print(f"Training throughput on {platform.node()} ({os.cpu_count()} CPUs, "
          f"TensorFlow {tf.__version__}, {hardware.description}"
          f"{', mixed precision' if hardware.mixed_precision else ''}), profile {args.profile}")
    print(f"load average {os.getloadavg()[0]:.1f}: with other processes running, wall times "
          "grow; CPU ms/image do not")
    print(f"{'model':<26} {'size':>5} {'batch':>5} {'params':>10} {'s/step':>8} {'images/s':>9} "
          f"{'CPU ms/image':>13}")
    for label, size, batch, params, seconds, cpu_seconds in rows:
        print(f"{label:<26} {size:>5} {batch:>5} {params:>10,} {seconds:>8.3f} "
              f"{batch / seconds:>9.1f} {1000 * cpu_seconds / batch:>13.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
