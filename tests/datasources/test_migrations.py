"""Versioned migrations with rollback, against the real servers: Alembic for the SQL sources
(PostgreSQL and SQLite), `schema_migrations` for the Mongo sources."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import inspect, text

from datasources import (
    MigrationError,
    MongoSource,
    Sources,
    SqlSource,
    Versioned,
    _alembic,
    _mongo_versions,
    idempotency,
    outbox,
    persisted_operations,
)
from datasources import credentials as credentials_source
from datasources import strategies as strategies_source
from datasources import users as users_source
from datasources._mongo import now
from datasources.migrations import users as users_versions

MONGO_SOURCES = ("users", "strategies", "credentials")
SQL_SOURCES = ("trades", "analytics")
ALL = (*MONGO_SOURCES, *SQL_SOURCES)
NEW = dict.fromkeys(ALL, (None, ("0001",), False))
AT_HEAD = dict.fromkeys(ALL, ("0001", (), False))


async def _statuses(sources: Sources) -> dict[str, tuple[str | None, tuple[str, ...], bool]]:
    return {
        status.source: (status.current, status.pending, status.adoptable)
        for status in await sources.migration_status()
    }


async def _sql_shape(source: SqlSource) -> dict[str, Any]:
    """The source's tables as the database describes them: columns and indexes."""

    def describe(conn: Any) -> dict[str, Any]:
        found = inspect(conn)
        return {
            table: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
                sorted((i["name"], tuple(i["column_names"])) for i in found.get_indexes(table)),
            )
            for table in sorted(found.get_table_names())
            if not table.startswith("alembic_version")
        }

    async with source.engine.connect() as conn:
        return dict(await conn.run_sync(describe))


async def _mongo_shape(source: MongoSource) -> dict[str, list[tuple[Any, ...]]]:
    """Every index of every collection but `schema_migrations`, with its options."""
    shape = {}
    for name in sorted(await source.db.list_collection_names()):
        if name == _mongo_versions.COLLECTION:
            continue
        shape[name] = sorted(
            [
                (
                    index["name"],
                    tuple(index["key"].items()),
                    bool(index.get("unique")),
                    bool(index.get("sparse")),
                    index.get("expireAfterSeconds"),
                )
                async for index in await source.db[name].list_indexes()
            ]
        )
    return shape


async def _old_migrate(sources: Sources) -> None:
    """What `migrate` did before versions: create-all and the declared indexes."""
    await users_source.ensure_indexes(db=sources.users.db)
    await persisted_operations.ensure_indexes(db=sources.users.db)
    await outbox.ensure_indexes(db=sources.users.db, collections=sources.users.outbox_collections)
    for source, module in (
        (sources.strategies, strategies_source),
        (sources.credentials, credentials_source),
    ):
        await module.ensure_indexes(db=source.db)
        await outbox.ensure_indexes(db=source.db, collections=source.outbox_collections)
        await idempotency.ensure_indexes(db=source.db)
    for sql in (sources.trades, sources.analytics):
        async with sql.engine.begin() as conn:
            await conn.run_sync(sql.metadata.create_all)


async def test_the_sql_migrations_make_exactly_the_tables_the_code_declares(sources):
    # Alembic's autogenerate finds nothing to add, drop or alter: a column, index or type
    # changed in datasources/ without a version (or the other way round) fails here.
    for source in (sources.trades, sources.analytics):
        versions = source._versions()
        assert versions is not None
        assert await _alembic.differences(source.engine, versions) == [], source.name


async def test_the_mongo_migrations_make_exactly_the_indexes_the_code_declares(fresh):
    # The indexes the source modules declare (their INDEXES, made by their ensure_indexes)
    # and those the versions make are the same: an index added without a version fails here.
    async with Sources.open(fresh) as declared:
        await _old_migrate(declared)
        expected = {name: await _mongo_shape(getattr(declared, name)) for name in MONGO_SOURCES}
        for name in MONGO_SOURCES:
            source = getattr(declared, name)
            for collection in await source.db.list_collection_names():
                await source.db.drop_collection(collection)
        await declared.migrate()
        made = {name: await _mongo_shape(getattr(declared, name)) for name in MONGO_SOURCES}
    assert made == expected


