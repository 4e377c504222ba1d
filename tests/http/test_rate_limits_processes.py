"""Two `gateway serve` processes on one Redis share their rate limits: a limit reached
through one holds in the other."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from tests.helpers import body_of
from tests.serving import (
    Server,
    free_port,
    settings_env,
    start_serve,
    stop,
    wait_until_healthy,
)
from tests.unit.test_ratelimit import REDIS_URL, delete_prefix

pytestmark = pytest.mark.slow

LOGIN = (
    'mutation { login(email: "nobody@example.com", password: "wrong password!") { user { id } } }'
)


@pytest.fixture
async def two_servers(settings: Settings, sources, tmp_path: Path) -> AsyncIterator[list[Server]]:
    """Two gateway processes with the default limits, sharing this machine's Redis."""
    del sources  # the session app has migrated the databases
    prefix = f"gw:test:{uuid.uuid4().hex}:"
    env = {**settings_env(settings), "REDIS_URL": REDIS_URL, "RATE_LIMIT_KEY_PREFIX": prefix}
    servers: list[Server] = []
    try:
        for name in ("a", "b"):
            workdir = tmp_path / name
            workdir.mkdir()
            servers.append(start_serve(free_port(), env, workdir))
        for server in servers:
            await wait_until_healthy(server)
        yield servers
    finally:
        for server in servers:
            stop(server.process)
        await delete_prefix(prefix)


async def test_a_limit_reached_through_one_process_holds_in_the_other(two_servers):
    first, second = two_servers
    async with (
        httpx.AsyncClient(base_url=first.base_url, timeout=10.0) as a,
        httpx.AsyncClient(base_url=second.base_url, timeout=10.0) as b,
    ):
        admitted = [body_of(await a.post("/graphql", json={"query": LOGIN})) for _ in range(5)]
        refused = await b.post("/graphql", json={"query": LOGIN})
        ready = [(await http.get("/readyz")).json()["rateLimits"] for http in (a, b)]

    assert {body["errors"][0]["extensions"]["code"] for body in admitted} == {"UNAUTHENTICATED"}
    error = body_of(refused)["errors"][0]
    # 10 per minute: a call every 6 s, less the time the five hashed passwords took.
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= error["extensions"]["retryAfter"] <= 6
    assert refused.headers["retry-after"] == str(error["extensions"]["retryAfter"])
    assert ready == [{"enabled": True, "backend": "redis", "redis": {"ok": True}}] * 2
