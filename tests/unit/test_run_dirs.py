"""A run's directory goes when the run ends, and so does the runs root if the run made it
and nothing else is in it; a root someone else made, or another run still uses, stays."""

from __future__ import annotations

from pathlib import Path

from lab.system.run_dirs import RunDir


def test_a_run_that_made_the_root_removes_it(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = RunDir.create("cl-a", root)
    assert run.path.is_dir() and run.made_root
    assert (root.stat().st_mode & 0o777) == 0o755
    run.remove()
    assert not root.exists()


def test_a_root_made_by_someone_else_stays(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    run = RunDir.create("cl-a", root)
    assert not run.made_root
    run.remove()
    assert root.is_dir() and list(root.iterdir()) == []


def test_a_root_another_run_still_uses_stays_with_that_run_in_it(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    first = RunDir.create("cl-a", root)
    second = RunDir.create("cl-b", root)
    first.remove()
    assert [p.name for p in root.iterdir()] == ["cl-b"]
    second.remove()
    assert not second.path.exists()


def test_a_root_removed_between_two_runs_is_made_again(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    RunDir.create("cl-a", root).remove()
    again = RunDir.create("cl-b", root)
    assert again.path.is_dir() and again.made_root
    again.remove()
    assert not root.exists()
