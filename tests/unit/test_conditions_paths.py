"""`lab conditions` run from outside the repository: its child `lab run` runs in the
repository, so a relative --out (the default, results/conditions) named one directory to
the child and another to the parent, which then found no results. Every path the child
gets is absolute now. No load: the child is a stand-in that does what `lab run --json`
does with its argv and cwd."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import pytest

from lab.run import conditions as cond
from lab.system.processes import REPO_ROOT


class FakeLabRun:
    """Writes the results where `lab run --json PATH` would, from the cwd it is given:
    but never outside the test's directory (before the fix that was the repository)."""

    seen: ClassVar[list[tuple[list[str], str]]] = []

    def __init__(self, argv: list[str], cwd: Path, inside: Path, **_: Any) -> None:
        self.seen.append((argv, str(cwd)))
        target = Path(os.path.join(cwd, argv[argv.index("--json") + 1]))
        if target.resolve().is_relative_to(inside):
            target.write_text(json.dumps({"variants": [], "skipped": []}))

    def wait(self) -> int:
        return 0

    def send_signal(self, sig: int) -> None:
        pass


def test_a_relative_out_works_from_another_directory(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    FakeLabRun.seen = []
    monkeypatch.setattr(cond.subprocess, "Popen",
                        lambda argv, cwd, **kw: FakeLabRun(argv, cwd, tmp_path, **kw))
    runs = cond.run_conditions(["pool-exhaustion", "mine.yaml"], Path("results/conditions"),
                               0.4, lambda _: None, only=["normal"])
    out = elsewhere / "results" / "conditions"
    assert [r.exit_code for r in runs] == [0]
    assert (out / "normal.json").is_file() and (out / "normal.log").is_file()
    [(argv, cwd)] = FakeLabRun.seen
    assert cwd == str(REPO_ROOT)  # the child runs in the repository...
    assert argv[argv.index("--json") + 1] == str(out / "normal.json")  # ...told absolute paths
    # a scenario named by its file is found from the repository too; a name stays a name
    assert str(elsewhere / "mine.yaml") in argv and "pool-exhaustion" in argv


def test_child_argv_is_absolute_whatever_the_cwd(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    [normal, *_] = cond.conditions()
    argv = cond.child_argv(normal, ["scenarios/x.yml"], Path("out/normal.json"))
    assert argv[argv.index("--json") + 1] == str(tmp_path / "out" / "normal.json")
    assert str(tmp_path / "scenarios" / "x.yml") in argv
