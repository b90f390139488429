"""Reading a service's environment: one parser per kind of value, one error shape.

Every service of the stack (checkout, router, proxy, payment gateway, the bare baseline)
reads its variables through `Switch` (a name, a kind, a default, bounds) or `EnvReader`
(the same parsers, described inline), so a bad value is always one
`STARTUP_FAILURE: <VAR>: expected <what>, got '<value>'` line. The checkout's own table of
switches is `lab.services.checkout.switches`. Standard library only: the scenario loader
reads through this module and must not pull in aiohttp or asyncpg.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})
INT32_MAX = 2**31 - 1

Kind = Literal["integer", "number", "boolean", "choice", "string", "http_url", "postgres_dsn",
               "directory"]


class ConfigError(ValueError):
    """A configuration value the service refuses to start with."""

    def __init__(self, var: str, expected: str, got: str | None) -> None:
        self.var = var
        self.expected = expected
        self.got = got
        super().__init__(f"STARTUP_FAILURE: {var}: {self.detail}")

    @property
    def detail(self) -> str:
        """'expected …, got …': the part the scenario loader shows after the field path."""
        shown = "" if self.got is None else self.got
        suffix = " (unset)" if self.got is None else ""
        return f"expected {self.expected}, got '{shown}'{suffix}"


def raw_value(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value; empty counts as unset so `FOO=` in a compose file means default."""
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced, safe for logs and error lines."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable>"
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    host = netloc[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(frozen=True, slots=True)
class Switch:
    """One variable: how to parse it, its default, its bounds, and a line saying what it is."""

    name: str
    kind: Kind
    default: int | float | bool | str | None
    doc: str = ""
    minimum: float = 0
    maximum: float = INT32_MAX
    choices: tuple[str, ...] = ()
    #: No default: unset is an error.
    required: bool = False
    #: Replaces the kind's own description of what was expected.
    what: str = ""
    #: Why a scenario may not set it (the lab sets it on every instance); None = a switch.
    set_by_lab: str | None = None
    #: Read only by `python -m lab.services.checkout migrate`, not by the service itself.
    migrate_only: bool = False
    #: The attribute of the service's config it fills ("payments.timeout_ms" for a nested
    #: one); empty = not kept (a secret read where it is used, or not the service's).
    field: str = ""
    #: Documentation: what it does, when `doc` is too short to say (the README's line).
    readme: str = ""
    #: Documentation: the default as the README shows it, when the value alone says too
    #: little ("0 (wait forever)").
    shown: str = ""
    #: Documentation: the switch whose README row this one shares (a pool's min and max).
    joins: str = ""

    @property
    def shown_default(self) -> str:
        if self.shown:
            return self.shown
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)

    @property
    def expected(self) -> str:
        if self.what:
            return self.what
        return {
            "integer": f"an integer in {self.minimum:.0f}..{self.maximum:.0f}",
            "number": f"a number in {self.minimum:g}..{self.maximum:g}",
            "boolean": "one of true/false/1/0/yes/no",
            "choice": f"one of {'/'.join(self.choices)}",
            "string": "a string",
            "http_url": "an http:// or https:// URL",
            "postgres_dsn": "a postgresql:// URL",
            "directory": "an existing directory this process can write to",
        }[self.kind]

    def read(self, env: Mapping[str, str], *, on_host: bool = True) -> Any:
        """The value from `env` (the default when unset); raises `ConfigError`.

        `on_host=False` skips what only the machine the service runs on can answer (does
        DATA_DIR exist there?): the scenario loader cannot know which machine that is.
        """
        value = raw_value(env, self.name)
        if value is None:
            if self.required:
                raise ConfigError(self.name, f"{self.expected} (required)", None)
            return self.default
        return self.parse(value, on_host=on_host)

    def parse(self, value: str, *, on_host: bool = True) -> Any:
        fail = ConfigError(self.name, self.expected, value)
        if self.kind == "integer":
            try:
                number = int(value, 10)
            except ValueError:
                raise fail from None
            if not self.minimum <= number <= self.maximum:
                raise fail
            return number
        if self.kind == "number":
            try:
                real = float(value)
            except ValueError:
                raise fail from None
            if math.isnan(real) or not self.minimum <= real <= self.maximum:
                raise fail
            return real
        if self.kind == "boolean":
            if value.lower() in TRUE_WORDS:
                return True
            if value.lower() in FALSE_WORDS:
                return False
            raise fail
        if self.kind == "choice":
            if value.lower() not in self.choices:
                raise fail
            return value.lower()
        if self.kind == "http_url":
            if not value.startswith(("http://", "https://")):
                raise fail
            return value
        if self.kind == "postgres_dsn":
            try:
                parts = urlsplit(value)
                _ = parts.port  # raises ValueError on a non-numeric port
            except ValueError:
                raise ConfigError(self.name, self.expected, redact_dsn(value)) from None
            if parts.scheme not in ("postgres", "postgresql"):
                raise ConfigError(self.name, self.expected, redact_dsn(value))
            return value
        if self.kind == "directory" and on_host and not (
                os.path.isdir(value) and os.access(value, os.W_OK | os.X_OK)):
            raise fail
        return value


class EnvReader:
    """Typed getters over an environment mapping; each raises `ConfigError` naming the key.

    Empty strings count as unset so `FOO=` in a compose file means "use the default".
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str | None:
        return raw_value(self._env, name)

    def switch(self, switch: Switch) -> Any:
        """A variable described by a table's `Switch`, parsed as it says."""
        return switch.read(self._env)

    def string(self, name: str, default: str | None = None, *, what: str = "a string") -> str:
        return str(Switch(name, "string", default, required=default is None, what=what)
                   .read(self._env))

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int = 0,
        maximum: int = INT32_MAX,
    ) -> int:
        return int(Switch(name, "integer", default, minimum=minimum, maximum=maximum,
                          required=default is None).read(self._env))

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        return float(Switch(name, "number", default, minimum=minimum, maximum=maximum)
                     .read(self._env))
