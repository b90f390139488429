"""start() returns when the load began, as the generator wrote it: the windows are
measured from its first due arrival, never from the processes' start-up."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from lab.errors import LoadError
from lab.load.request_log import load_began_at, start_path, wait_for_load_start


def test_it_waits_for_the_generator_to_say_when_the_load_began(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    at = time.time() + 0.3  # a master gives its workers a start a little ahead
    threading.Timer(0.2, lambda: start_path(log).write_text(json.dumps({"at": at}))).start()
    stopped: list[bool] = []
    assert wait_for_load_start(log, lambda: None, 5, lambda: stopped.append(True)) == at
    assert time.time() >= at and not stopped


def test_a_generator_that_dies_first_is_stopped_and_reported(tmp_path: Path) -> None:
    def dead() -> None:
        raise LoadError("Locust (locust) exited with code 1 before its load began")
    stopped: list[bool] = []
    with pytest.raises(LoadError, match="before its load began"):
        wait_for_load_start(tmp_path / "requests.jsonl", dead, 5, lambda: stopped.append(True))
    assert stopped == [True]


def test_one_that_never_begins_is_a_load_error_after_its_time(tmp_path: Path) -> None:
    stopped: list[bool] = []
    with pytest.raises(LoadError, match=r"did not begin its load within 0\.2s"):
        wait_for_load_start(tmp_path / "requests.jsonl", lambda: None, 0.2,
                            lambda: stopped.append(True))
    assert stopped == [True]


def test_a_half_written_or_foreign_marker_is_not_a_start(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    for text in ("", "{", '{"at": "soon"}', "[]"):
        start_path(log).write_text(text)
        assert load_began_at(log) is None
