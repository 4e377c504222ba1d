"""`gateway serve --workers 2`: two processes answer, and /metrics counts for both, whichever
of them (or the supervisor, on a metrics port of its own) is asked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.settings import Settings
from tests.serving import (
    Server,
    free_port,
    settings_env,
    stop,
    wait_until_healthy,
)

pytestmark = pytest.mark.slow

PING = "query Ping { __typename }"
MAX_REQUESTS = 400


def serve(env: dict[str, str], workdir: Path, *args: str) -> Server:
    """Start `gateway serve ARGS` on the loopback; its stderr goes to a file."""
    stderr_path = workdir / "stderr.log"
    port = args[args.index("--port") + 1]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", *args],
            env=env,
            cwd=workdir,  # no stray .env is read
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return Server(process, f"http://127.0.0.1:{port}", stderr_path)


def requests_counted(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_requests_total" and sample.labels == {
                "operation": "Ping",
                "outcome": "ok",
            }:
                return float(sample.value)
    return 0.0


def serving_pids(server: Server) -> dict[int, int]:
    """Per worker process, the Ping requests its JSON log lines say it answered."""
    answered: dict[int, int] = {}
    for line in server.stderr().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("logger") == "gateway.access" and entry.get("operation") == "Ping":
            answered[entry["pid"]] = answered.get(entry["pid"], 0) + 1
    return answered


async def test_two_workers_count_into_one_set_of_metrics(settings: Settings, sources, tmp_path):
    del sources  # the session app has migrated the databases the workers use
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"")  # a previous run's: removed at start
    port, metrics_port = free_port(), free_port()
    env = settings_env(settings)
    env.update(
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        METRICS_PORT=str(metrics_port),
        LOG_FORMAT="json",
    )
    server = serve(env, tmp_path, "--port", str(port), "--workers", "2")
    process = server.process
    try:
        await wait_until_healthy(server)
        sent = 0
        deadline = time.monotonic() + 60
        # A fresh connection per request: the kernel hands each to either worker.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits) as http:
            while sent < MAX_REQUESTS and time.monotonic() < deadline:
                batch = [http.post("/graphql", json={"query": PING}) for _ in range(20)]
                for response in await asyncio.gather(*batch):
                    assert response.status_code == 200
                    assert response.json()["extensions"]["requestId"]
                sent += 20
                await asyncio.sleep(0.2)  # the log lines reach the file
                if len(serving_pids(server)) >= 2:
                    break
            answered = serving_pids(server)
            assert len(answered) == 2, answered
            assert sum(answered.values()) == sent
            # The API port has no /metrics when it has a port of its own.
            assert (await http.get("/metrics")).status_code == 404
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as scraper:
            scraped = (await scraper.get("/metrics")).text
        assert requests_counted(scraped) == sent
        assert not (metrics_dir / "counter_999999.db").exists()
    finally:
        stop(process)
    assert process.returncode == 0, server.stderr()


async def test_one_worker_serves_metrics_on_the_api_port(settings: Settings, sources, tmp_path):
    del sources
    port = free_port()
    env = settings_env(settings)
    env.update(LOG_FORMAT="text")
    server = serve(env, tmp_path, "--port", str(port))
    process = server.process
    try:
        await wait_until_healthy(server)
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            response = await http.post("/graphql", json={"query": PING})
            scraped = (await http.get("/metrics")).text
        assert requests_counted(scraped) == 1
        request_id = response.headers["x-request-id"]
        await asyncio.sleep(0.2)
        (line,) = [line for line in server.stderr().splitlines() if request_id in line]
        assert " gateway.access [" in line
        assert "operation=Ping" in line
    finally:
        stop(process)
