"""`gateway serve` as a real process on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import DEV_JWT_SECRET, Settings
from tests.helpers import body_of
from tests.serving import (
    STARTUP_SECONDS,
    Server,
    free_port,
    is_listening,
    settings_env,
    start_serve,
    stop,
    wait_until_healthy,
)

pytestmark = pytest.mark.slow

REGISTER = """
mutation Register($email: String!, $password: String!) {
  register(email: $email, password: $password, firstName: "Ada", lastName: "Lovelace") {
    accessToken
    user { id }
  }
}
"""
DASHBOARD = """
{
  dashboard {
    user { id email }
    strategyCounts { total }
    recentTrades { id }
    pnl { allTime }
    credentialsConfigured
    recentActivity { kind }
  }
}
"""


@pytest.fixture
async def server(settings: Settings, sources, tmp_path: Path) -> AsyncIterator[Server]:
    """`gateway serve` on a free port of the loopback, against this run's databases."""
    del sources  # the session app has migrated the databases this process uses
    running = start_serve(free_port(), settings_env(settings), tmp_path)
    try:
        await wait_until_healthy(running)
        yield running
    finally:
        stop(running.process)


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A client speaking real HTTP over TCP to the server process."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
        yield client


async def test_a_served_gateway_is_ready_with_every_source(http):
    response = await http.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert {name: status["ok"] for name, status in body["sources"].items()} == {
        "users": True,
        "strategies": True,
        "credentials": True,
        "trades": True,
        "analytics": True,
    }


async def test_a_served_gateway_signs_up_a_user_and_answers_their_dashboard(http):
    registered = await http.post(
        "/graphql",
        json={
            "query": REGISTER,
            "variables": {"email": "served@example.com", "password": "a long enough password"},
        },
        headers={"Accept": "application/graphql-response+json"},
    )
    assert registered.status_code == 200, registered.text
    payload = registered.json()["data"]["register"]

    response = await http.post(
        "/graphql",
        json={"query": DASHBOARD},
        headers={
            "Authorization": f"Bearer {payload['accessToken']}",
            "Accept": "application/graphql-response+json",
        },
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert body_of(response) == {
        "data": {
            "dashboard": {
                "user": {"id": payload["user"]["id"], "email": "served@example.com"},
                "strategyCounts": {"total": 0},
                "recentTrades": [],
                "pnl": {"allTime": "0"},
                "credentialsConfigured": False,
                "recentActivity": [{"kind": "ACCOUNT_CREATED"}],
            }
        }
    }


def test_a_production_gateway_with_the_default_jwt_secret_refuses_to_start(settings, tmp_path):
    port = free_port()
    env = settings_env(settings)
    del env["JWT_SECRET"]
    env["GATEWAY_ENV"] = "production"
    server = start_serve(port, env, tmp_path, log_level="info")
    try:
        returncode = server.process.wait(timeout=STARTUP_SECONDS)
    finally:
        stop(server.process)

    assert returncode != 0
    message = " ".join(server.stderr().split())
    assert "JWT_SECRET must be set to a non-default value in production" in message
    assert DEV_JWT_SECRET not in server.stderr()
    assert "Traceback" not in server.stderr()
    assert "Uvicorn running" not in server.stderr()
    assert "startup" not in server.stderr().lower()
    assert not is_listening(port)
