"""Durations and byte sizes as people write them in scenario files and on the command
line ('40s', '500ms', '4h', '1h30m', '8MiB'), shared by the scenario models, the fault
parameters and the CLI's duration flags.

Sizes take binary units only: a tmpfs and a page are counted in powers of two, and '8MB'
would leave a reader guessing which one was meant.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

DURATION_EXAMPLES = "'30s', '2m' or '4h'"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|h|m|s)")
_DURATION_RE = re.compile(r"\s*(?:[0-9]+(?:\.[0-9]+)?\s*(?:ms|h|m|s)\s*)+")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: Any) -> float:
    """'40s', '2m', '500ms', '4h', '1h30m' or a bare number of seconds → seconds.

    A compound duration names its units from the largest down, each once ('1h30m',
    '2m30s'), so '30s1m' — which a reader would have to add up backwards — is refused."""
    expected = f"expected a duration like {DURATION_EXAMPLES}"
    if isinstance(value, bool):
        raise ValueError(expected)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        if re.fullmatch(r"\s*[0-9]+(?:\.[0-9]+)?\s*", value):
            seconds = float(value)
        elif _DURATION_RE.fullmatch(value):
            parts = _DURATION_PART.findall(value)
            sizes = [_DURATION_UNITS[unit] for _, unit in parts]
            if sizes != sorted(set(sizes), reverse=True):
                raise ValueError(f"{expected}, got {value!r}: name each unit once, the "
                                 "largest first ('1h30m')")
            seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
        else:
            raise ValueError(f"{expected}, got {value!r}")
    else:
        raise ValueError(expected)
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError("expected a non-negative duration")
    return seconds


#: What an editor is told a duration looks like (lab schema): a string of the units
#: above, largest first, or a bare number of seconds.
DURATION_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0},
              {"type": "string", "pattern": rf"^{_DURATION_RE.pattern}$"},
              {"type": "string", "pattern": r"^\s*[0-9]+(?:\.[0-9]+)?\s*$"}],
    "description": f"a duration like {DURATION_EXAMPLES}, or a number of seconds",
}
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_SCHEMA)]

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


SIZE_SCHEMA = {
    "anyOf": [{"type": "integer", "minimum": 0},
              {"type": "string", "pattern": rf"^{_SIZE_RE.pattern}$"}],
    "description": f"a size like {EXAMPLES}",
}
ByteSize = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(SIZE_SCHEMA)]

_RATE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|m)\s*")
RATE_EXAMPLES = "'200/s' (arrivals per second) or '600/m' (per minute)"
RATE_SCHEMA = {"type": "string", "pattern": rf"^{_RATE_RE.pattern}$",
               "description": f"an arrival rate like {RATE_EXAMPLES}"}


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

