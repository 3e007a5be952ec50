"""Numbers as the reports and the dashboard show them: three decimals, a dash when undefined.

    format_number(0.71234)      # '0.712'
    format_number(math.nan)     # '–'
    format_threshold(0.001)     # '0.001'
    format_interval((0.4, 0.7)) # '0.400–0.700'
"""

from __future__ import annotations

import math
from typing import Any

#: What an undefined number (None, NaN, infinite) is shown as.
MISSING = "–"


def format_number(value: Any, digits: int = 3, missing: str = MISSING) -> str:
    """`value` with `digits` decimals; `missing` for None, NaN or an infinite value."""
    if value is None:
        return missing
    number = float(value)
    return f"{number:.{digits}f}" if math.isfinite(number) else missing


def format_threshold(value: Any, missing: str = MISSING) -> str:
    """A probability threshold in 4 significant digits ('0.5', '0.0001', '0.3162');
    `missing` for None or NaN."""
    if value is None:
        return missing
    number = float(value)
    return missing if math.isnan(number) else f"{number:.4g}"


def format_interval(interval: Any, missing: str = MISSING) -> str:
    """A (low, high) interval as 'low–high' in three decimals; `missing` for None."""
    if not interval:
        return missing
    return f"{format_number(interval[0])}–{format_number(interval[1])}"


def interval_note(interval: Any) -> str:
    """'; 95% interval low–high' to end a sentence with, or '' when there is no interval."""
    return f"; 95% interval {format_interval(interval)}" if interval else ""
