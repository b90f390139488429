"""A drill's actions are recorded as the player it was started with (`lab drill --player
ana`), unless an action names another: `lab drill diagnose …` sent its own default
(`$USER` or "player") with every action, so every action was recorded as "player"."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from lab import cli
from lab.cli import live as cli_live
from lab.live import client as live_client
from lab.live.drill import Drill, DrillPlan
from lab.live.files import LiveFile
from lab.live.session import LiveSession
from lab.scenario.loader import find_scenario, load_scenario_file


def drill(tmp_path: Path, player: str = "ana") -> Drill:
    scenario = load_scenario_file(find_scenario("pool-exhaustion"))
    session = cast(LiveSession, SimpleNamespace(ready_at=None))  # hint/diagnose need no stack
    return Drill(session, DrillPlan(scenario, 30.0), seed=7, player=player,
                 causes=[scenario.drill_cause(), "disk-full"], pool=[scenario.name],
                 limit_s=300, out_dir=tmp_path)


def test_an_action_without_a_player_is_the_drill_s_player(tmp_path: Path) -> None:
    game = drill(tmp_path)
    asyncio.run(game.act("hint", {}))
    asyncio.run(game.act("diagnose", {"cause": "disk-full"}))
    asyncio.run(game.act("hint", {"player": "bo"}))  # a named one is recorded as named
    assert [a["player"] for a in game.actions] == ["ana", "ana", "bo"]
    status = game.status_json()
    assert status["player"] == "ana"
    # whether another hint would be refused, never how many the hidden incident has
    assert status["hints_exhausted"] is False and "hints_left" not in status


class FakeClient:
    def __init__(self, base_url: str) -> None:
        self.posted: list[tuple[str, dict[str, Any]]] = []
        SENT.append(self)

    def get(self, path: str) -> dict[str, Any]:
        return {"ended": False, "hints_exhausted": False, "hints_used": 0,
                "causes": ["pool-exhaustion"]}

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        self.posted.append((path, dict(body or {})))
        return {"cause": (body or {}).get("cause"), "hint": "look", "hints_used": 1}


SENT: list[FakeClient] = []


@pytest.fixture
def fake_drill(monkeypatch: pytest.MonkeyPatch) -> list[FakeClient]:
    SENT.clear()
    live = LiveFile(1, "http://127.0.0.1:1", None, None, "local", True)
    monkeypatch.setattr(live_client, "find_live", lambda api=None, drill=None: live)
    monkeypatch.setattr(live_client, "LiveClient", FakeClient)
    monkeypatch.setenv("USER", "someone-else")
    return SENT


def test_the_cli_sends_no_player_unless_given(fake_drill: list[FakeClient]) -> None:
    assert cli.main(["drill", "diagnose", "pool-exhaustion"]) == 0
    assert cli.main(["drill", "hint", "--player", "bo"]) == 0
    assert [c.posted for c in fake_drill] == [
        [("/api/drill/diagnose", {"cause": "pool-exhaustion"})],
        [("/api/drill/hint", {"player": "bo"})]]


def test_starting_a_drill_defaults_the_player_to_the_login_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "ana")
    assert cli.build_parser().parse_args(["drill"]).player is None
    assert cli_live._player(None) == "ana" and cli_live._player("bo") == "bo"
    monkeypatch.delenv("USER")
    assert cli_live._player(None) == "player"


def test_an_action_on_a_drill_that_ended_or_has_no_hints_left_is_a_state_error(
        fake_drill: list[FakeClient], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(FakeClient, "get", lambda self, path: {
        "ended": False, "hints_exhausted": True, "hints_used": 3})
    assert cli.main(["drill", "hint"]) == 5
    assert "lab: nothing to act on: no hints left (all 3 used)" in capsys.readouterr().err
    monkeypatch.setattr(FakeClient, "get", lambda self, path: {"ended": True})
    assert cli.main(["drill", "mitigate", "DB_POOL_MAX=50"]) == 5
    assert "has ended" in capsys.readouterr().err
    assert all(c.posted == [] for c in fake_drill)


def own_drill(tmp_path: Path) -> Drill:
    scenario = load_scenario_file(Path(__file__).resolve().parents[2] / "examples" / "orders"
                                  / "scenarios" / "index-dropped.yaml")
    session = cast(LiveSession, SimpleNamespace(ready_at=None))
    return Drill(session, DrillPlan(scenario, 30.0), seed=7, player="ana",
                 causes=[scenario.drill_cause()], pool=[scenario.name], limit_s=300,
                 out_dir=tmp_path)


def test_a_drill_on_your_own_service_takes_its_variables_as_switches(tmp_path: Path) -> None:
    """Not the sample checkout's table: the variables the scenario configures the user's
    service by. One of the sample's switches is refused there, with the known ones."""
    from lab.live.api import ApiError

    game = own_drill(tmp_path)
    names = game.status_json()["switches"]
    assert "STATEMENT_TIMEOUT_MS" in names and "DB_ACQUIRE_TIMEOUT_MS" not in names
    assert game._switches({"STATEMENT_TIMEOUT_MS": 250}) == {"STATEMENT_TIMEOUT_MS": "250"}
    with pytest.raises(ApiError) as info:
        game._switches({"DB_ACQUIRE_TIMEOUT_MS": "500"})
    assert "not a variable this scenario configures your service by" in str(info.value)
    assert "STATEMENT_TIMEOUT_MS" in str(info.value)
    sample = drill(tmp_path)
    assert "DB_ACQUIRE_TIMEOUT_MS" in sample.status_json()["switches"]
    with pytest.raises(ApiError, match="STATEMENT_TIMEOUT_MS"):
        sample._switches({"STATEMENT_TIMEOUT_MS": "250"})
