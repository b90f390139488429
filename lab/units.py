"""Durations and byte sizes as people write them in scenario files ('40s', '500ms',
'8MiB'), shared by the scenario models and the fault parameters.

Sizes take binary units only: a tmpfs and a page are counted in powers of two, and '8MB'
would leave a reader guessing which one was meant.
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

_UNITS = {"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KiB|MiB|GiB)?\s*")
EXAMPLES = "'8MiB', '512KiB' or a number of bytes"


def parse_size(value: Any) -> int:
    """'8MiB' → 8388608; a bare integer is bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like {EXAMPLES}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE_RE.fullmatch(value)):
        size = int(float(m.group(1)) * _UNITS[m.group(2) or ""])
    else:
        raise ValueError(f"expected a size like {EXAMPLES}, got {value!r}")
    if size < 0:
        raise ValueError(f"expected a non-negative size like {EXAMPLES}, got {value!r}")
    return size


def format_size(size: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return f"{size}B"


ByteSize = Annotated[int, BeforeValidator(parse_size)]

_RATE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|m)\s*")
RATE_EXAMPLES = "'200/s' (arrivals per second) or '600/m' (per minute)"


def parse_rate(value: Any) -> float:
    """'200/s' or '600/m' → arrivals per second. A bare number is refused: a rate without
    its unit leaves a reader guessing per what."""
    if isinstance(value, str) and (m := _RATE_RE.fullmatch(value)):
        per_second = float(m.group(1)) / (60.0 if m.group(2) == "m" else 1.0)
    else:
        raise ValueError(f"expected an arrival rate like {RATE_EXAMPLES}, got {value!r}")
    if not per_second > 0:
        raise ValueError(f"expected an arrival rate above 0, got {value!r}: an open model "
                         "with no arrivals sends nothing")
    return per_second

