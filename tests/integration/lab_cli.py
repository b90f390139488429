"""Run the lab's CLI as a user would, and read its `--json` results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_lab(
    args: list[str], runs_root: Path, timeout: float = 420
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root)}
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def variants(path: Path) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in json.loads(path.read_text())["variants"]}


def verdict(variant: dict[str, Any], starts: str) -> dict[str, Any]:
    """The one verdict whose text starts with `starts`."""
    [found] = [e for e in variant["expectations"] if e["text"].startswith(starts)]
    return found
