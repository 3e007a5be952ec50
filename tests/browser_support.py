"""Debian's chromium and a `streamlit run` server, for the browser tests
(tests/app/test_browser*.py, test_report.py), prepare's server check (test_prepare.py) and
bench/bench_server.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_SECONDS = 120


def chromium_path() -> str:
    """The chromium executable; skips the test without it, or fails when
    BTSEG_REQUIRE_BROWSER=1 (as .ci/run sets)."""
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("BTSEG_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{message}, and BTSEG_REQUIRE_BROWSER=1 requires the browser tests to run")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def project_env(base: Mapping[str, str] | None = None, **variables: str) -> dict[str, str]:
    """`base` (default: this process's environment) with `variables`, and the project first on
    PYTHONPATH, for a child process that imports btseg."""
    env = {**(os.environ if base is None else base), **variables}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def dashboard_env(
    data_dir: Path, cache_dir: Path, models_dir: Path, **variables: str
) -> dict[str, str]:
    """project_env with BTSEG_DATA_DIR, BTSEG_CACHE_DIR and BTSEG_MODELS_DIR set."""
    return project_env(
        BTSEG_DATA_DIR=str(data_dir),
        BTSEG_CACHE_DIR=str(cache_dir),
        BTSEG_MODELS_DIR=str(models_dir),
        **variables,
    )


class ServerError(RuntimeError):
    """streamlit exited, or did not answer its health check in time."""


class StreamlitServer:
    """`streamlit run <script>` in `cwd` on a free local port, its output written to `log`.

    `started` (time.perf_counter) is taken just before the process starts; after wait_healthy,
    `health` is the body of the health check's answer. Stopped by stop() or at the end of a
    `with` block.
    """

    def __init__(
        self, log: Path, env: Mapping[str, str], script: str = "app.py", cwd: Path = PROJECT_ROOT
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.health: str | None = None
        command = [
            sys.executable, "-m", "streamlit", "run", script,
            "--server.headless", "true",
            "--server.port", str(self.port),
            "--server.address", "127.0.0.1",
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
        ]  # fmt: skip
        with open(log, "w") as stream:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(
                command, cwd=cwd, env=dict(env), stdout=stream, stderr=subprocess.STDOUT
            )

    def __enter__(self) -> StreamlitServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:]

    def wait_healthy(self, timeout: float, poll: float = 0.5) -> float:
        """Seconds from the process start to the first 200 of /_stcore/health (its body is then
        in `health`).

        Raises:
            ServerError: streamlit exited first, or did not answer within `timeout` seconds of
                its start (the message ends with the log's tail).
        """
        while True:
            if self.process.poll() is not None:
                raise ServerError(
                    f"streamlit exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        self.health = response.read().decode()
                        return self.elapsed()
            except OSError:
                pass
            if self.elapsed() > timeout:
                raise ServerError(f"streamlit did not answer in {timeout:g} s:\n{self.log_tail()}")
            time.sleep(poll)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def running_dashboard(
    env: Mapping[str, str], log: Path, poll: float = 0.5
) -> Iterator[StreamlitServer]:
    """`streamlit run app.py` with `env`, once it answers its health check; stopped afterwards.
    Fails the test when it exits first or does not answer in SERVER_START_SECONDS."""
    with StreamlitServer(log, env) as server:
        try:
            server.wait_healthy(SERVER_START_SECONDS, poll)
        except ServerError as error:
            pytest.fail(str(error))
        yield server
