"""The legacy algo-runner database, on the suite's Mongo server, and helpers over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from datasources import Sources
from datasources.credentials import SECRET_FIELDS
from gateway.core.crypto import SecretBox
from tests.conftest import RUN_ID
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