async def test_every_source_goes_up_down_and_up_again(fresh):
    async with Sources.open(fresh) as sources:
        assert await _statuses(sources) == dict.fromkeys(ALL, (None, ("0001",), False))

        await sources.migrate()
        at_head = await _statuses(sources)
        shapes = {name: await _sql_shape(getattr(sources, name)) for name in SQL_SOURCES}
        indexes = {name: await _mongo_shape(getattr(sources, name)) for name in MONGO_SOURCES}
        user = await users_source.insert_user(
            db=sources.users.db, email="kept@example.com", password_hash="x",
            first_name="K", last_name="E", phone=None,
        )  # fmt: skip

        with pytest.raises(MigrationError, match="--drop-data"):
            await sources.downgrade("base")  # the SQL tables would go, with their rows
        assert await _statuses(sources) == at_head  # nothing was undone
        undone = await sources.downgrade("base", drop_data=True)

        assert undone == dict.fromkeys(ALL, ("0001",))
        assert await _statuses(sources) == dict.fromkeys(ALL, (None, ("0001",), False))
        for name in SQL_SOURCES:
            assert await _sql_shape(getattr(sources, name)) == {}, name
        users_indexes = await _mongo_shape(sources.users)
        assert users_indexes["users"] == [("_id_", (("_id", 1),), False, False, None)]
        # Rolling indexes back never drops a document.
        assert await sources.users.db["users"].count_documents({}) == 1

        await sources.migrate()

        assert await _statuses(sources) == at_head == AT_HEAD
        for name in SQL_SOURCES:
            source = getattr(sources, name)
            assert await _sql_shape(source) == shapes[name]
            assert await _alembic.differences(source.engine, source._versions()) == []
        for name in MONGO_SOURCES:
            assert await _mongo_shape(getattr(sources, name)) == indexes[name]
        assert await users_source.find_users(db=sources.users.db, ids=[user.id])


async def test_a_database_made_by_the_old_migrate_is_adopted_at_the_first_version_unchanged(
    fresh,
):
    async with Sources.open(fresh) as sources:
        await _old_migrate(sources)
        async with sources.trades.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO trades (user_id, strategy_id, strategy_name, instrument, side,"
                    " quantity, entry_price, entry_time, fees, status) VALUES ('u', 's', 'n',"
                    " 'BTC', 'buy', 1, 1, '2026-01-01 00:00:00+00', 0, 'open')"
                )
            )
        sql_before = {name: await _sql_shape(getattr(sources, name)) for name in SQL_SOURCES}
        mongo_before = {name: await _mongo_shape(getattr(sources, name)) for name in MONGO_SOURCES}
        assert {s for s, (_, _, adoptable) in (await _statuses(sources)).items() if adoptable} == {
            *MONGO_SOURCES,
            *SQL_SOURCES,
        }

        await sources.migrate()

        assert await _statuses(sources) == dict.fromkeys(ALL, ("0001", (), False))
        assert {n: await _sql_shape(getattr(sources, n)) for n in SQL_SOURCES} == sql_before
        assert {n: await _mongo_shape(getattr(sources, n)) for n in MONGO_SOURCES} == mongo_before
        async with sources.trades.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM trades"))).scalar() == 1
        record = await sources.users.db[_mongo_versions.COLLECTION].find_one({"_id": "0001"})
        assert record is not None
        assert record["adopted"] is True


async def test_two_migrations_at_once_apply_each_version_once(fresh):
    # Two processes' worth of clients and pools: each migrates under the other's lock.
    async with Sources.open(fresh) as first, Sources.open(fresh) as second:
        await asyncio.gather(first.migrate(), second.migrate(), first.migrate())

        assert await _statuses(second) == dict.fromkeys(ALL, ("0001", (), False))
        for name in MONGO_SOURCES:
            records = getattr(first, name).db[_mongo_versions.COLLECTION]
            assert [doc["_id"] async for doc in records.find()] == ["0001"], name
        for name in SQL_SOURCES:
            source = getattr(first, name)
            async with source.engine.connect() as conn:
                table = f"alembic_version_{name}"
                rows = await conn.execute(text(f"SELECT version_num FROM {table}"))  # noqa: S608
                assert [row[0] for row in rows] == ["0001"], name
            assert await _alembic.differences(source.engine, source._versions()) == []


