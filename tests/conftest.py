"""Real servers for the whole suite: PostgreSQL databases made for this run, and a
Mongo-wire server (the embedded SecantusDB, or a real mongod via MONGO_TEST_URI)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from pymongo import AsyncMongoClient, monitoring

from datasources import MongoSource, Sources
from gateway.app import create_app
from gateway.core.settings import Settings
from gateway.embedded import EmbeddedMongo
from tests.helpers import RoundTrips, SecretsSpy

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RUN_ID = uuid.uuid4().hex[:8]

# Registered before any client exists: PyMongo attaches global listeners at client creation.
ROUND_TRIPS = RoundTrips()
monitoring.register(ROUND_TRIPS.mongo_listener)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


@pytest.fixture(scope="session")
def mongo_base_uri() -> Iterator[str]:
    """The Mongo server of this run: MONGO_TEST_URI, or an embedded server started once."""
    if uri := os.environ.get("MONGO_TEST_URI"):
        yield uri
        return
    with EmbeddedMongo(storage=None) as server:
        yield f"mongodb://{server.host}:{server.port}"


async def _create_database(name: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(name: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def pg_urls() -> AsyncIterator[tuple[str, str]]:
    """Two PostgreSQL databases (trades, analytics) that exist for this run only."""
    names = (f"gw_test_{RUN_ID}_trades", f"gw_test_{RUN_ID}_analytics")
    for name in names:
        await _create_database(name)
    base = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield (_with_database(base, names[0]), _with_database(base, names[1]))
    finally:
        for name in names:
            await _drop_database(name)


@pytest.fixture(scope="session")
def settings(mongo_base_uri: str, pg_urls: tuple[str, str]) -> Settings:
    """Settings pointing at this run's databases."""
    base = mongo_base_uri.rstrip("/")
    return Settings(
        _env_file=None,
        gateway_env="test",
        mongo_user_uri=f"{base}/gw_{RUN_ID}_user_db",
        mongo_strategy_uri=f"{base}/gw_{RUN_ID}_strategy_db",
        mongo_credentials_uri=f"{base}/gw_{RUN_ID}_credentials_db",
        trades_database_url=pg_urls[0],
        analytics_database_url=pg_urls[1],
        jwt_secret="test-secret-" + "x" * 64,
        # The shared app sweeps interrupted deletions at start only: a periodic sweep
        # could finish a deletion a test is in the middle of checking.
        deletion_sweep_interval_seconds=86400.0,
        # Likewise the outbox relay: tests that need it run a pass themselves.
        outbox_relay_interval_seconds=86400.0,
        # Deletions settle at once unless a test asks for the wait.
        deletion_settle_seconds=0.0,
        # The suite sends many requests and wrong passwords from one address: the shared
        # app does not limit them. tests/http/test_rate_limits.py runs apps that do.
        rate_limit_enabled=False,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[object]:
    """The app with its lifespan running, migrated, for the whole session."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        sources: Sources = application.state.sources
        await sources.migrate()
        ROUND_TRIPS.watch(sources)
        yield application
        clients = {s.db.client for s in sources if isinstance(s, MongoSource)}
        for client in clients:
            await client.drop_database(f"gw_{RUN_ID}_user_db")
            await client.drop_database(f"gw_{RUN_ID}_strategy_db")
            await client.drop_database(f"gw_{RUN_ID}_credentials_db")


@pytest.fixture
async def sources(app) -> Sources:
    """The app's long-lived sources, every registered one emptied first: a test that asks
    for a database (directly, or through `client`) starts with empty ones, and a test that
    asks for none starts no server at all."""
    opened: Sources = app.state.sources
    await opened.clear()
    return opened


@pytest.fixture(autouse=True)
def processes_are_marked_slow(request: pytest.FixtureRequest, monkeypatch) -> None:
    """A test that starts a process is marked `slow` (so `-m 'not slow'` runs in seconds):
    starting one from an unmarked test fails it."""
    if request.node.get_closest_marker("slow") is not None:
        return

    def refuse(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{request.node.nodeid} starts a process: mark it slow")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture(scope="session")
def secrets_spy() -> Iterator[SecretsSpy]:
    """Sees every response body of the suite; at the end, none may hold a stored secret."""
    spy = SecretsSpy()
    yield spy
    spy.assert_no_leak()


@pytest.fixture
async def client(
    app, sources: Sources, secrets_spy: SecretsSpy
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process (ASGI)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://gateway.test",
        event_hooks={"response": [secrets_spy.inspect]},
    ) as http:
        yield http


@pytest.fixture
def round_trips() -> RoundTrips:
    """The spy counting real commands and statements per source."""
    ROUND_TRIPS.reset()
    return ROUND_TRIPS


@pytest.fixture(params=["postgresql", "sqlite"])
async def fresh(
    request: pytest.FixtureRequest, settings: Settings, mongo_base_uri: str, tmp_path: Path
) -> AsyncIterator[Settings]:
    """Settings over databases of their own, never migrated (the migration tests roll them
    back and forth): one new PostgreSQL database holding trades and analytics both, or two
    SQLite files; and three new Mongo databases."""
    suffix = uuid.uuid4().hex[:6]
    name = f"gw_test_{RUN_ID}_mig_{suffix}"
    if request.param == "postgresql":
        await _create_database(name)
        base = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
        trades_url = analytics_url = _with_database(base, name)
    else:
        trades_url = f"sqlite+aiosqlite:///{tmp_path / 'trades.sqlite3'}"
        analytics_url = f"sqlite+aiosqlite:///{tmp_path / 'analytics.sqlite3'}"
    databases = {
        field: f"gw_{RUN_ID}_mig_{suffix}_{kind}_db"
        for field, kind in (
            ("mongo_user_uri", "user"),
            ("mongo_strategy_uri", "strategy"),
            ("mongo_credentials_uri", "credentials"),
        )
    }
    server = mongo_base_uri.rstrip("/")
    try:
        yield settings.model_copy(
            update={
                "trades_database_url": trades_url,
                "analytics_database_url": analytics_url,
                **{field: f"{server}/{database}" for field, database in databases.items()},
            }
        )
    finally:
        client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_base_uri)
        for database in databases.values():
            await client.drop_database(database)
        await client.close()
        if request.param == "postgresql":
            await _drop_database(name)
