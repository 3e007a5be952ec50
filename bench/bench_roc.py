"""Pixel ROC + PR over millions of pixels: btseg.metrics against scikit-learn, same data.

    .venv/bin/python bench/bench_roc.py [--pixels 30000000] [--strict]

Builds float16 probability maps (about 2% tumour pixels, scores correlated with the truth),
saves them once, then runs each method in its own fresh Python process: the process loads
the arrays, and the peak resident memory (VmHWM, reset just before the call) above that
baseline is what the method itself needed. A second call under tracemalloc reports the
peak of the allocations NumPy makes. Time is the wall-clock (and CPU) time of one call;
the target is judged on wall-clock time.

Targets: at least 40x faster and under a quarter of the memory, and the same curves and
areas as scikit-learn on float16 scores. Exit status 1 when the results differ (or, with
--strict, when a target is missed).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np

IMAGE_SIDE = 256
SPEED_TARGET = 40.0
MEMORY_TARGET = 0.25


def make_data(pixels: int, folder: Path, seed: int) -> tuple[int, int]:
    """Write truth.npy (N, 256, 256) bool and scores.npy float16 probabilities to `folder`."""
    rng = np.random.default_rng(seed)
    n_images = max(1, -(-pixels // (IMAGE_SIDE * IMAGE_SIDE)))
    shape = (n_images, IMAGE_SIDE, IMAGE_SIDE)
    truth = np.lib.format.open_memmap(folder / "truth.npy", mode="w+", dtype=np.bool_,
                                      shape=shape)
    scores = np.lib.format.open_memmap(folder / "scores.npy", mode="w+", dtype=np.float16,
                                       shape=shape)
    rows, cols = np.mgrid[:IMAGE_SIDE, :IMAGE_SIDE]
    for index in range(n_images):
        # One elliptical lesion in most images (a share of the area near 2% overall),
        # none in about a third (normal images).
        lesion = np.zeros((IMAGE_SIDE, IMAGE_SIDE), dtype=bool)
        if rng.random() > 0.35:
            centre_row, centre_col = rng.uniform(40, IMAGE_SIDE - 40, size=2)
            radius_row, radius_col = rng.uniform(8, 40, size=2)
            lesion = ((rows - centre_row) / radius_row) ** 2 + (
                (cols - centre_col) / radius_col) ** 2 <= 1
        logits = rng.normal(-6.0, 2.0, size=lesion.shape) + lesion * rng.normal(
            7.0, 2.5, size=lesion.shape)
        truth[index] = lesion
        scores[index] = (1.0 / (1.0 + np.exp(-logits))).astype(np.float16)
    n_positive = int(np.count_nonzero(truth))
    truth.flush()
    scores.flush()
    del truth, scores
    return int(np.prod(shape)), n_positive


# --- worker: one method in a fresh process ------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _peak_rss_above_current(function) -> tuple[float, float, float, object]:
    """Run `function`; return (wall s, CPU s, peak RSS MiB above the RSS before it, result)."""
    gc.collect()
    if _reset_peak():
        before = _status_kib("VmRSS")
        peak_field = "VmHWM"
    else:  # ru_maxrss never decreases: measure from the process's own peak so far
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_field = None
    start, start_cpu = time.perf_counter(), time.process_time()
    result = function()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    if peak_field:
        peak = _status_kib(peak_field)
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return seconds, cpu_seconds, max(peak - before, 0) / 1024, result


def _traced_peak(function) -> float:
    gc.collect()
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def _methods(method: str, truth: np.ndarray, scores: np.ndarray) -> dict:
    if method == "btseg":
        from btseg import metrics

        def roc():
            curve = metrics.pixel_roc(truth, scores)
            return curve.fpr, curve.tpr, curve.thresholds, curve.auc

        def pr():
            curve = metrics.pixel_pr(truth, scores)
            return curve.precision, curve.recall, curve.thresholds, curve.average_precision

        def both():
            roc_curve, pr_curve = metrics.pixel_curves(truth, scores)
            return roc_curve.auc, pr_curve.average_precision

        return {"roc": roc, "pr": pr, "single_pass": both}

    from sklearn import metrics as sklearn_metrics

    flat_truth, flat_scores = truth.reshape(-1), scores.reshape(-1)

    def sklearn_roc():
        fpr, tpr, thresholds = sklearn_metrics.roc_curve(flat_truth, flat_scores)
        return fpr, tpr, thresholds, float(sklearn_metrics.auc(fpr, tpr))

    def sklearn_pr():
        precision, recall, thresholds = sklearn_metrics.precision_recall_curve(
            flat_truth, flat_scores)
        # The step integral average_precision_score computes from the same curve.
        average_precision = float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))
        return precision, recall, thresholds, average_precision

    return {"roc": sklearn_roc, "pr": sklearn_pr}


def worker(method: str, part: str, folder: Path, trace: bool) -> None:
    truth = np.load(folder / "truth.npy")
    scores = np.load(folder / "scores.npy")
    # Imports the library too, so that the baseline taken before the call includes it.
    function = _methods(method, truth, scores)[part]
    seconds, cpu_seconds, peak_mib, result = _peak_rss_above_current(function)
    report: dict = {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mib": peak_mib}
    if part in ("roc", "pr"):
        np.savez(folder / f"{method}_{part}.npz", *result[:3], score=result[3])
        report["score"] = result[3]
    del result
    if trace:
        report["traced_mib"] = _traced_peak(function)
    print(json.dumps(report))


# --- driver ------------------------------------------------------------------------------


def run_worker(method: str, part: str, folder: Path, trace: bool) -> dict:
    """Run one method on one curve in a fresh process, so that its peak memory is its own."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", method,
               "--part", part, "--data", str(folder)]
    if not trace:
        command.append("--no-tracemalloc")
    repository = Path(__file__).resolve().parent.parent
    completed = subprocess.run(command, check=True, capture_output=True, text=True,
                               cwd=repository, env=_environment(repository))
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _environment(repository: Path) -> dict:
    import os

    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(repository), environment.get("PYTHONPATH", "")]))
    return environment


