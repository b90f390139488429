"""What the CLI does with what a user types: every duration default parses (so `lab up
pool-exhaustion`, as the README writes it, gets past its flags), and each kind of wrong
input has its own message and exit code (issue 19)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import cli
from lab.cli import live as cli_live
from lab.cli import run as cli_run
from lab.scenario.units import parse_duration

#: The metavars that mark a duration flag, and the function its command parses it with.
DURATION_METAVARS = {"DURATION": lambda flag, text: cli_live.duration_arg(flag, text),
                     "MIN..MAX": lambda flag, text: cli_live.between_arg(text)}
LOOKS_LIKE_A_DURATION = re.compile(r"[0-9.]+\s*(ms|s|m|h)\b")
REPO = Path(__file__).resolve().parents[2]


def options(parser: argparse.ArgumentParser,
            path: str = "lab") -> Iterator[tuple[str, argparse.Action]]:
    """Every option of every (sub)command, with the command line that reaches it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from options(sub, f"{path} {name}")
        else:
            yield path, action


@pytest.mark.parametrize("text,seconds", [
    ("4h", 14400.0), ("1h30m", 5400.0), ("2m30s", 150.0), ("1.5h", 5400.0),
    ("500ms", 0.5), ("40s", 40.0), ("2m", 120.0), ("90", 90.0), (" 5 m ", 300.0),
])
def test_durations_take_hours_and_compounds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "30s1m", "1h1h", "", "h", "-1s", "1m 30"])
def test_a_duration_that_means_nothing_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration like '30s', '2m' or '4h'"):
        parse_duration(text)


def test_every_duration_default_of_every_command_parses() -> None:
    """The walk finds every option whose default reads like a duration; each must be
    marked as one (its metavar), and its default must parse the way its command parses
    it. `lab up`'s `--for 4h` failed this before hours were a unit."""
    checked = []
    for command, action in options(cli.build_parser()):
        flag = action.option_strings[0] if action.option_strings else action.dest
        default = action.default
        if isinstance(default, str) and LOOKS_LIKE_A_DURATION.match(default):
            assert action.metavar in DURATION_METAVARS, (
                f"{command} {flag} (default {default!r}) reads like a duration: give it "
                f"metavar DURATION so this test parses it")
        if action.metavar in DURATION_METAVARS and default is not None:
            DURATION_METAVARS[str(action.metavar)](flag, default)
            checked.append(f"{command} {flag}")
    assert {"lab up --for", "lab drill --limit", "lab drill --linger",
            "lab drill --inject-between"} <= set(checked)


def test_lab_up_as_the_readme_writes_it_parses_its_default() -> None:
    args = cli.build_parser().parse_args(["up", "pool-exhaustion"])
    assert cli_live.duration_arg("--for", args.hold_for) == 4 * 3600


