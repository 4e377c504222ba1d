"""`gateway serve` as a real process on a real socket."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import DEV_JWT_SECRET, Settings
from tests.helpers import body_of

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 20.0
STOP_SECONDS = 10.0
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def gateway_env(**values: str) -> dict[str, str]:
    """This environment without any gateway setting of its own, plus `values`."""
    names = {name.upper() for name in Settings.model_fields}
    env = {name: value for name, value in os.environ.items() if name.upper() not in names}
    return {**env, **values}


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that make a process use the settings of this test run."""
    return gateway_env(
        GATEWAY_ENV="test",
        MONGO_USER_URI=settings.mongo_user_uri,
        MONGO_STRATEGY_URI=settings.mongo_strategy_uri,
        MONGO_CREDENTIALS_URI=settings.mongo_credentials_uri,
        TRADES_DATABASE_URL=settings.trades_database_url,
        ANALYTICS_DATABASE_URL=settings.analytics_database_url,
        JWT_SECRET=settings.jwt_secret.get_secret_value(),
    )


@dataclass
class Server:
    """A running `gateway serve` process and where it listens."""

    process: subprocess.Popen[bytes]
    base_url: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_serve(
    port: int, env: dict[str, str], workdir: Path, log_level: str = "warning"
) -> Server:
    """Start `gateway serve`; its output goes to files so a full pipe never blocks it."""
    stderr_path = workdir / "stderr.log"
    with (workdir / "stdout.log").open("wb") as stdout, stderr_path.open("wb") as stderr:
        command = [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1"]
        process = subprocess.Popen(
            [*command, "--port", str(port), "--log-level", log_level],
            env=env,
            cwd=workdir,  # no stray .env is read
            stdout=stdout,
            stderr=stderr,
        )
    return Server(process, f"http://127.0.0.1:{port}", stderr_path)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, wait a bounded time, then kill."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)


async def wait_until_healthy(server: Server) -> None:
    """Poll /healthz until it answers; fail with the process's stderr if it never does."""
    deadline = time.monotonic() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"gateway serve exited with {server.process.returncode}:\n{server.stderr()}"
                )
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"gateway serve did not answer /healthz in {STARTUP_SECONDS}s:\n{server.stderr()}")


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