def compare_curves(folder: Path) -> dict:
    """Largest absolute difference between btseg's and scikit-learn's curve arrays."""
    differences = {}
    for part in ("roc", "pr"):
        ours = np.load(folder / f"btseg_{part}.npz")
        theirs = np.load(folder / f"sklearn_{part}.npz")
        worst = 0.0
        for key in ("arr_0", "arr_1", "arr_2"):
            if ours[key].shape != theirs[key].shape:
                worst = float("inf")
                break
            finite = np.isfinite(ours[key]) & np.isfinite(theirs[key])
            if not np.array_equal(finite, np.isfinite(theirs[key])) or not np.array_equal(
                    ours[key][~finite], theirs[key][~finite]):
                worst = float("inf")
                break
            gap = np.abs(ours[key][finite] - theirs[key][finite])
            worst = max(worst, float(gap.max(initial=0.0)))
        differences[part] = {"curve": worst,
                             "score": abs(float(ours["score"]) - float(theirs["score"]))}
    return differences


def exact_scores(folder: Path, n_positive: int, n_negative: int) -> tuple[float, float]:
    """AUC and AP in rational arithmetic from scikit-learn's curve points, rounded once."""
    roc = np.load(folder / "sklearn_roc.npz")
    fps = [round(value * n_negative) for value in roc["arr_0"].tolist()]
    tps = [round(value * n_positive) for value in roc["arr_1"].tolist()]
    twice_area = sum((fps[k] - fps[k - 1]) * (tps[k] + tps[k - 1]) for k in range(1, len(fps)))
    pr = np.load(folder / "sklearn_pr.npz")
    recall = [round(value * n_positive) for value in pr["arr_1"].tolist()][::-1]
    precision = pr["arr_0"].tolist()[::-1]
    average_precision = Fraction(0)
    for k in range(1, len(recall)):
        # tp / (tp + fp) recovered exactly: the predicted count is tp / precision, an integer.
        predicted = round(recall[k] / precision[k])
        average_precision += Fraction(recall[k] - recall[k - 1], n_positive) * Fraction(
            recall[k], predicted)
    return (float(Fraction(twice_area, 2 * n_positive * n_negative)),
            float(average_precision))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=30_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--no-tracemalloc", action="store_true",
                        help="skip the second, traced call of each method")
    parser.add_argument("--worker", choices=("btseg", "sklearn"), help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=("roc", "pr", "single_pass"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.worker:
        worker(arguments.worker, arguments.part, arguments.data, not arguments.no_tracemalloc)
        return 0

    trace = not arguments.no_tracemalloc
    with tempfile.TemporaryDirectory(prefix="btseg-bench-") as folder_name:
        folder = Path(folder_name)
        pixels, n_positive = make_data(arguments.pixels, folder, arguments.seed)
        print(f"{pixels:,} pixels ({pixels // IMAGE_SIDE**2} float16 maps of "
              f"{IMAGE_SIDE}x{IMAGE_SIDE}), {n_positive / pixels:.2%} tumour pixels")
        print("baseline measured in the same run (scikit-learn, each method in its own process)")
        ours = {part: run_worker("btseg", part, folder, trace)
                for part in ("roc", "pr", "single_pass")}
        theirs = {part: run_worker("sklearn", part, folder, trace) for part in ("roc", "pr")}
        differences = compare_curves(folder)
        exact_auc, exact_ap = exact_scores(folder, n_positive, pixels - n_positive)

    def totals(report: dict, field: str) -> float:
        values = [report[part].get(field, float("nan")) for part in ("roc", "pr")]
        return sum(values) if field.endswith("seconds") else max(values)

    header = f"{'':34}{'seconds':>9}{'CPU s':>9}{'peak RSS MB':>13}{'traced MB':>11}"
    print()
    print(header)
    print("-" * len(header))
    rows = [
        ("btseg pixel_roc", ours["roc"]),
        ("btseg pixel_pr", ours["pr"]),
        ("btseg pixel_roc + pixel_pr", None),
        ("btseg pixel_curves (one pass)", ours["single_pass"]),
        ("sklearn roc_curve + auc", theirs["roc"]),
        ("sklearn precision_recall_curve", theirs["pr"]),
        ("sklearn ROC + PR", None),
    ]
    for label, part in rows:
        side = ours if label.startswith("btseg") else theirs
        report = part if part is not None else {
            field: totals(side, field)
            for field in ("seconds", "cpu_seconds", "peak_rss_mib", "traced_mib")
        }
        traced = report.get("traced_mib", float("nan"))
        print(f"{label:34}{report['seconds']:9.3f}{report['cpu_seconds']:9.3f}"
              f"{report['peak_rss_mib']:13.1f}{traced:11.1f}")

    speedups = {part: theirs[part]["seconds"] / ours[part]["seconds"] for part in ("roc", "pr")}
    speedup_total = totals(theirs, "seconds") / totals(ours, "seconds")
    speedup_cpu = totals(theirs, "cpu_seconds") / totals(ours, "cpu_seconds")
    # MiB resolution: a method whose peak is below 1 MiB above the baseline counts as 1 MiB.
    memory_fraction = max(totals(ours, "peak_rss_mib"), 1.0) / totals(theirs, "peak_rss_mib")
    print()
    print(f"speed-up ROC {speedups['roc']:.0f}x, PR {speedups['pr']:.0f}x, "
          f"ROC + PR {speedup_total:.0f}x (target >= {SPEED_TARGET:.0f}x); "
          f"in CPU time ROC + PR {speedup_cpu:.0f}x")
    print(f"memory fraction (peak RSS, ROC + PR) {memory_fraction:.4f} "
          f"(target < {MEMORY_TARGET})")
    if trace:
        traced_fraction = totals(ours, "traced_mib") / totals(theirs, "traced_mib")
        print(f"memory fraction (tracemalloc)        {traced_fraction:.4f}")
    print(f"AUC  btseg {ours['roc']['score']:.17g}  sklearn {theirs['roc']['score']:.17g}  "
          f"|diff| {differences['roc']['score']:.3g}  exact {exact_auc:.17g}")
    print(f"AP   btseg {ours['pr']['score']:.17g}  sklearn {theirs['pr']['score']:.17g}  "
          f"|diff| {differences['pr']['score']:.3g}  exact {exact_ap:.17g}")
    print("(exact: rational arithmetic on the integer counts behind the curves, rounded once)")
    print(f"largest |difference| in the curve arrays: ROC {differences['roc']['curve']:.3g}, "
          f"PR {differences['pr']['curve']:.3g}")

    exact = all(differences[part]["curve"] <= 1e-15 and differences[part]["score"] <= 1e-12
                for part in ("roc", "pr"))
    exact = exact and abs(ours["roc"]["score"] - exact_auc) <= 1e-15
    exact = exact and abs(ours["pr"]["score"] - exact_ap) <= 1e-15
    targets_met = speedup_total >= SPEED_TARGET and memory_fraction < MEMORY_TARGET
    print(f"exact on float16: {'yes' if exact else 'NO'}; targets "
          f"{'met' if targets_met else 'MISSED'}")
    if not exact or (arguments.strict and not targets_met):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
