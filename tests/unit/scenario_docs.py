"""Scenario documents written to a file and loaded as a user's would be: one helper for
every unit test that checks what the loader accepts or refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.errors import ScenarioError
from lab.scenario.loader import load_scenario_file
from lab.scenario.models import Scenario


def write(tmp_path: Path, doc: dict[str, Any] | str, name: str = "demo") -> Path:
    """The document as `<name>.yaml` (key order kept, so reported lines match the dict)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def load(tmp_path: Path, doc: dict[str, Any] | str) -> Scenario:
    return load_scenario_file(write(tmp_path, doc))


def problems_of(tmp_path: Path, doc: dict[str, Any] | str) -> list[str]:
    """What the loader refuses in a document it must refuse; the error names the file."""
    path = write(tmp_path, doc)
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(path)
    assert info.value.path == str(path)
    return info.value.problems


def problems_if_any(tmp_path: Path, doc: dict[str, Any] | str) -> list[str]:
    """What the loader refuses, or [] when it accepts the document."""
    try:
        load(tmp_path, doc)
    except ScenarioError as exc:
        return exc.problems
    return []
