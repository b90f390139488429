"""What a real success of an endpoint carries: the rule that makes a 2xx a success.

A status line says little on its own: a 2xx whose body is empty, HTML where the endpoint
answers JSON, or JSON without the thing the caller came for (the checkout's order, the
catalog's price list) did not serve the user, however it was produced — a proxy's error
page, a handler that returned early, a body cut before its end. So every endpoint kind has
a contract, and a 2xx that breaks it is not a success (lab.load.classify). The sample
shop's contracts are here; a scenario's own endpoints will carry theirs in the same form.

Standard library only: the Locust subprocess imports this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SuccessContract:
    """A 2xx of this endpoint is a JSON object (`json`) with every member of `requires`
    present and not null; one whose member has a value of `lies_when` (member → values)
    says the operation failed (a lying 200)."""

    json: bool = True
    requires: tuple[str, ...] = field(default=())
    lies_when: tuple[tuple[str, tuple[Any, ...]], ...] = field(default=())

    def lies(self, body: bytes) -> bool:
        """Whether this 2xx body says, by the endpoint's own rule, that it failed."""
        if not self.lies_when:
            return False
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return False
        # Same type too: a rule of `false` is not met by 0, nor `1` by true.
        return isinstance(doc, dict) and any(
            k in doc and any(type(doc[k]) is type(v) and doc[k] == v for v in values)
            for k, values in self.lies_when)

    def violation(self, content_type: str, body: bytes) -> str | None:
        """Why this 2xx body is not a success (an error name for the request log), or None."""
        if not body.strip():
            return "EmptyBody"
        if not self.json:
            return None
        media = content_type.split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return f"NotJson({media or 'no Content-Type'})"
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return "InvalidJson"
        if not isinstance(doc, dict):
            return "NotAJsonObject"
        missing = [k for k in self.requires if doc.get(k) is None]
        return f"Missing({','.join(missing)})" if missing else None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"json": self.json, "requires": list(self.requires)}
        if self.lies_when:
            doc["lies_when"] = {k: list(v) for k, v in self.lies_when}
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SuccessContract:
        return cls(json=bool(doc.get("json", True)),
                   requires=tuple(str(k) for k in doc.get("requires", ())),
                   lies_when=tuple((str(k), tuple(v))
                                   for k, v in (doc.get("lies_when") or {}).items()))


#: The sample shop's endpoints: a checkout's 2xx carries its order (confirmed, or accepted
#: as payment pending), the catalog's its price list, /health its readiness status.
SAMPLE_CONTRACTS: dict[str, SuccessContract] = {
    "checkout": SuccessContract(requires=("order_id", "status")),
    "catalog": SuccessContract(requires=("skus",)),
    "health": SuccessContract(requires=("status",)),
}

#: An endpoint kind nobody declared a contract for: any non-empty body.
ANY_BODY = SuccessContract(json=False)
