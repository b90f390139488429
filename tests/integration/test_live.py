"""`lab up` and `lab drill` on the local default, driven as a user and a bot would: the
CLI and the control API against a real stack under real load."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.integration.lab_cli import run_lab
from tests.integration.live_stack import live_stack


def _counts(seconds: list[dict[str, Any]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for s in seconds:
        total.update(s["counts"])
    return total


def _wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := check()):
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:g}s")


def test_lab_up_rehearsal_inject_watch_revert(runs_root: Path) -> None:
    with live_stack(["up", "pool-exhaustion", "--port", "0", "--for", "150s"],
                    runs_root) as live:
        print(f"\nlab up -> ready in {live.ready_s:.1f} s (wall, from the command's start)")
        status = live.get("/api/status")
        assert status["phase"] == "ready" and status["scenario"] == "pool-exhaustion"
        assert status["fault"]["state"] == "none" and status["load"]["rate_per_s"] > 0
        healthy = _wait_for("three closed seconds of traffic",
                            lambda: len(s := live.get("/api/mix?last=3")["seconds"]) >= 3
                            and all(not x.get("open") for x in s[:3]) and s)
        assert _counts(healthy)["500"] == 0 and _counts(healthy)["2xx"] > 0

        injected = run_lab(["inject", "--api", live.api], runs_root, timeout=120)
        assert injected.returncode == 0, injected.stderr
        assert "drop-index injected into the live stack" in injected.stdout
        again, doc = live.post("/api/inject")
        assert again == 409 and "already injected" in doc["error"]

        def incident() -> bool:
            fault = _counts(live.get("/api/mix?last=8")["seconds"])
            waiting = max((i["metrics"].get("checkout_db_pool_waiting", 0)
                           for i in live.get("/api/infra")["instances"]), default=0)
            return fault["500"] >= 20 and waiting > 0
        _wait_for("500s and requests waiting on the pool", incident, timeout=20)
        [sig] = [s for s in live.get("/api/errors")["signatures"]
                 if s["exception"] == "AttributeError"]
        assert sig["count"] >= 20 and len(sig["errorId"]) >= 8

        reverted = run_lab(["revert", "--api", live.api], runs_root, timeout=120)
        assert reverted.returncode == 0, reverted.stderr
        assert "took effect: yes" in reverted.stdout
        assert live.get("/api/evidence")["evidence"]["facts"]["present_after_revert"] is True
        nothing, doc = live.post("/api/revert")
        assert nothing == 409
        time.sleep(8)  # the queue drains, then the closed seconds are healthy again
        recovered = _wait_for("three healthy seconds after the revert", lambda: (
            s := [x for x in live.get("/api/mix?last=3")["seconds"] if not x.get("open")])
            and _counts(s)["500"] == 0 and _counts(s)["2xx"] > 0 and s, timeout=20)
        assert recovered
    assert live.proc.returncode == 130, live.output()  # Ctrl-C, after the teardown
    assert "the stack was torn down" in live.output()
    assert not list(runs_root.glob("live-*.json"))


def _bot(runs_root: Path, out: Path, switches: dict[str, str],
         then_cli: tuple[str, ...] = ()) -> dict[str, Any]:
    """A participant: watch the status mix, diagnose on the first 500s, mitigate, then
    the `lab drill` CLI actions in `then_cli`; end 30 s after it saw the incident.
    Returns the end's answer (the score)."""
    args = ["drill", "--pool", "pool-exhaustion", "--seed", "3", "--inject-between", "6s..6s",
            "--limit", "90s", "--linger", "0", "--port", "0", "--player", "bot",
            "--out", str(out), "--results", ""]
    with live_stack(args, runs_root) as live:
        status = live.get("/api/status")
        assert status["scenario"] is None and status["fault"]["kind"] is None  # hidden
        assert "pool-exhaustion" in status["drill"]["causes"]
        assert live.post("/api/inject")[0] == 403
        assert live.post("/api/drill/diagnose", {"cause": "no-such-thing"})[0] == 400
        assert live.post("/api/drill/mitigate", {"switches": {"DB_POOL_MAXX": "5"}})[0] == 400

        _wait_for("the incident's first 500s", lambda: _counts(
            live.get("/api/mix?last=5")["seconds"])["500"] >= 3, timeout=60)
        seen = time.monotonic()
        code, doc = live.post("/api/drill/diagnose", {"cause": "pool-exhaustion"})
        assert code == 200, doc
        code, doc = live.post("/api/drill/mitigate", {"switches": switches})
        assert code == 200 and doc["restart"]["outcome"] == "completed", doc
        for action in then_cli:
            done = run_lab(["drill", action, "--api", live.api], runs_root, timeout=120)
            assert done.returncode == 0, done.stderr
            if action == "hint":
                assert done.stdout.startswith("hint 1: "), done.stdout
            if action == "rollback":
                assert "rolling restart completed" in done.stdout, done.stdout
                assert "the original configuration" in done.stdout
        time.sleep(max(0.0, seen + 30 - time.monotonic()))
        code, ended = live.post("/api/drill/end")
        assert code == 200 and ended["scenario"] == "pool-exhaustion", ended
        live.proc.wait(60)  # --linger 0: it tears down and exits by itself
    assert live.proc.returncode == 0, live.output()
    [run_dir] = list(out.iterdir())
    record = json.loads((run_dir / "drill.json").read_text())
    assert [a["kind"] for a in record["actions"]] == ["diagnose", "mitigate", *then_cli]
    assert record["injected_at"] is not None and record["seconds"]
    page = (run_dir / "debrief.html").read_text()
    assert "pool-exhaustion" in page and "mitigate" in page
    return ended["score"]


def test_drill_bot_right_switch_beats_wrong_switch(runs_root: Path, tmp_path: Path) -> None:
    right = _bot(runs_root, tmp_path / "right",
                 {"DB_ACQUIRE_TIMEOUT_MS": "250", "DB_STATEMENT_TIMEOUT_MS": "400",
                  "DB_ERRORS_AS_503": "true"})
    # The wrong participant fails fast but as 500s (the timeouts without
    # DB_ERRORS_AS_503: a known DB failure stays a 500), buys a hint and rolls back,
    # through the CLI. Not a pool of 50: its 50 scans at once starve Postgres, so the
    # rollback's new instance could not start (ClientConnectorError) or pass a health
    # check (TimeoutError) within 30 s — 2 of 3 runs on one 2-core machine; the lab says
    # so ("rolling restart failed"), but it is not what this test is about.
    wrong = _bot(runs_root, tmp_path / "wrong",
                 {"DB_ACQUIRE_TIMEOUT_MS": "250", "DB_STATEMENT_TIMEOUT_MS": "400"},
                 then_cli=("hint", "rollback"))
    print(f"\nright switch: {json.dumps(right)}\nwrong switch: {json.dumps(wrong)}")
    assert right["diagnosis"] == wrong["diagnosis"] == "right"
    assert right["bad_500"] < wrong["bad_500"]
    assert right["points"] > wrong["points"]
    assert right["mitigate_s"] is not None and wrong["mitigate_s"] is None
    assert right["hints"] == 0 and wrong["hints"] == 1
