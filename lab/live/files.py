"""Where a live stack (`lab up`, `lab drill`) says it runs: one small JSON file per
process in the runs root, so `lab inject`, `lab revert` and `lab drill ACTION` find its
control API without being told. Removed when the stack stops; a file whose process is
gone is stale and ignored (`lab cleanup` removes it)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.system.processes import is_alive
from lab.system.run_dirs import runs_root


@dataclass(frozen=True)
class LiveFile:
    pid: int
    api: str
    scenario: str | None  # None in a drill: the incident is hidden
    variant: str | None
    backend: str
    drill: bool

    @property
    def path(self) -> Path:
        return live_path(self.pid)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def live_path(pid: int) -> Path:
    return runs_root() / f"live-{pid}.json"


def live_stacks(include_stale: bool = False) -> list[LiveFile]:
    """The live stacks of this machine whose process still runs (or all, for cleanup)."""
    found = []
    for path in sorted(runs_root().glob("live-*.json")):
        try:
            entry = LiveFile(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if include_stale or (entry.pid != os.getpid() and is_alive(entry.pid)):
            found.append(entry)
    return found
