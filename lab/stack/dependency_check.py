"""Before the load: does the user's service really call each dependency through the lab's
fault proxy? A service that reads its dependency's address from another variable than
the one declared would bypass the proxy, and every dependency fault would then "pass"
without having reached it. One request of each of the scenario's endpoints goes through
the router; a proxy that saw none of the calls is a mistake named before anything is
judged.
"""

from __future__ import annotations

import random

import aiohttp

from lab.errors import ScenarioError
from lab.load.own_requests import fill
from lab.scenario.models import RequestSpec, Scenario
from lab.stack.base import Stack


async def _requests_seen(http: aiohttp.ClientSession, admin_url: str) -> int:
    async with http.get(f"{admin_url}/stats") as resp:
        doc = await resp.json()
    return int(doc.get("requests", 0))


async def check_dependencies_used(scenario: Scenario, stack: Stack) -> None:
    """Raise ScenarioError (exit 2) for each declared dependency the service did not call
    while answering one request of each endpoint."""
    deps = scenario.stack.dependencies
    if scenario.stack.service is None or not deps:
        return
    proxies = {s.name: s.base_url for s in stack.services if s.service == "proxy"}
    rng = random.Random(f"dependency-check:{scenario.seed}")
    answers = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        before = {d.name: await _requests_seen(http, proxies[f"proxy-{d.name}"]) for d in deps}
        for e in scenario.load.endpoints:
            if not isinstance(e.request, RequestSpec):
                continue
            r = e.request
            body = None if r.json_body is None else fill(r.json_body, rng)
            try:
                async with http.request(r.method, f"{stack.entry_url}{r.path}", json=body,
                                        headers=fill(dict(r.headers), rng)) as resp:
                    await resp.read()
                    answers.append(f"{r.name} {resp.status}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                answers.append(f"{r.name} {type(exc).__name__}")
        after = {d.name: await _requests_seen(http, proxies[f"proxy-{d.name}"]) for d in deps}
    problems = [
        f"stack.dependencies.{d.name}.url_env: your service made no request to {d.name} "
        f"through {d.url_env} (the lab's fault proxy) while it answered one request of each "
        f"endpoint ({', '.join(answers)}); is {d.url_env} the variable it reads {d.name}'s "
        "address from?"
        for d in deps if after[d.name] == before[d.name]]
    if problems:
        raise ScenarioError(scenario.source or scenario.name, problems)
