"""A request of the user's own made unique before it is sent: the placeholders of a
scenario's `request:` body and headers.

Standard library only: the Locust subprocess imports this module.
"""

from __future__ import annotations

import random
import re
import uuid
from typing import Any


def fill(value: Any, rng: random.Random) -> Any:
    """A request of the user's own, made unique: `{uuid}` in a string becomes a fresh id;
    a string that is `{int:A:B}` a random integer from A to B (in a longer string, its
    digits)."""
    if isinstance(value, str):
        found = _INT_PLACEHOLDER.fullmatch(value)
        if found:
            return rng.randint(int(found[1]), int(found[2]))
        if "{" not in value:
            return value
        value = _INT_PLACEHOLDER.sub(lambda m: str(rng.randint(int(m[1]), int(m[2]))), value)
        return value.replace("{uuid}", uuid.uuid4().hex)
    if isinstance(value, dict):
        return {k: fill(v, rng) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, rng) for v in value]
    return value


_INT_PLACEHOLDER = re.compile(r"\{int:(-?[0-9]+):(-?[0-9]+)\}")
