"""`gateway migrate`, `migrate status`, `migrate history` and `migrate down`, run as real
processes against databases of their own (`fresh`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from datasources import Sources
from datasources.analytics import AnalyticsSource
from datasources.trades import TradesSource
from tests.helpers import GATEWAY, ROOT, environment, run

# Every test here runs the `gateway` command as a real process.
pytestmark = pytest.mark.slow

SOURCES = ("users", "strategies", "credentials", "trades", "analytics")


def status_of(settings) -> dict[str, tuple[str, str, str]]:
    """`gateway migrate status`, by source: (kind, current, newest)."""
    done = run(settings, "migrate", "status")
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


@pytest.mark.parametrize("fresh", ["postgresql"], indirect=True)
async def test_migrate_goes_up_down_and_up_again_and_status_shows_each_version(fresh):
    assert status_of(fresh)["trades"] == ("alembic", "base", "0001")

    up = run(fresh, "migrate")
    assert up.returncode == 0, up.stderr
    assert "trades: base -> 0001" in up.stderr
    assert status_of(fresh) == {
        "users": ("schema_migrations", "0001", "0001"),
        "strategies": ("schema_migrations", "0001", "0001"),
        "credentials": ("schema_migrations", "0001", "0001"),
        "trades": ("alembic", "0001", "0001"),
        "analytics": ("alembic", "0001", "0001"),
    }

    args = ("migrate", "down", "--to", "base", "--source", "trades", "--source", "users")
    refused = run(fresh, *args)
    assert refused.returncode == 1
    assert "--drop-data" in refused.stderr
    down = run(fresh, *args, "--drop-data")
    assert down.returncode == 0, down.stderr
    assert "lost their indexes" in down.stderr
    assert "trades: undid 0001" in down.stderr
    after_down = status_of(fresh)
    assert {name: row[1] for name, row in after_down.items()} == {
        "users": "base",
        "strategies": "0001",
        "credentials": "0001",
        "trades": "base",
        "analytics": "0001",
    }
    history = run(fresh, "migrate", "history")
    assert history.returncode == 0, history.stderr
    assert "trades\t0001\tpending\t" in history.stdout
    assert "analytics\t0001\tapplied\t" in history.stdout

    again = run(fresh, "migrate")
    assert again.returncode == 0, again.stderr
    assert "analytics: 0001, up to date" in again.stderr
    assert {row[1] for row in status_of(fresh).values()} == {"0001"}


@pytest.mark.parametrize("fresh", ["postgresql"], indirect=True)
async def test_rolling_back_to_an_unknown_version_is_refused_with_nothing_undone(fresh):
    assert run(fresh, "migrate").returncode == 0

    refused = run(fresh, "migrate", "down", "--to", "0042")
    unknown_source = run(fresh, "migrate", "down", "--to", "base", "--source", "nope")

    assert refused.returncode == 1
    assert "no version '0042'" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert unknown_source.returncode == 1
    assert "no versioned source named nope" in unknown_source.stderr
    assert {row[1] for row in status_of(fresh).values()} == {"0001"}


@pytest.mark.parametrize("fresh", ["postgresql"], indirect=True)
async def test_migrate_adopts_databases_made_by_the_old_migrate(fresh):
    async with Sources.open(fresh) as sources:
        for source in (sources.trades, sources.analytics):
            async with source.engine.begin() as conn:
                await conn.run_sync(source.metadata.create_all)
    assert isinstance(sources.trades, TradesSource)
    assert isinstance(sources.analytics, AnalyticsSource)

    up = run(fresh, "migrate")

    assert up.returncode == 0, up.stderr
    assert "trades: adopted at 0001" in up.stderr
    assert "analytics: adopted at 0001" in up.stderr
    assert "users: base -> 0001" in up.stderr


async def test_two_migrate_processes_at_once_both_succeed(fresh):
    processes = [
        await asyncio.create_subprocess_exec(
            *GATEWAY,
            "migrate",
            env=environment(fresh),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outcomes = await asyncio.gather(*(process.communicate() for process in processes))

    for process, (_out, err) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, err.decode()
    assert {row[1] for row in status_of(fresh).values()} == {"0001"}
    async with Sources.open(fresh) as sources:
        for name in ("users", "strategies", "credentials"):
            records = getattr(sources, name).db["schema_migrations"]
            assert [doc["_id"] async for doc in records.find()] == ["0001"], name


def test_serving_never_imports_alembic():
    # Alembic is for the migration commands; a serving process starts without it.
    probe = (
        "import sys, gateway.app, gateway.cli, datasources;"
        "sys.exit('alembic' in sys.modules or 'datasources._alembic' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
