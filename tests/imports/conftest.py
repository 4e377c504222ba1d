"""The legacy databases: algo-runner's on the suite's Mongo server, Tradebaas' on the suite's
PostgreSQL and a SQLite file; and helpers over them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from datasources import Sources, imported
from datasources.credentials import SECRET_FIELDS
from gateway.core.crypto import SecretBox
from gateway.core.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL, RUN_ID
from tests.helpers import GATEWAY, ROOT, environment
from tests.imports.legacy import LegacyUser


@dataclass
class Legacy:
    """The legacy database of one test: its URI (for `--from`) and a handle on it."""

    uri: str
    db: AsyncDatabase[dict[str, Any]]

    async def fill(self, users: list[LegacyUser]) -> None:
        await self.db.users.insert_many([dict(user.doc) for user in users])

    async def docs(self) -> dict[str, dict[str, Any]]:
        return {str(doc["_id"]): doc async for doc in self.db.users.find({})}


@pytest.fixture
async def legacy(mongo_base_uri: str) -> AsyncIterator[Legacy]:
    """An empty `algo_runner_db` of this run, dropped after the test."""
    name = f"gw_{RUN_ID}_algo_runner_db"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_base_uri, tz_aware=True, tzinfo=UTC
    )
    await client.drop_database(name)
    try:
        yield Legacy(f"{mongo_base_uri.rstrip('/')}/{name}", client[name])
    finally:
        await client.drop_database(name)
        await client.close()


async def snapshot(sources: Sources, box: SecretBox) -> dict[str, list[dict[str, Any]]]:
    """Every document an import writes, comparable across runs: credentials with their
    secrets opened and without the times of the write (a fresh nonce and `now` each time)."""
    users = [doc async for doc in sources.users.db.users.find({}).sort("_id")]
    strategies = [doc async for doc in sources.strategies.db.strategies.find({}).sort("_id")]
    credentials = []
    async for doc in sources.credentials.db.credentials.find({}, {"_id": 0}).sort("userId"):
        for field in SECRET_FIELDS:
            if field in doc:
                doc[field] = box.open(doc[field], user_id=str(doc["userId"]), field=field)
        del doc["createdAt"], doc["updatedAt"]
        credentials.append(doc)
    return {"users": users, "strategies": strategies, "credentials": credentials}


@dataclass
class TradebaasLegacy:
    """Tradebaas' two databases for one test: a PostgreSQL database of its own (its URI, for
    `--strategies`) and a path for the SQLite trades file."""

    uri: str
    trades_path: Path


@pytest.fixture
async def tradebaas(sources: Sources, tmp_path: Path) -> AsyncIterator[TradebaasLegacy]:
    """A new, empty PostgreSQL database for Tradebaas' tables, dropped after the test; and
    no `imported_trades` bookkeeping in the trades database before or after it."""
    name = f"gw_test_{RUN_ID}_tradebaas_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    async with sources.trades.engine.begin() as conn:
        await imported.drop_imported_trades(conn=conn)
    parts = urlsplit(POSTGRES_ADMIN_URL)
    uri = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    try:
        yield TradebaasLegacy(uri, tmp_path / "trades.db")
    finally:
        async with sources.trades.engine.begin() as conn:
            await imported.drop_imported_trades(conn=conn)
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


Counts = dict[str, int]


async def kill_when(
    settings: Settings,
    args: Sequence[str],
    log: Path,
    reached: Callable[[Counts], bool],
    counts: Callable[[], Awaitable[Counts]],
) -> Counts:
    """Start `gateway ARGS...`, SIGKILL it once `reached(await counts())` holds (or it ends
    by itself); the counts it was killed at."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *GATEWAY, *args, env=environment(settings), stdout=out, stderr=out, cwd=ROOT
        )
        try:
            deadline = time.monotonic() + 120
            while process.returncode is None and time.monotonic() < deadline:
                now = await counts()
                if reached(now):
                    process.kill()
                    break
                await asyncio.sleep(0.02)
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
    return now