async def test_a_document_change_is_applied_and_rolled_back_in_order(fresh):
    async def add_plan(db: Any) -> None:
        await db["users"].update_many({"plan": {"$exists": False}}, {"$set": {"plan": "free"}})

    async def remove_plan(db: Any) -> None:
        await db["users"].update_many({}, {"$unset": {"plan": ""}})

    migrations = (
        *users_versions.MIGRATIONS,
        _mongo_versions.MongoMigration("0002", "every user on a plan", add_plan, remove_plan),
    )
    async with Sources.open(fresh) as sources:
        db = sources.users.db
        await db["users"].insert_many([{"email": "a@example.com"}, {"email": "b@example.com"}])

        assert await _mongo_versions.upgrade(db, migrations) == ["0001", "0002"]
        assert await db["users"].count_documents({"plan": "free"}) == 2
        assert await _mongo_versions.upgrade(db, migrations) == []  # nothing left to apply

        assert await _mongo_versions.downgrade(db, migrations, to="0001") == ["0002"]
        assert await db["users"].count_documents({"plan": {"$exists": True}}) == 0
        assert await _mongo_versions.applied_versions(db) == ["0001"]


async def test_a_database_migrated_by_a_newer_gateway_is_refused(fresh):
    async with Sources.open(fresh) as sources:
        await sources.migrate()
        await sources.strategies.db[_mongo_versions.COLLECTION].insert_one({"_id": "0099"})
        async with sources.analytics.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version_analytics SET version_num = '0099'"))

        for source in (sources.strategies, sources.analytics):
            assert isinstance(source, Versioned)
            with pytest.raises(MigrationError, match="0099"):
                await source.migrate()
            with pytest.raises(MigrationError, match="0099"):
                await source.migration_status()


async def test_rolling_back_to_an_unknown_version_undoes_nothing(fresh):
    async with Sources.open(fresh) as sources:
        await sources.migrate()

        with pytest.raises(MigrationError, match="no version '0042'"):
            await sources.downgrade("0042")
        with pytest.raises(MigrationError, match="no versioned source named nope"):
            await sources.downgrade("base", names=["nope"])

        assert set((await _statuses(sources)).values()) == {("0001", (), False)}
        assert await sources.downgrade("0001") == dict.fromkeys(reversed(ALL), ())


async def test_a_mongo_lock_left_by_a_dead_process_is_taken_over_once_its_lease_ends(fresh):
    async with Sources.open(fresh) as sources:
        db = sources.credentials.db
        records = db[_mongo_versions.COLLECTION]
        await records.insert_one(
            {"_id": "lock", "owner": "alive", "until": now() + timedelta(seconds=30)}
        )
        with pytest.raises(MigrationError, match="another process holds the migration lock"):
            async with _mongo_versions.locked(db, wait_seconds=0.3):
                pass

        await records.update_one({"_id": "lock"}, {"$set": {"until": now() - timedelta(1)}})
        await sources.credentials.migrate()

        assert await records.find_one({"_id": "lock"}) is None
        assert await _mongo_versions.applied_versions(db) == ["0001"]


async def test_clearing_a_source_keeps_its_versions(sources):
    await sources.clear()

    for name in MONGO_SOURCES:
        status = await getattr(sources, name).migration_status()
        assert (status.current, status.pending) == ("0001", ()), name


async def test_a_sql_migration_waits_for_another_process_holding_the_database_lock(fresh):
    async with Sources.open(fresh) as sources:
        source = sources.trades
        versions = source._versions()
        assert versions is not None
        # Another process, in the middle of migrating: it holds the database's lock.
        if source.engine.dialect.name == "postgresql":
            url = fresh.trades_database_url.replace("+asyncpg", "")
            other = await asyncpg.connect(url)
            await other.execute("SELECT pg_advisory_lock($1)", _alembic._lock_key(versions))
            release = other.close
        else:
            path = fresh.trades_database_url.split("///", 1)[1]
            writer = sqlite3.connect(path, isolation_level=None)
            writer.execute("PRAGMA journal_mode=WAL")  # as every gateway process sets it
            writer.execute("BEGIN IMMEDIATE")

            async def release() -> None:
                writer.execute("COMMIT")
                writer.close()

        migrating = asyncio.create_task(source.migrate())
        await asyncio.sleep(0.5)
        assert not migrating.done()

        await release()
        await asyncio.wait_for(migrating, 10)

        assert (await source.migration_status()).current == "0001"


def test_every_source_of_the_gateway_is_versioned(sources):
    # A source added to the registry without versions would be migrated by create-all,
    # with nothing to roll back: each of the gateway's own sources has its versions.
    for source in sources:
        assert isinstance(source, Versioned), source.name
        assert source.versions()[0] == "0001", source.name
