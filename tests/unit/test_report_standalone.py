"""`lab report` renders a results file on a machine without the stack's clients: with
asyncpg, aiohttp, docker and Locust made unimportable, the command still writes the page
(the import contract in pyproject.toml keeps it so; this runs the command itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.test_html_report import RESULTS

BLOCKED = ("asyncpg", "aiohttp", "docker", "locust", "gevent")
RUN_REPORT = f"""
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked for the test: " + name)
        return None
sys.meta_path.insert(0, Blocked())
from lab.cli import main
code = main(["report", sys.argv[1], sys.argv[2]])
print("loaded:", sorted(m for m in {BLOCKED!r} if m in sys.modules))
sys.exit(code)
"""


def test_lab_report_renders_without_asyncpg_aiohttp_docker_or_locust(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(RESULTS))
    done = subprocess.run([sys.executable, "-c", RUN_REPORT, str(results), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout
    assert (tmp_path / "out" / "index.html").stat().st_size > 1000
