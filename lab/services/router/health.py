"""HAProxy-like active health-check state for one backend (pure, unit-tested).

HAProxy semantics, kept identical so the docker backend's HAProxy agrees with this router:

* a check runs every `inter`; it passes on a 2xx or 3xx answer within the check timeout
  (HAProxy `option httpchk`), and fails on anything else, a timeout or a refused connect;
* an UP backend goes DOWN after `fall` consecutive failed checks;
* a DOWN backend comes UP after `rise` consecutive passed checks;
* a check result that does not complete a streak changes nothing (one blip is absorbed).

Backends given at start begin UP (HAProxy's default); backends added at run time begin
DOWN and need `rise` passes first (HAProxy `init-state down`), which is what a rolling
deploy relies on: a new instance receives no traffic before it has proved itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckRule:
    inter_s: float = 0.5
    fall: int = 2
    rise: int = 2

    def __post_init__(self) -> None:
        if self.inter_s <= 0 or self.fall < 1 or self.rise < 1:
            raise ValueError("inter must be > 0, fall and rise >= 1")


@dataclass
class HealthState:
    rule: CheckRule
    up: bool
    streak_ok: int = 0
    streak_fail: int = 0
    checks: int = 0
    failed_checks: int = 0

    def record(self, passed: bool) -> bool:
        """Take one check result; True when it moved the backend UP or DOWN."""
        self.checks += 1
        if passed:
            self.streak_ok += 1
            self.streak_fail = 0
            if not self.up and self.streak_ok >= self.rule.rise:
                self.up = True
                return True
        else:
            self.failed_checks += 1
            self.streak_fail += 1
            self.streak_ok = 0
            if self.up and self.streak_fail >= self.rule.fall:
                self.up = False
                return True
        return False


def check_passed(status: int | None) -> bool:
    """HAProxy httpchk: 2xx and 3xx pass; no answer (None) fails."""
    return status is not None and 200 <= status < 400
