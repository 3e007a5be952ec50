"""Text progress for long steps: a callable `progress(done, total)` that prints rate and time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_seconds(seconds: float) -> str:
    """12.3 -> '12s', 125 -> '2m05s', 3725 -> '1h02m'."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class ProgressPrinter:
    """Prints `label: done/total (pct) elapsed, ~left` at most every `interval` seconds.

    On a terminal it rewrites one line; elsewhere (logs, CI) it prints a line at each interval.
    """

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 2.0):
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self.start = time.monotonic()
        self.last = -float("inf")
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        finished = total > 0 and done >= total
        if not finished and now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.start
        if total > 0 and done > 0:
            left = elapsed / done * (total - done)
            text = (
                f"{self.label}: {done}/{total} ({100 * done / total:.0f}%) "
                f"{format_seconds(elapsed)} elapsed, ~{format_seconds(left)} left"
            )
        else:
            text = f"{self.label}: {done}/{total}"
        if self.tty:
            self.stream.write("\r" + text.ljust(79) + ("\n" if finished else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
