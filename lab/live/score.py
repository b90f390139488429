"""A drill's score: what users saw from the injection to the end, and how fast the
participants found and fixed it. Pure: the drill record in, a Score out, so a debrief can
be re-scored and two drills compared.

What is measured (the window is every second that overlaps [injected_at, ended_at)):
- bad answers: every arrival that did not get an honest answer, by lab.scenario.honest's one rule
  (the verdict's): a 500, 502, 504, other 5xx, any 4xx, a lying 200, a timeout, an error,
  a 503 without Retry-After, and an arrival dropped at the load generator's cap (the lab
  never saw its answer, so it cannot be counted good); an honest 503 (with Retry-After)
  is not bad. Reported also as 500s, lying 200s and other bad.
- detect_s: the first action of any kind at or after the injection, minus injected_at.
- diagnose_s / diagnosis: the first diagnose naming the right cause ("right"); else
  "wrong" when there were only wrong ones, "none" when there were none.
- mitigate_s: the end of the earliest completed mitigate (its start plus the restart's
  took_s) after which every second until the end has at most 1 % bad answers — and at
  least one second has answers, so a mitigation the drill ended on proves nothing.
  Rollbacks do not count: they restore the configuration the incident happened with.
Only actions at or after the injection count for these; hints count whenever taken.

Points (integers, deterministic, floored at 0):
  1000
  − bad answers, at most 500
  − 100 per hint
  + 200 for the right diagnosis
  − 100 per wrong diagnosis (guessing through the list costs more than it gains)
  − seconds to mitigate, rounded up, at most 300; 300 when never mitigated
    (0 when the fault was never injected: there was nothing to mitigate).
A right diagnosis with a switch that works ranks above a wrong switch: the wrong switch
keeps the bad answers coming and pays the full 300 for never mitigating.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lab.scenario.honest import BAD_CLASSES

START_POINTS = 1000
BAD_CAP = 500
HINT_COST = 100
RIGHT_DIAGNOSIS = 200
WRONG_DIAGNOSIS_COST = 100
MITIGATE_CAP_S = 300
#: Mitigated = every later second has at most this percentage of bad answers (integer
#: arithmetic: 1 bad in 100 is mitigated, 2 in 100 or 1 in 99 is not).
MITIGATED_BAD_PERCENT = 1


@dataclass(frozen=True)
class Score:
    cause: str
    points: int
    bad: int
    bad_500: int
    bad_lying_200: int
    bad_other: int
    #: Arrivals in the window (dropped ones included): what `bad` is out of.
    answers: int
    detect_s: float | None
    diagnose_s: float | None
    diagnosis: str  # right | wrong | none
    wrong_diagnoses: int
    mitigate_s: float | None
    hints: int
    #: How the points add up: (what, points), in the order of the rule.
    breakdown: tuple[tuple[str, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "cause": self.cause, "points": self.points,
            "bad": self.bad, "bad_500": self.bad_500, "bad_lying_200": self.bad_lying_200,
            "bad_other": self.bad_other, "answers": self.answers,
            "detect_s": self.detect_s, "diagnose_s": self.diagnose_s,
            "diagnosis": self.diagnosis, "wrong_diagnoses": self.wrong_diagnoses,
            "mitigate_s": self.mitigate_s, "hints": self.hints,
            "breakdown": [{"what": what, "points": pts} for what, pts in self.breakdown],
        }

    def lines(self) -> list[str]:
        """The breakdown for a terminal: one line per term, then the times."""
        width = max((len(what) for what, _ in self.breakdown), default=0)
        out = [f"score: {self.points} points"]
        out += [f"  {what:<{width}}  {pts:+6d}" for what, pts in self.breakdown]
        out.append(f"  detected after {_secs(self.detect_s)}, diagnosed after "
                   f"{_secs(self.diagnose_s)}, mitigated after {_secs(self.mitigate_s)}")
        return out


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def score_drill(seconds: Sequence[dict[str, Any]], injected_at: float | None,
                ended_at: float, actions: Sequence[dict[str, Any]], cause: str) -> Score:
    """Score a drill from its per-second series and its actions (see the module doc)."""
    window = [] if injected_at is None else [
        s for s in seconds if s["t"] + 1 > injected_at and s["t"] < ended_at]
    split = {"500": 0, "lying_200": 0, "other": 0}
    for s in window:
        for cls, n in s["counts"].items():
            if cls in BAD_CLASSES:
                split[cls if cls in split else "other"] += n
    bad = sum(split.values())
    answers = sum(_answers(s) for s in window)

    after = [] if injected_at is None else sorted(
        (a for a in actions if a["t"] >= injected_at), key=lambda a: a["t"])
    detect_s = _since(after[0]["t"], injected_at) if after else None
    diagnoses = [a for a in after if a["kind"] == "diagnose"]
    right = next((a for a in diagnoses if a["args"].get("cause") == cause), None)
    wrong = sum(1 for a in diagnoses if a["args"].get("cause") != cause)
    diagnosis = "right" if right else ("wrong" if wrong else "none")
    diagnose_s = _since(right["t"], injected_at) if right else None
    mitigate_s = _mitigated(seconds, after, injected_at, ended_at)
    hints = sum(1 for a in actions if a["kind"] == "hint")

    breakdown: list[tuple[str, int]] = [("start", START_POINTS)]
    breakdown.append((f"bad answers: {bad} (500s {split['500']}, lying 200s "
                      f"{split['lying_200']}, other {split['other']}; cap {BAD_CAP})",
                      -min(bad, BAD_CAP)))
    if hints:
        breakdown.append((f"hints: {hints}", -HINT_COST * hints))
    if right:
        breakdown.append(("right diagnosis", RIGHT_DIAGNOSIS))
    if wrong:
        breakdown.append((f"wrong diagnoses: {wrong}", -WRONG_DIAGNOSIS_COST * wrong))
    if injected_at is not None:
        if mitigate_s is None:
            breakdown.append(("never mitigated", -MITIGATE_CAP_S))
        else:
            cost = min(math.ceil(mitigate_s), MITIGATE_CAP_S)
            breakdown.append((f"seconds to mitigate (cap {MITIGATE_CAP_S})", -cost))
    points = max(0, sum(pts for _, pts in breakdown))
    return Score(cause=cause, points=points, bad=bad, bad_500=split["500"],
                 bad_lying_200=split["lying_200"], bad_other=split["other"],
                 answers=answers, detect_s=detect_s, diagnose_s=diagnose_s,
                 diagnosis=diagnosis, wrong_diagnoses=wrong, mitigate_s=mitigate_s,
                 hints=hints, breakdown=tuple(breakdown))


def _answers(second: dict[str, Any]) -> int:
    return sum(second["counts"].values())


def _bad(second: dict[str, Any]) -> int:
    return sum(n for cls, n in second["counts"].items() if cls in BAD_CLASSES)


def _since(t: float, injected_at: float | None) -> float:
    assert injected_at is not None
    return round(t - injected_at, 3)


def _restart(action: dict[str, Any]) -> dict[str, Any]:
    """The rolling restart's outcome in a mitigate action (the drill nests it under
    "restart"; a bare outcome is read as is)."""
    outcome: dict[str, Any] = action.get("outcome") or {}
    nested = outcome.get("restart")
    return nested if isinstance(nested, dict) else outcome


def _mitigated(seconds: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]],
               injected_at: float | None, ended_at: float) -> float | None:
    ends = sorted(a["t"] + float(_restart(a).get("took_s") or 0.0) for a in after
                  if a["kind"] == "mitigate" and _restart(a).get("outcome") == "completed")
    for end in ends:
        later = [s for s in seconds if end <= s["t"] < ended_at]
        if any(_answers(s) for s in later) and all(
                100 * _bad(s) <= MITIGATED_BAD_PERCENT * _answers(s) for s in later):
            return _since(end, injected_at)
    return None
