"""Running `gateway serve` as a real process for a test: a free port, the test run's
settings in its environment, output to files, a bounded start and stop."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings

STARTUP_SECONDS = 20.0
STOP_SECONDS = 10.0


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
