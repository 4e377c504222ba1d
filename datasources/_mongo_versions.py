"""Versioned changes of a Mongo database: indexes and documents, each with an up and a down
step, recorded in its `schema_migrations` collection.

One document per applied version (`{_id: "0001", description, appliedAt, adopted}`) and,
while a process migrates, a lock document (`{_id: "lock", owner, until}`): a second process
waits for it, so two never apply the same step at once. The lock is a lease, renewed before
every step; one left by a process that died is taken over once it has run out.

A step must be safe to run again (create an index that exists, `$set` what is set): a
process killed between a step and its record runs the step again next time. A database
indexed by the unversioned `migrate` of before has no record but has indexes: it is
adopted at the first version, whose step (creating the indexes it already has) changes
nothing there.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from datasources._mongo import SCHEMA_MIGRATIONS, Document, now
from datasources._versions import BASE, MigrationError, MigrationStatus, Version

COLLECTION = SCHEMA_MIGRATIONS
LOCK_ID = "lock"
# How long a lock holds without renewal (renewed before every step), and how long a process
# waits for another's before giving up.
LOCK_LEASE_SECONDS = 60.0
LOCK_WAIT_SECONDS = 120.0

Step = Callable[[AsyncDatabase[Document]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class MongoMigration:
    """One version of a Mongo database: `up` applies it, `down` undoes it."""

    version: str
    description: str
    up: Step
    down: Step


def index_names(models: Sequence[IndexModel]) -> list[str]:
    """The names the server gives these indexes."""
    return [str(model.document["name"]) for model in models]


def indexes_migration(
    version: str, description: str, indexes: Mapping[str, Sequence[IndexModel]]
) -> MongoMigration:
    """A version that creates `indexes` (by collection); undone by dropping them (never the
    collections or their documents)."""

    async def up(db: AsyncDatabase[Document]) -> None:
        for collection, models in indexes.items():
            await db[collection].create_indexes(list(models))

    async def down(db: AsyncDatabase[Document]) -> None:
        for collection, models in indexes.items():
            present = {index["name"] async for index in await db[collection].list_indexes()}
            for name in index_names(models):
                if name in present:
                    await db[collection].drop_index(name)

    return MongoMigration(version, description, up, down)


def _check_order(migrations: Sequence[MongoMigration]) -> list[str]:
    versions = [migration.version for migration in migrations]
    if versions != sorted(set(versions)) or BASE in versions:
        raise MigrationError(f"versions must be distinct and in order: {versions}")
    return versions


async def applied_versions(db: AsyncDatabase[Document]) -> list[str]:
    """The versions recorded as applied, in order."""
    found = db[COLLECTION].find({"_id": {"$ne": LOCK_ID}}, projection={"_id": 1})
    return sorted([str(doc["_id"]) async for doc in found])


async def _adoptable(db: AsyncDatabase[Document]) -> bool:
    """Indexes exist but no version is recorded: indexed before versions. (Documents alone
    are not enough: rolling back to `base` drops the indexes and keeps the documents.)"""
    if await applied_versions(db):
        return False
    for name in await db.list_collection_names():
        if name == COLLECTION:
            continue
        if any([index["name"] != "_id_" async for index in await db[name].list_indexes()]):
            return True
    return False


def _current(versions: Sequence[str], applied: Sequence[str]) -> str | None:
    unknown = sorted(set(applied) - set(versions))
    if unknown:
        raise MigrationError(
            f"the database has version(s) {', '.join(unknown)} that this gateway does not "
            "know (a newer gateway migrated it): roll back with that gateway, or upgrade this one"
        )
    return applied[-1] if applied else None


async def status(
    db: AsyncDatabase[Document], migrations: Sequence[MongoMigration], *, source: str
) -> MigrationStatus:
    """Where the database stands."""
    versions = _check_order(migrations)
    applied = await applied_versions(db)
    current = _current(versions, applied)
    return MigrationStatus(
        source=source,
        kind=COLLECTION,
        current=current,
        head=versions[-1] if versions else None,
        pending=tuple(v for v in versions if v not in applied),
        adoptable=await _adoptable(db),
    )


async def history(
    db: AsyncDatabase[Document], migrations: Sequence[MongoMigration]
) -> list[Version]:
    """Every version, oldest first, with whether it is applied."""
    applied = set(await applied_versions(db))
    return [Version(m.version, m.description, m.version in applied) for m in migrations]


@asynccontextmanager
async def locked(
    db: AsyncDatabase[Document], *, wait_seconds: float = LOCK_WAIT_SECONDS
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Hold the database's migration lock; yields `renew`, to call before each step."""
    owner = uuid.uuid4().hex
    lease = timedelta(seconds=LOCK_LEASE_SECONDS)
    collection = db[COLLECTION]
    give_up = time.monotonic() + wait_seconds
    while True:
        moment = now()
        try:
            await collection.insert_one({"_id": LOCK_ID, "owner": owner, "until": moment + lease})
            break
        except DuplicateKeyError:
            # Held; take it over only if its lease ran out (its process died).
            taken = await collection.find_one_and_update(
                {"_id": LOCK_ID, "until": {"$lt": moment}},
                {"$set": {"owner": owner, "until": moment + lease}},
            )
            if taken is not None:
                break
        if time.monotonic() > give_up:
            raise MigrationError(
                f"another process holds the migration lock of {db.name} "
                f"(the {COLLECTION} document {LOCK_ID!r}); try again once it has finished"
            )
        await asyncio.sleep(0.05 + random.random() * 0.1)  # noqa: S311 - jitter, not crypto

    async def renew() -> None:
        renewed = await collection.update_one(
            {"_id": LOCK_ID, "owner": owner}, {"$set": {"until": now() + lease}}
        )
        if renewed.matched_count != 1:
            raise MigrationError(f"the migration lock of {db.name} was lost (a step overran it)")

    try:
        yield renew
    finally:
        await collection.delete_one({"_id": LOCK_ID, "owner": owner})


async def upgrade(db: AsyncDatabase[Document], migrations: Sequence[MongoMigration]) -> list[str]:
    """Apply the versions not applied yet, in order; returns those applied. A database from
    before versions is adopted: its first version's step runs (changing nothing there) and
    is recorded as adopted."""
    versions = _check_order(migrations)
    if not versions:
        return []
    async with locked(db) as renew:
        applied = await applied_versions(db)
        _current(versions, applied)
        adopting = not applied and await _adoptable(db)
        done = []
        for migration in migrations:
            if migration.version in applied:
                continue
            await renew()
            await migration.up(db)
            await db[COLLECTION].insert_one(
                {
                    "_id": migration.version,
                    "description": migration.description,
                    "appliedAt": now(),
                    "adopted": adopting,
                }
            )
            adopting = False
            done.append(migration.version)
        return done


async def downgrade(
    db: AsyncDatabase[Document], migrations: Sequence[MongoMigration], *, to: str
) -> list[str]:
    """Undo the applied versions after `to` (`base`: every one), newest first; returns those
    undone."""
    versions = _check_order(migrations)
    if to != BASE and to not in versions:
        raise MigrationError(f"no version {to!r} (known: {', '.join([BASE, *versions])})")
    keep = set() if to == BASE else set(versions[: versions.index(to) + 1])
    async with locked(db) as renew:
        applied = await applied_versions(db)
        _current(versions, applied)
        undone = []
        for migration in reversed(migrations):
            if migration.version in keep or migration.version not in applied:
                continue
            await renew()
            await migration.down(db)
            await db[COLLECTION].delete_one({"_id": migration.version})
            undone.append(migration.version)
        return undone
