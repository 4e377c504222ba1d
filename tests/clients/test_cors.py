"""CORS in a real browser: a page on another origin signs in to a served gateway and loads
the dashboard when CORS_ORIGINS names that origin, and cannot when it does not."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from tests.clients.conftest import register, run_node
from tests.serving import Server, free_port, settings_env, start_serve, stop, wait_until_healthy

PASSWORD = "a long enough password"


@pytest.fixture
def page_port() -> int:
    return free_port()


@pytest.fixture
async def served_for_page(
    settings: Settings, sources, tmp_path: Path, node_modules: Path, page_port: int
) -> AsyncIterator[Server]:
    """`gateway serve` allowing the pages of http://localhost:<page_port> only."""
    del sources, node_modules
    env = {**settings_env(settings), "CORS_ORIGINS": f"http://localhost:{page_port}"}
    server = start_serve(free_port(), env, tmp_path)
    try:
        await wait_until_healthy(server)
        yield server
    finally:
        stop(server.process)


async def test_a_page_of_an_allowed_origin_signs_in_and_loads_the_dashboard_and_no_other_can(
    served_for_page: Server, chromium, page_port: int
):
    await register(served_for_page, "cors@example.com", PASSWORD)

    outcomes = await run_node(
        "cors.mjs", served_for_page.base_url, str(page_port), "cors@example.com", PASSWORD
    )

    allowed = outcomes["localhost"]
    assert "failed" not in allowed, allowed
    assert allowed["dashboard"]["data"]["dashboard"]["user"] == {"email": "cors@example.com"}
    assert allowed["dashboard"]["data"]["dashboard"]["strategyCounts"] == {"total": 0}
    assert allowed["requestId"]  # an exposed header the page may read
    assert allowed["corsErrors"] == 0
    # The same page on an origin CORS_ORIGINS does not name: the preflight is refused, so
    # the browser never sends the sign-in (the gateway counted one, the allowed page's).
    refused = outcomes["127.0.0.1"]
    assert refused["failed"].startswith("TypeError"), refused
    assert "dashboard" not in refused
    assert refused["corsErrors"] >= 1
    async with httpx.AsyncClient(base_url=served_for_page.base_url) as http:
        metrics = (await http.get("/metrics")).text
    assert requests_of(metrics, "SignIn") == 1  # the allowed page's only
    assert requests_of(metrics, "Dashboard") == 1


def requests_of(metrics: str, operation: str) -> float:
    """How many GraphQL requests of `operation` the served gateway counted."""
    pattern = rf'^gateway_requests_total{{[^}}]*operation="{operation}"[^}}]*}} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, metrics, re.MULTILINE))
