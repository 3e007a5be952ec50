"""Cache-build throughput against a naive cv2.imread + cv2.resize loop over the same files.

    python bench/bench_cache.py                 # 200 synthetic images in a temporary folder
    python bench/bench_cache.py --data /path/to/BTXRD --size 256

build_cache does more than the baseline: it validates every file, letterboxes with area
interpolation instead of stretching, rasterises the LabelMe masks and writes the arrays to disk.
Both are timed in the same run with the files already in the page cache, so the ratio compares
decoding work, not disk reads. CPU seconds per image are printed too: on a shared machine they
move less than wall-clock rates.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# Heavy imports live inside the functions: spawned cache workers re-import this script.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def random_jpegs(folder: Path, count: int, seed: int):
    """Fallback dataset: noisy gradient JPEGs of 400-1600 px sides, all labelled normal."""
    import cv2
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for number in range(1, count + 1):
        height, width = (int(side) for side in rng.integers(400, 1601, size=2))
        ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :]
        pixels = np.clip(ramp + rng.normal(0, 20, (height, width)), 0, 255).astype(np.uint8)
        path = folder / "images" / f"IMG{number:06d}.jpeg"
        cv2.imwrite(str(path), pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
        rows.append({"image_id": path.name, "image_path": str(path), "annotation_path": "",
                     "label": "normal", "has_image": True})  # fmt: skip
    return pd.DataFrame(rows)


def synthetic_table(folder: Path, count: int, seed: int):
    try:
        from btseg.data.btxrd import load_table
        from btseg.synthetic import generate
    except ImportError:
        return random_jpegs(folder, count, seed), "random JPEGs (btseg.synthetic unavailable)"
    generate(folder, n=count, seed=seed)
    return load_table(folder), "synthetic BTXRD (btseg.synthetic)"


def naive_loop(paths: list[str], size: int) -> None:
    import cv2

    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        cv2.resize(image, (size, size))


def timed(function, *args, **kwargs):
    """(wall seconds, CPU seconds, result)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function(*args, **kwargs)
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


def main(argv: list[str] | None = None) -> int:
    from btseg.data.cache import build_cache

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="BTXRD-format folder (default: generate one)")
    parser.add_argument("--n", type=int, default=200, help="images to generate without --data")
    parser.add_argument("--size", type=int, default=256, help="cache side in pixels")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="btseg-bench-") as temporary:
        temporary = Path(temporary)
        if args.data is not None:
            from btseg.data.btxrd import load_table

            table, source = load_table(args.data), str(args.data)
        else:
            start = time.perf_counter()
            table, source = synthetic_table(temporary / "data", args.n, args.seed)
            print(f"generated {len(table)} images in {time.perf_counter() - start:.1f}s: {source}")
        paths = table.loc[table["has_image"].astype(bool), "image_path"].tolist()
        megabytes = sum(os.path.getsize(path) for path in paths) / 1e6
        for path in paths:  # both contenders start with the files in the page cache
            Path(path).read_bytes()

        naive = timed(naive_loop, paths, args.size)
        serial = timed(build_cache, table, args.size, cache_dir=temporary / "one", workers=1)
        cold = timed(
            build_cache, table, args.size, cache_dir=temporary / "two", workers=args.workers
        )
        warm = timed(
            build_cache, table, args.size, cache_dir=temporary / "two", workers=args.workers
        )
        cached = cold[2]

    count = len(paths)
    load = os.getloadavg()[0]
    results = {
        "source": source,
        "images": count,
        "megabytes": round(megabytes, 1),
        "size": args.size,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "naive_images_per_s": count / naive[0],
        "build_1_worker_images_per_s": count / serial[0],
        "build_cold_images_per_s": count / cold[0],
        "ratio_cold_to_naive": naive[0] / cold[0],
        "naive_cpu_ms_per_image": 1000 * naive[1] / count,
        "build_cpu_ms_per_image": 1000 * serial[1] / count,
        "build_cold_cpu_ms_per_image": 1000 * cold[1] / count,
        "warm_seconds": warm[0],
        "skipped": len(cached.skipped),
    }
    print(
        f"{count} images ({megabytes:.1f} MB), size {args.size}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} (compare timings within one run only)"
    )
    print(f"{'':36}{'images/s':>10}{'CPU ms/image':>14}")
    print(
        f"{'naive cv2.imread + resize (images)':36}{count / naive[0]:10.1f}{results['naive_cpu_ms_per_image']:14.1f}"
    )
    print(
        f"{'build_cache, 1 worker':36}{count / serial[0]:10.1f}{results['build_cpu_ms_per_image']:14.1f}"
    )
    print(
        f"{f'build_cache, {args.workers} workers, cold':36}{count / cold[0]:10.1f}"
        f"{results['build_cold_cpu_ms_per_image']:14.1f}  (CPU includes starting the workers)"
    )
    print(
        f"ratio build_cache ({args.workers} workers) / naive: {results['ratio_cold_to_naive']:.2f}x"
    )
    print(f"build_cache warm (reuse): {1000 * warm[0]:.1f} ms for {count} images")
    if cached.skipped:
        print(f"skipped {len(cached.skipped)}: {cached.skipped[:3]}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
