"""What the client-tool tests share: the npm packages of `tests/clients/package.json`
(installed by scripts/test), a way to run a Node script and read its JSON answer, and a
`gateway serve` process against this run's databases."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.settings import Settings
from tests.helpers import PASSWORD
from tests.serving import Server, free_port, settings_env, start_serve, stop, wait_until_healthy

HERE = Path(__file__).parent
NODE_MODULES = HERE / "node_modules"
NODE_SECONDS = 120.0
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here starts processes: all are `slow`."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The installed npm packages; a clear failure when they are missing."""
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: the client-tool tests need Node.js 20")
    if not (NODE_MODULES / ".package-lock.json").exists():
        pytest.fail("tests/clients/node_modules is missing: run scripts/test (it runs npm ci)")
    return NODE_MODULES


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, which scripts/test installs."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium")
    return CHROMIUM


async def run_node(
    script: str | Path,
    *args: str,
    env: dict[str, str] | None = None,
    seconds: float = NODE_SECONDS,
) -> Any:
    """Run a Node script of this folder; it prints one JSON value last on stdout.

    A script that exits non-zero fails the test with its output.
    """
    # In a thread: the event loop keeps serving the suite's own database clients meanwhile
    # (a loop blocked for the whole script once made their session teardown fail).
    result = await asyncio.to_thread(
        subprocess.run,
        ["node", str(HERE / script), *args],
        cwd=HERE,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=seconds,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"node {script} exited with {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        pytest.fail(f"node {script} printed nothing:\n{result.stderr[-4000:]}")
    return json.loads(lines[-1])


async def run_tool(
    *command: str, seconds: float = NODE_SECONDS, cwd: Path = HERE
) -> subprocess.CompletedProcess[str]:
    """Run an npm package's command (`node_modules/.bin`), in this folder unless `cwd` is
    given; output captured."""
    return await asyncio.to_thread(
        subprocess.run,
        [str(NODE_MODULES / ".bin" / command[0]), *command[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=seconds,
        check=False,
    )


@pytest.fixture
async def served(
    settings: Settings, sources: Any, tmp_path: Path, node_modules: Path
) -> AsyncIterator[Server]:
    """`gateway serve` on a free loopback port against this run's (emptied) databases."""
    del sources, node_modules
    server = start_serve(free_port(), settings_env(settings), tmp_path)
    try:
        await wait_until_healthy(server)
        yield server
    finally:
        stop(server.process)


async def register(server: Server, email: str, password: str = PASSWORD) -> str:
    """Sign up a user through the served gateway; its access token."""
    mutation = (
        "mutation($e: String!, $p: String!) { register(email: $e, password: $p, "
        'firstName: "Ada", lastName: "Lovelace") { accessToken } }'
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        response = await http.post(
            "/graphql", json={"query": mutation, "variables": {"e": email, "p": password}}
        )
    response.raise_for_status()
    token: str = response.json()["data"]["register"]["accessToken"]
    return token


CREATE_STRATEGY = """
mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { strategy { id } } }
"""


async def make_strategies(server: Server, token: str, names: list[str]) -> None:
    """Create a strategy per name, in order, through the served gateway."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        for name in names:
            variables = {
                "input": {
                    "name": name,
                    "code": "pass",
                    "instrument": "BTCUSDT",
                    "broker": "binance",
                }
            }
            response = await http.post(
                "/graphql",
                json={"query": CREATE_STRATEGY, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert "errors" not in response.json(), response.text
