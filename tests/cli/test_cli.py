"""The `gateway` command, run as a real process: migrate, analytics refresh, schema print, demo."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from datasources.analytics import daily_strategy_metrics
from gateway.embedded import free_port
from tests.helpers import (
    GATEWAY,
    ROOT,
    environment,
    make_strategy,
    make_trades,
    make_user,
    run,
    trade_row,
)

# Every test here runs the `gateway` command as a real process.
pytestmark = pytest.mark.slow


async def test_migrate_can_run_twice(settings):
    first = run(settings, "migrate")
    second = run(settings, "migrate")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "migrated" in second.stderr


async def test_analytics_refresh_rolls_trades_up_and_running_it_twice_changes_nothing(
    settings, sources
):
    user = await make_user(sources)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy), trade_row(strategy)])

    async def metrics() -> list[tuple[object, ...]]:
        async with sources.analytics.engine.connect() as conn:
            rows = await conn.execute(select(daily_strategy_metrics))
            return [tuple(row) for row in rows]

    first = run(settings, "analytics", "refresh")
    after_first = await metrics()
    second = run(settings, "analytics", "refresh", "--since", "2000-01-01")

    assert first.returncode == 0, first.stderr
    assert "2 trades read, 1 daily rows written" in first.stderr
    assert second.returncode == 0, second.stderr
    assert await metrics() == after_first
    assert len(after_first) == 1


async def test_analytics_refresh_refuses_a_malformed_date(settings, sources):
    result = run(settings, "analytics", "refresh", "--since", "yesterday")

    assert result.returncode == 2
    assert "invalid fromisoformat value" in result.stderr
    async with sources.analytics.engine.connect() as conn:
        assert (
            await conn.execute(select(func.count()).select_from(daily_strategy_metrics))
        ).scalar() == 0


def test_the_committed_schema_is_the_one_the_gateway_serves():
    printed = subprocess.run(
        [*GATEWAY, "schema", "print"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout

    assert printed == (ROOT / "schema.graphql").read_text()


def test_the_committed_subgraph_sdl_is_the_one_the_gateway_serves_as_a_subgraph():
    printed = subprocess.run(
        [*GATEWAY, "schema", "print", "--federation"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout

    assert printed == (ROOT / "schema.federation.graphql").read_text()


def test_serve_refuses_the_default_jwt_secret_in_production(settings):
    env = environment(settings)
    env["GATEWAY_ENV"] = "production"
    env.pop("JWT_SECRET")

    result = subprocess.run(
        [*GATEWAY, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "JWT_SECRET must be set" in result.stderr


@pytest.fixture
def demo(tmp_path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`gateway demo` in a fresh data folder, stopped with Ctrl-C (SIGINT) at the end."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MONGO_")}
    process = subprocess.Popen(
        [*GATEWAY, "demo", "--port", str(port), "--data-dir", str(tmp_path / "demo")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("gateway demo did not come up within 120 s")
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr:
            process.stderr.close()


def children_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(status.parent.name))
    return found


def test_the_demo_serves_seeded_data_and_stops_its_mongo_server_on_ctrl_c(demo):
    process, base = demo
    mongo_children = children_of(process.pid)
    login = httpx.post(
        f"{base}/graphql",
        json={
            "query": 'mutation { login(email: "demo@example.com", password: "demo-password")'
            " { accessToken } }"
        },
        timeout=30,
    ).json()
    token = login["data"]["login"]["accessToken"]
    dashboard = httpx.post(
        f"{base}/graphql",
        json={
            "query": "{ dashboard { strategyCounts { total } pnl { allTime } }"
            " profile { tradeCount } }"
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()

    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)

    assert dashboard["data"]["dashboard"]["strategyCounts"]["total"] >= 20
    assert dashboard["data"]["profile"]["tradeCount"] >= 2000
    assert mongo_children, "the demo should run its Mongo-wire server as a child process"
    assert process.returncode == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in mongo_children)
