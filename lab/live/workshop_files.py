"""Where `lab inject` / `lab revert` keep their files: one JSON state file and one holder
log per compose project, in the runs root. Its own module so that lab.stack.compose
(which finds the project a state file names) and lab.live.workshop (which writes them) do not
import each other."""

from __future__ import annotations

from pathlib import Path

from lab.system.run_dirs import runs_root


def state_path(project: str) -> Path:
    return runs_root() / f"workshop-{project}.json"


def log_path(project: str) -> Path:
    return runs_root() / f"workshop-{project}.log"


def held_projects() -> list[str]:
    """The projects with a state file (a fault injected, or one whose revert failed)."""
    root = state_path("x").parent
    return sorted(p.name[len("workshop-"):-len(".json")] for p in root.glob("workshop-*.json"))
