"""The lab installed as a team installs it: a wheel built from this checkout, in a fresh
virtualenv elsewhere, used from a folder that is not the checkout. Its `lab` finds the
shipped scenarios (a wheel's data files, not the source tree), and runs a team's own
scenario from the team's folder with the router, proxy and load the wheel installed.

The fresh virtualenv borrows the lab's installed dependencies through a .pth file instead
of downloading them again (the checkout's own editable install is not among them: a .pth
path entry does not run the .pth files it holds), so what it tests is the wheel's
contents and the lab's way of finding its files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (REPO / "scenarios").glob("*.yaml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The `bin/` of a fresh virtualenv with the lab's wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    [wheel] = dist.glob("chaoslab-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
         "['purelib'])"], check=True, capture_output=True, text=True).stdout.strip())
    (site / "lab-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    yield venv / "bin"


def lab(bin_dir: Path, *args: str, cwd: Path, runs_root: Path,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root)}
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(bin_dir / "lab"), *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def test_the_wheel_is_the_lab_that_runs(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "python"), "-c", "import lab; print(lab.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed.parent)), where  # not the checkout


def test_the_wheel_finds_the_shipped_scenarios(installed: Path, tmp_path: Path,
                                               runs_root: Path) -> None:
    listed = lab(installed, "list", cwd=tmp_path, runs_root=runs_root)
    assert listed.returncode == 0, listed.stderr
    names = sorted(line.split()[0] for line in listed.stdout.splitlines()
                   if line and not line.startswith(" "))
    assert names == SHIPPED
    checked = lab(installed, "check", cwd=tmp_path, runs_root=runs_root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": ok (") == len(SHIPPED)


def test_the_wheel_runs_your_own_scenario_from_your_folder(installed: Path, tmp_path: Path,
                                                          runs_root: Path) -> None:
    """A team's project: the example service and its scenarios copied out of the checkout,
    run by the installed lab (its router, fault proxy and load from the wheel)."""
    project = tmp_path / "orders"
    shutil.copytree(REPO / "examples" / "orders", project)
    run = lab(installed, "run", "scenarios/dependency-outage.yaml", "--variant", "baseline",
              cwd=project, runs_root=runs_root, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^baseline +PASS ", run.stdout, re.M), run.stdout
