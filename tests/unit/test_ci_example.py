"""examples/ci/github-actions.yml is a workflow a team copies: every lab command and
pytest option it runs must be one the lab has, so a rename cannot leave it broken."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from lab.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "ci" / "github-actions.yml"


def runs() -> list[list[str]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    steps = [s for job in doc["jobs"].values() for s in job["steps"]]
    return [shlex.split(s["run"]) for s in steps if "run" in s]


def test_every_lab_command_in_the_workflow_parses() -> None:
    lab = [argv[1:] for argv in runs() if argv[0].endswith(".venv/bin/lab")]
    assert [a[0] for a in lab] == ["check", "report"]
    parser = build_parser()
    for args in lab:
        parser.parse_args(args)  # SystemExit on an unknown command or option


def test_the_pytest_step_uses_the_plugins_own_options(pytestconfig: pytest.Config) -> None:
    [argv] = [a for a in runs() if a[0].endswith(".venv/bin/pytest")]
    options = [a.split("=")[0] for a in argv if a.startswith("--lab")]
    assert options == ["--lab-json"]
    for option in options:
        assert pytestconfig.getoption(option.removeprefix("--").replace("-", "_"),
                                      default="missing") != "missing"
