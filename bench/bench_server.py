"""Time from a cold server to the first render of the Dataset page, in headless chromium.

    python bench/bench_server.py
    python bench/bench_server.py --data /path/to/BTXRD --repeats 5

Each repeat starts `streamlit run app.py` as a new process (the clock starts there), waits for
/_stcore/health, opens /Dataset in Debian's chromium (driven by Playwright; the browser is
launched before the clock starts) and records when the first Plotly chart is drawn and when the
last one is (the script has finished and the chart count has not changed for --settle seconds).
The baseline is the same measurement for a one-line `st.write("hello")` app, started the same
way in the same browser, so the ratio says what the dashboard adds to Streamlit's own start-up
on this machine. Medians over --repeats, baseline and dashboard alternating; repeat 1 also pays
for the operating system's file cache.

Dataset: --data, else the configured one (BTSEG_DATA_DIR or data/synthetic); when that is the
default and absent, a 600-image synthetic set is generated in a temporary folder. The split is
made before the clock starts, as `make run` has made it by then, in --cache (default: the
configured cache folder, or a temporary one beside a generated dataset).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.append(str(PROJECT_ROOT / "tests"))  # browser_support: the tests' server start

from browser_support import (  # noqa: E402
    CHROMIUM_ARGS,
    ServerError,
    StreamlitServer,
    project_env,
)

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_SECONDS = 300
HELLO_APP = 'import streamlit as st\n\nst.write("hello")\n'

# [charts in the page, charts drawn (an SVG with a size), script running, exceptions shown]
PAGE_STATE = """() => {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const drawn = plots.filter(p => {
    const svg = p.querySelector('.main-svg');
    return svg && svg.getBoundingClientRect().width > 0;
  }).length;
  return [plots.length, drawn,
          !!document.querySelector('[data-testid="stStatusWidget"]'),
          document.querySelectorAll('[data-testid="stException"]').length];
}"""


def wait_healthy(server: StreamlitServer) -> float:
    """Seconds from the process start (the clock's zero, `server.started`) to the first 200 of
    /_stcore/health."""
    try:
        return server.wait_healthy(TIMEOUT_SECONDS, poll=0.02)
    except ServerError as error:
        raise SystemExit(str(error)) from None


def measure_hello(browser, folder: Path, env: dict[str, str]) -> dict[str, float]:
    """Cold start of the one-line app: healthy, and "hello" on screen."""
    server = StreamlitServer(folder / "hello.log", env, script="hello_app.py", cwd=folder)
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        healthy = wait_healthy(server)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_SECONDS * 1000)
        page.goto(server.url)
        page.get_by_text("hello", exact=True).wait_for(state="visible")
        return {"healthy": healthy, "first_render": server.elapsed()}
    finally:
        context.close()
        server.stop()


def measure_dataset(browser, env: dict[str, str], log: Path, settle: float) -> dict[str, float]:
    """Cold start of the dashboard: healthy, first chart drawn and all charts drawn on /Dataset."""
    server = StreamlitServer(log, env)  # app.py in PROJECT_ROOT
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        healthy = wait_healthy(server)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_SECONDS * 1000)
        page.goto(f"{server.url}/Dataset")
        page.wait_for_function(f"() => ({PAGE_STATE})()[1] >= 1", polling=20)
        first_chart = server.elapsed()
        drawn, reached, stable_since = -1, first_chart, time.perf_counter()
        while True:
            total, now_drawn, running, exceptions = page.evaluate(PAGE_STATE)
            if exceptions:
                raise SystemExit(f"the Dataset page shows an exception; see {log}")
            if now_drawn != drawn:
                drawn, reached, stable_since = now_drawn, server.elapsed(), time.perf_counter()
            elif (
                not running and now_drawn == total and time.perf_counter() - stable_since > settle
            ):
                break
            if server.elapsed() > TIMEOUT_SECONDS:
                raise SystemExit(f"the Dataset page did not settle in {TIMEOUT_SECONDS} s")
            time.sleep(0.02)
        started = time.perf_counter()
        page.reload()
        page.wait_for_function(f"() => ({PAGE_STATE})()[1] >= {drawn}", polling=20)
        warm = time.perf_counter() - started
        return {
            "healthy": healthy,
            "first_chart": first_chart,
            "all_charts": reached,
            "charts": drawn,
            "warm_reload": warm,
        }
    finally:
        context.close()
        server.stop()


def dataset_folder(argument: Path | None, scratch: Path) -> tuple[Path, str]:
    from btseg import config

    if argument is not None:
        return argument, "given with --data"
    configured = config.data_dir()
    if configured.exists() or configured.resolve() != config.default_data_dir().resolve():
        return configured, "configured"
    from btseg.progress import ProgressPrinter
    from btseg.synthetic import generate

    print(f"{configured} is absent: generating {config.SYNTHETIC_IMAGES} synthetic images")
    folder = generate(
        scratch / "synthetic",
        n=config.SYNTHETIC_IMAGES,
        seed=config.SYNTHETIC_SEED,
        progress=ProgressPrinter("  images"),
    )
    return folder, "generated in a temporary folder"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="dataset folder")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder for the app")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds without a new chart that mean all charts are drawn")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing (apt-get install chromium); nothing measured")
        return 1
    from playwright.sync_api import sync_playwright

    from btseg import config
    from btseg.data.btxrd import open_dataset
    from btseg.data.splits import split_for

    with tempfile.TemporaryDirectory(prefix="bench_server_") as scratch_name:
        scratch = Path(scratch_name)
        data_dir, origin = dataset_folder(args.data, scratch)
        dataset = open_dataset(data_dir)
        images = len(dataset.usable)
        generated = origin.startswith("generated")
        cache = args.cache or (scratch / "cache" if generated else config.cache_dir())
        # `make run` has made the split by the time the server starts (training needs it).
        split_for(dataset.table, cache_dir=cache, seed=0)
        env = project_env(BTSEG_DATA_DIR=str(data_dir), BTSEG_CACHE_DIR=str(cache))
        hello = scratch / "hello"
        (hello / ".streamlit").mkdir(parents=True)
        (hello / "hello_app.py").write_text(HELLO_APP)
        shutil.copy(PROJECT_ROOT / ".streamlit" / "config.toml", hello / ".streamlit")

        print(f"Dataset: {data_dir} ({images} images, {origin}); cache: {cache}")
        print(f"Browser: {CHROMIUM} (headless, Playwright); {os.cpu_count()} CPU cores; "
              f"load average {os.getloadavg()[0]:.1f}")
        baseline, dashboard = [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for repeat in range(1, args.repeats + 1):
                    baseline.append(measure_hello(browser, hello, env))
                    dashboard.append(
                        measure_dataset(browser, env, scratch / f"app-{repeat}.log", args.settle)
                    )
                    b, d = baseline[-1], dashboard[-1]
                    print(
                        f"  repeat {repeat}: hello {b['first_render']:.2f} s | Dataset healthy "
                        f"{d['healthy']:.2f} s, first chart {d['first_chart']:.2f} s, "
                        f"{d['charts']} charts {d['all_charts']:.2f} s, "
                        f"warm reload {d['warm_reload']:.2f} s"
                    )
            finally:
                browser.close()

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    hello_render = median(baseline, "first_render")
    print(f"\nMedian of {args.repeats} cold starts (seconds from `streamlit run` process start):")
    for label, value in (
        ("baseline (st.write app): server healthy", median(baseline, "healthy")),
        ("baseline (st.write app): first render", hello_render),
    ):
        print(f"  {label:<46}{value:7.2f}")
    rows = [
        ("Dataset page: server healthy", "healthy"),
        ("Dataset page: first chart", "first_chart"),
        (f"Dataset page: all {dashboard[-1]['charts']} charts", "all_charts"),
    ]
    for label, key in rows:
        value = median(dashboard, key)
        print(f"  {label:<46}{value:7.2f}   {value / hello_render:5.1f}x baseline")
    print(f"  {'Dataset page: warm reload, all charts':<46}{median(dashboard, 'warm_reload'):7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