def test_a_bad_duration_names_the_flag_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["up", "pool-exhaustion", "--for", "soon"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("lab: --for: expected a duration like '30s', '2m' or '4h', "
                           "got 'soon'")
    assert cli.main(["drill", "--inject-between", "60s..20s"]) == 2
    assert "lab: --inject-between: expected MIN..MAX with MIN <= MAX" in capsys.readouterr().err


def test_an_unknown_variant_is_a_flag_error_not_an_invalid_scenario(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["up", "pool-exhaustion", "--variant", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lab: --variant: no variant named 'nope'") and "invalid" not in err


@pytest.mark.parametrize("argv", [
    ["run", "pool-exhaustion", "--variant", "baseline", "--variant", "nope"],
    ["up", "pool-exhaustion", "--variant", "nope"],
    ["inject", "pool-exhaustion", "--variant", "nope"],
])
def test_every_command_refuses_an_unknown_variant_the_same_way_before_starting_anything(
        argv: list[str], empty_runs_root: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """One check (Scenario.require_variants), one message, exit 2, and no stack, load or
    fault holder started: the file, the name asked for and the names it has."""
    from lab.live import workshop
    from lab.scenario.loader import find_scenario, load_scenario_file

    def must_not_start(*_: object, **__: object) -> None:
        raise AssertionError("nothing may start for an unknown variant")

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(cli_run, "backend_named", must_not_start)
    monkeypatch.setattr(cli_live, "backend_named", must_not_start)
    monkeypatch.setattr(workshop, "start", must_not_start)
    known = ", ".join(load_scenario_file(find_scenario("pool-exhaustion")).variants)
    assert cli.main(argv) == cli.EXIT_BAD_INPUT == 2
    assert capsys.readouterr().err.strip() == (
        "lab: --variant: no variant named 'nope' in scenarios/pool-exhaustion.yaml "
        f"(known: {known})")


def test_the_check_names_every_unknown_variant_and_a_live_session_makes_it_too() -> None:
    from lab.errors import UnknownVariant
    from lab.live.session import LiveSession
    from lab.scenario.loader import find_scenario, load_scenario_file

    scenario = load_scenario_file(find_scenario("pool-exhaustion"))
    scenario.require_variants("baseline", *scenario.variants)  # all there: nothing raised
    with pytest.raises(UnknownVariant) as info:
        scenario.require_variants("nope", "baseline", "other")
    assert info.value.asked == ["nope", "other"]
    assert info.value.known == list(scenario.variants)
    assert isinstance(info.value, cli.UsageError)  # so the CLI exits 2, not 3
    with pytest.raises(UnknownVariant, match=r"no variant named 'nope' in "):
        LiveSession(scenario, "nope", backend=None)  # type: ignore[arg-type]


def test_report_of_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report", "missing.json", "out/"]) == 2
    assert capsys.readouterr().err.strip() == "lab: missing.json: no such results file"
    Path("notes.json").write_text('{"hello": 1}')
    assert cli.main(["report", "notes.json", "out/"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lab: notes.json: expected a results file of `lab run --json`")
    assert not Path("out").exists()


@pytest.fixture
def empty_runs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAOSLAB_RUNS_ROOT", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_nothing_to_act_on_exits_5(empty_runs_root: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["drill", "status"]) == cli.EXIT_NOTHING_TO_ACT_ON == 5
    assert capsys.readouterr().err.strip() == (
        "lab: nothing to act on: no drill runs here: start one with `lab drill` "
        "(or pass --api URL)")
    assert cli.main(["revert"]) == 5
    err = capsys.readouterr().err
    assert err.startswith("lab: nothing to act on: nothing is injected") and "stack could" \
        not in err
    # nothing listens on the discard port: no live stack at --api
    assert cli.main(["revert", "--api", "http://127.0.0.1:9"]) == 5
    assert "no live stack answers at http://127.0.0.1:9" in capsys.readouterr().err
    assert cli.main(["drill", "hint", "--api", "http://127.0.0.1:9"]) == 5


def test_drill_results_given_but_missing_is_refused_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)

    def no_backend(name: str) -> None:
        raise AssertionError("the stack must not start")

    monkeypatch.setattr(cli_live, "backend_named", no_backend)
    args = cli.build_parser().parse_args(["drill", "--results", "gone.json"])
    with pytest.raises(cli.UsageError, match=r"gone\.json: no such results file"):
        cli_live.cmd_drill(args)
    assert cli.main(["drill", "--results", "gone.json"]) == 2
    assert capsys.readouterr().err.strip() == "lab: gone.json: no such results file"


def test_drill_default_results_missing_is_said_at_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_live.results_arg(None) == Path("results/latest.json")
    err = capsys.readouterr().err
    assert "no results file at results/latest.json" in err
    assert "not measured" in err and "lab run --json results/latest.json" in err
    Path("results").mkdir()
    Path("results/latest.json").write_text("{}")
    assert cli_live.results_arg(None) == Path("results/latest.json")
    assert capsys.readouterr().err == ""
    assert cli_live.results_arg("") is None  # --results '': none, on purpose
    assert capsys.readouterr().err == ""


def test_help_lists_every_exit_code_and_version_is_the_package_s(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for code, what in [("0", "every expectation held"), ("1", "an expectation failed"),
                       ("2", "bad input"), ("3", "could not run"), ("4", "INCONCLUSIVE"),
                       ("5", "nothing to act on"), ("130/143", "interrupted")]:
        assert re.search(rf"^  {re.escape(code)}\s+.*{what}", out, re.M), (code, out)
    assert cli.EXIT_INCONCLUSIVE == 4
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lab {cli.version()}"
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+.*", cli.version())


def test_the_docs_exit_codes_are_the_cli_s() -> None:
    """docs/ci.md's "Exit codes" paragraph (the README's contents link to it)."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "ci.md").read_text()
    [paragraph] = [p for p in docs.split("\n\n") if p.startswith("Exit codes")]
    for code in ("`0`", "`1`", "`2`", "`3`", "`4`", "`5`", "`130`", "`143`"):
        assert code in paragraph, code
    assert "INCONCLUSIVE" in paragraph and "nothing to act on" in paragraph
