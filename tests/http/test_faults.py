"""Faults on the wire under load: `gateway serve` (uvicorn, uvloop) behind a TCP proxy that
refuses or black-holes the Mongo server, while dashboards keep arriving.

Before the fix, 30 s of either wedged the Mongo client for good: cancelling PyMongo's
server selection from outside (asyncio.timeout) left its topology lock released
("RuntimeError: Lock is not acquired"), some requests answered INTERNAL or hung, and
after the database came back every request still failed until a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from tests.faults import FaultProxy, Mode
from tests.helpers import every_source_timeout_env, make_user, token_for
from tests.serving import (
    free_port,
    settings_env,
    start_serve,
    stop,
    wait_until_healthy,
)

pytestmark = pytest.mark.slow

DEADLINE = 5.0  # every source deadline of the served gateway
OUTAGE = 30.0
RATE = 8  # dashboards per second
# Seconds the gateway may take to be whole again once the source is back: the breaker's
# cooldown (5 s), after a probe that may itself have failed just before (5 s), and a margin.
RECOVERY = 15.0
DASHBOARD = {
    "query": "{ dashboard { user { id } strategyCounts { total } credentialsConfigured } }"
}


@dataclass
class Load:
    """Dashboards sent at a steady rate, with what each answered and how long it took."""

    http: httpx.AsyncClient
    token: str
    answers: list[tuple[str, float, frozenset[str]]] = field(default_factory=list)

    async def one(self, phase: str) -> None:
        started = time.perf_counter()
        try:
            response = await self.http.post(
                "/graphql", json=DASHBOARD, headers={"Authorization": f"Bearer {self.token}"}
            )
            body = response.json()
            codes = frozenset(e["extensions"]["code"] for e in body.get("errors", []))
        except httpx.TimeoutException:
            codes = frozenset({"NO ANSWER"})
        self.answers.append((phase, time.perf_counter() - started, codes))

    async def run(self, phase: str, seconds: float) -> None:
        sent: list[asyncio.Task[None]] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent.append(asyncio.create_task(self.one(phase)))
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*sent)

    def of(self, phase: str) -> list[tuple[float, frozenset[str]]]:
        return [(took, codes) for name, took, codes in self.answers if name == phase]


async def recovered_within(load: Load, seconds: float) -> float:
    """Seconds until a dashboard and /readyz are whole again; fails after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        await load.one("recovering")
        ready = await load.http.get("/readyz")
        if not load.answers[-1][2] and ready.status_code == 200:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    pytest.fail(f"not recovered {seconds}s after the source came back: {ready.json()}")


@pytest.mark.parametrize("fault", ["refuse", "stall"])
async def test_a_mongo_outage_under_load_never_wedges_the_shared_client(
    settings: Settings, sources, mongo_base_uri: str, tmp_path: Path, fault: Mode
) -> None:
    user = await make_user(sources)
    async with FaultProxy.in_front_of(mongo_base_uri) as proxy:
        # One server, so the three Mongo sources share one client, as in production.
        env = settings_env(settings)
        for name in ("MONGO_USER_URI", "MONGO_STRATEGY_URI", "MONGO_CREDENTIALS_URI"):
            env[name] = proxy.url_through(env[name])
        env.update(every_source_timeout_env(DEADLINE))
        server = start_serve(free_port(), env, tmp_path, log_level="error")
        try:
            await wait_until_healthy(server)
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as http:
                load = Load(http, token_for(settings, user))
                await load.run("before", 3)
                await proxy.set(fault)
                await load.run("outage", OUTAGE)
                await proxy.set("pass")
                took = await recovered_within(load, RECOVERY)
                await load.run("after", 5)
        finally:
            stop(server.process)

    assert all(not codes for _, codes in load.of("before"))
    outage = load.of("outage")
    assert len(outage) >= OUTAGE * RATE * 0.9
    # Every request answered, coded, within the deadline (and a little scheduling).
    assert Counter(code for _, codes in outage for code in codes) == Counter(
        {"SOURCE_UNAVAILABLE": len(outage)}
    )
    assert max(took for took, _ in outage) < DEADLINE + 1.0
    assert took < RECOVERY
    assert all(not codes for _, codes in load.of("after"))
    assert "Lock is not acquired" not in server.stderr()
