"""Durations as people write them in YAML: '40s', '2m', '500ms' or a bare number of seconds.

Its own module so fault parameter models can use it without importing the scenario
loader (which imports the fault registry).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator


def parse_duration(value: Any) -> float:
    """'40s', '2m', '500ms' or a bare number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '30s', '2m' or '500ms'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m)?\s*", value)
        if not m:
            raise ValueError(f"expected a duration like '30s', '2m' or '500ms', got {value!r}")
        number, unit = float(m.group(1)), m.group(2) or "s"
        seconds = {"ms": number / 1000, "s": number, "m": number * 60}[unit]
    else:
        raise ValueError("expected a duration like '30s', '2m' or '500ms'")
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError("expected a non-negative duration")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
