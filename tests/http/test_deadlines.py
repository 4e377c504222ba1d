"""Deadlines that hold: whatever one source does (stall, cut, refuse), every request of a
burst answers within its deadline plus 100 ms, and /readyz within its own, reporting the
source down.

Each of the five sources sits behind its own TCP fault proxy (tests/faults.py), against
the real servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.core.auth import hash_password
from gateway.core.settings import Settings
from tests.faults import Mode
from tests.helpers import every_source_timeout, gql, make_user, token_for
from tests.http.proxied import URL_SETTINGS, Proxied, client_of, proxied_app

SOURCE_TIMEOUT = 3.0
REQUEST_TIMEOUT = 1.5
READY_TIMEOUT = 0.5
# How far past its deadline an answer may come: scheduling, not waiting on a source.
MARGIN = 0.1
# Dashboards sent at once per case.
LOAD = 8
DASHBOARD = """{ dashboard { strategyCounts { total } recentTrades { id } pnl { allTime }
  credentialsConfigured recentActivity { kind } } }"""


@pytest.fixture(scope="module")
async def proxied(settings: Settings) -> AsyncIterator[Proxied]:
    """The app with every source behind a proxy of its own."""
    update = {
        **every_source_timeout(SOURCE_TIMEOUT),
        "request_timeout_seconds": REQUEST_TIMEOUT,
        "ready_timeout_seconds": READY_TIMEOUT,
        # Deadlines alone: breakers (tests/http/test_breakers.py) would fail calls at once.
        "source_breaker_failures": 10_000,
    }
    async with proxied_app(settings, update) as app:
        yield app


@pytest.fixture
async def http(proxied: Proxied) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(proxied) as client:
        yield client


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["stall", "cut", "refuse"])
@pytest.mark.parametrize("source", list(URL_SETTINGS))
async def test_a_request_answers_within_its_deadline_whatever_one_source_does(
    http, proxied, sources, settings, source: str, fault: Mode
) -> None:
    user = await make_user(sources)
    token = token_for(settings, user)
    assert "errors" not in await gql(http, DASHBOARD, token=token)  # warm: pools are open

    await proxied.proxies[source].set(fault)

    async def timed() -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        body = await gql(http, DASHBOARD, token=token)
        return time.perf_counter() - started, body

    # Under load: a burst of dashboards at once, every one bounded alike.
    answers = await asyncio.gather(*(timed() for _ in range(LOAD)))

    assert max(took for took, _ in answers) < REQUEST_TIMEOUT + MARGIN, answers
    for _, body in answers:
        codes = {error["extensions"]["code"] for error in body.get("errors", [])}
        assert codes <= {"SOURCE_UNAVAILABLE", "UNAUTHENTICATED"}, body
        if source != "users":  # the viewer's own source failing fails the viewer check
            assert body["data"]["dashboard"] is not None


@pytest.mark.slow
@pytest.mark.parametrize("source", list(URL_SETTINGS))
async def test_readiness_answers_within_its_own_deadline_and_names_a_stalled_source(
    http, proxied, source: str
) -> None:
    await proxied.proxies[source].set("stall")
    started = time.perf_counter()
    response = await http.get("/readyz")
    took = time.perf_counter() - started

    assert took < READY_TIMEOUT + MARGIN, took
    assert response.status_code == 503
    statuses = response.json()["sources"]
    assert [name for name, status in statuses.items() if not status["ok"]] == [source]


async def test_work_past_the_request_deadline_is_stopped_answered_504_and_changes_nothing(
    settings: Settings, sources
) -> None:
    # Password hashing (~0.3 s of Argon2id in a thread) is no source call: only the
    # request's own deadline can stop it.
    app = create_app(settings.model_copy(update={"request_timeout_seconds": 0.05}))
    register = """mutation { register(email: "late@example.com", password: "a long enough password",
      firstName: "Ada", lastName: "Lovelace") { accessToken } }"""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            started = time.perf_counter()
            response = await http.post(
                "/graphql",
                json={"query": register},
                headers={"Accept": "application/graphql-response+json"},
            )
            took = time.perf_counter() - started
        await asyncio.sleep(0.5)  # the hashing thread ends meanwhile; nothing follows it
    started = time.perf_counter()
    await hash_password("a long enough password")
    hashing = time.perf_counter() - started

    assert response.status_code == 504
    body = response.json()
    assert body["data"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["GATEWAY_TIMEOUT"]
    # Answered at the deadline, not when the work would have ended: within the margin on a
    # quiet machine, and before the hashing in any case (it ran on in the background).
    assert took < max(0.05 + MARGIN, min(hashing, 0.05 + 5 * MARGIN)), (took, hashing)
    assert await sources.users.db["users"].count_documents({"email": "late@example.com"}) == 0
