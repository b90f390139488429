"""The regression-suite workflow as a CI pipeline uses it: `pytest scenarios/` with
--junitxml, one test per variant, then the HTML report of the same run, checked in a
real headless Chromium as a person would look at it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import under_ci

REPO = Path(__file__).resolve().parents[2]
DRILL = REPO / "tests" / "fixtures" / "drill.yaml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class DrillRun:
    workdir: Path
    junit: Path
    results: Path
    proc: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def drill_run() -> Iterator[DrillRun]:
    """One real run of the drill scenario through the pytest plugin, as CI would do it."""
    workdir = Path(f"/tmp/chaoslab-drill-{os.getpid()}")
    (workdir / "scenarios").mkdir(parents=True, exist_ok=True)
    shutil.copy(DRILL, workdir / "scenarios" / "drill.yaml")
    runs_root = workdir / "runs"
    runs_root.mkdir()
    os.chmod(workdir, 0o755)
    env = {**os.environ, "CHAOSLAB_RUNS_ROOT": str(runs_root), "PYTHONPATH": str(REPO)}
    junit, results = workdir / "junit.xml", workdir / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios/", f"--junitxml={junit}",
         f"--lab-json={results}", "-p", "no:cacheprovider"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    try:
        yield DrillRun(workdir, junit, results, proc)
    finally:
        leftovers = list(runs_root.iterdir())
        shutil.rmtree(workdir, ignore_errors=True)
        assert leftovers == [], f"runs left behind: {leftovers}"


def test_one_junit_case_per_variant_with_the_right_outcomes(drill_run: DrillRun) -> None:
    assert drill_run.proc.returncode == 1, drill_run.proc.stdout  # one variant fails
    cases = {c.get("name"): c for c in ET.parse(drill_run.junit).getroot().iter("testcase")}
    assert set(cases) == {"baseline", "broken"}
    assert cases["baseline"].find("failure") is None  # the incident reproduces
    failure = cases["broken"].find("failure")
    assert failure is not None
    message = (failure.get("message") or "") + (failure.text or "")
    assert "drill::broken: 1 expectation(s) did not hold" in message
    assert "[fault] 500 count >= 1: measured 0 of" in message
    assert "this claim is false on purpose" in message
    assert "Traceback" not in message
    assert "1 failed, 1 passed" in drill_run.proc.stdout


def test_report_in_a_real_browser(drill_run: DrillRun, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if under_ci():
            pytest.fail("CI must have chromium (.ci/run installs Debian's package)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    report_dir = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "lab", "report", str(drill_run.results),
                           str(report_dir)], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    shots = tmp_path / "shots"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", lambda route: route.abort()
                   if not route.request.url.startswith("file://") else route.continue_())
        page.goto((report_dir / "index.html").as_uri())

        def visible(selector: str) -> None:
            el = page.locator(selector).first
            el.scroll_into_view_if_needed()
            box = el.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 20, selector
            el.screenshot(path=str(shots / f"{selector.strip('#.').split()[0]}.png"))

        for selector in ("#matrix", "#layer-client", "#layer-app", "#layer-infra",
                         "figure.timeline-chart", "table.expectations", "table.alerts"):
            visible(selector)
        assert page.locator("#matrix tbody tr").count() == 2
        assert page.locator("figure.timeline-chart svg").count() == 2
        assert "AttributeError" in page.locator("#layer-app").inner_text()
        baseline = page.locator('article[data-variant="baseline"] table.alerts').inner_text()
        assert "HighErrorRate" in baseline and "FIRED" in baseline
        broken = page.locator('tr[data-variant="broken"]').inner_text()
        assert "FAIL" in broken
        page.screenshot(path=str(shots / "full.png"), full_page=True)
        browser.close()
    assert (shots / "full.png").stat().st_size > 50_000  # a rendered page, not a blank one
