"""Circuit breakers and bulkheads under an outage: a dead source is left alone (a handful of
connection attempts, counted at the proxy), and requests that do not need it keep their
throughput."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.core.settings import Settings
from tests.faults import FaultProxy
from tests.helpers import gql, make_user, token_for

pytestmark = pytest.mark.slow

OUTAGE = 30.0
COOLDOWN = 5.0  # the default
FAILURES = 5
DASHBOARD = "{ dashboard { strategyCounts { total } recentTrades { id } pnl { allTime } } }"
ME = "{ me { id email } }"


@pytest.fixture
async def trades_proxy(settings: Settings) -> AsyncIterator[tuple[FastAPI, FaultProxy]]:
    async with FaultProxy.in_front_of(settings.trades_database_url) as proxy:
        proxied = proxy.url_through(settings.trades_database_url)
        app = create_app(
            settings.model_copy(
                update={
                    "trades_database_url": proxied,
                    "source_breaker_failures": FAILURES,
                    "source_breaker_cooldown_seconds": COOLDOWN,
                }
            )
        )
        async with app.router.lifespan_context(app):
            yield app, proxy


async def _steady(http: httpx.AsyncClient, token: str, seconds: float) -> int:
    """Dashboards at 8/s in the background, `me` as fast as 4 clients go: the `me` count."""
    done = 0
    end = time.monotonic() + seconds

    async def me_client() -> None:
        nonlocal done
        while time.monotonic() < end:
            await gql(http, ME, token=token)
            done += 1

    async def dashboards() -> None:
        sent = []
        while time.monotonic() < end:
            sent.append(asyncio.create_task(gql(http, DASHBOARD, token=token)))
            await asyncio.sleep(1 / 8)
        await asyncio.gather(*sent)

    await asyncio.gather(dashboards(), *(me_client() for _ in range(4)))
    return done


async def test_an_open_breaker_leaves_a_dead_source_alone_and_others_keep_their_pace(
    trades_proxy, sources, settings
) -> None:
    app, proxy = trades_proxy
    user = await make_user(sources)
    token = token_for(settings, user)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        assert "errors" not in await gql(http, DASHBOARD, token=token)
        normal = await _steady(http, token, 4)

        await proxy.set("cut")
        attempts_before = proxy.connections
        during = await _steady(http, token, OUTAGE)
        attempts = proxy.connections - attempts_before
        ready = (await http.get("/readyz")).json()["sources"]["trades"]

        await proxy.set("pass")
        back = time.monotonic()
        recovered = await gql(http, DASHBOARD, token=token)
        while "errors" in recovered and time.monotonic() - back < 3 * COOLDOWN:
            await asyncio.sleep(0.2)
            recovered = await gql(http, DASHBOARD, token=token)

    print(f"{attempts} connection attempts in {OUTAGE:.0f} s")  # noqa: T201 - the note reports it
    # 8 dashboards/s for 30 s, two trades reads each, would be 480+ attempts without it:
    # the breaker lets through the failures that open it and one probe per cooldown (a
    # failed SQL probe may try twice: once more on a fresh connection). Seen: 11.
    assert attempts <= FAILURES + 2 * OUTAGE / COOLDOWN, attempts
    assert ready["ok"] is False
    assert ready["breaker"] in ("open", "half-open")
    assert during >= 0.8 * normal, (during, normal)
    # Whole again once a probe has closed the breaker: within a cooldown or two.
    assert "errors" not in recovered, recovered
