"""The source registry: one shape per database, and everything done for every source derived
from the list, so a sixth database needs no edit beyond registering it."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import ASCENDING, IndexModel

from datasources import Deadlines, MongoSource, Scope, Shared, Source, Sources, SqlSource
from datasources._mongo import open_client
from gateway.core.errors import Conflict, SourceUnavailable
from resolvers.deletion import delete_account
from tests.conftest import RUN_ID
from tests.helpers import make_user


class NotesSource(MongoSource):
    """A sixth source, as a contributor would add one: a `notes` collection per user."""

    name = "notes"

    async def migrate(self) -> None:
        await self.db["notes"].create_indexes([IndexModel([("userId", ASCENDING)])])

    async def forget_user(self, user_id: str) -> None:
        await self.db["notes"].delete_many({"userId": user_id})

    async def add(self, user_id: str, text: str) -> None:
        await self.db["notes"].insert_one({"userId": user_id, "text": text})

    async def count(self, user_id: str) -> int:
        return await self.db["notes"].count_documents({"userId": user_id})

    def loaders(self, scope: Scope) -> object:
        return object()


@pytest.fixture
async def with_notes(settings, mongo_base_uri) -> AsyncIterator[tuple[Sources, NotesSource]]:
    """Sources opened from the suite's settings, with the notes source registered."""
    uri = f"{mongo_base_uri.rstrip('/')}/gw_{RUN_ID}_notes_db"
    client = Shared(open_client(uri, timeout=1.0), lambda c: c.close())
    sources = Sources.open(settings)
    notes = NotesSource(client, uri)
    sources.register(notes)
    try:
        yield sources, notes
    finally:
        if not notes.db.client._closed:  # the close test closes it itself
            await notes.db.client.drop_database(notes.db.name)
            await sources.close()


def test_every_source_has_the_one_shape(sources):
    assert [source.name for source in sources] == [
        "users",
        "strategies",
        "credentials",
        "trades",
        "analytics",
    ]
    for source in sources:
        assert isinstance(source, Source)


def test_every_public_coroutine_of_a_source_maps_its_errors(sources):
    # Structure, not memory: a method added to a source (NotesSource.add) is inside its
    # boundary without anyone writing it.
    for cls in [*(type(source) for source in sources), NotesSource]:
        coroutines = {
            name: getattr(cls, name)
            for name in dir(cls)
            if not name.startswith("_")
            and inspect.iscoroutinefunction(inspect.unwrap(getattr(cls, name)))
        }
        assert {"ping", "migrate", "forget_user", "clear", "close"} <= set(coroutines), cls
        outside = [name for name, m in coroutines.items() if not hasattr(m, "__source_boundary__")]
        assert outside == [], cls
    assert {"add", "count"} <= {
        name
        for name in dir(NotesSource)
        if hasattr(getattr(NotesSource, name), "__source_boundary__")
    }


def test_mongo_sources_on_one_server_share_one_client(sources):
    clients = {id(source.db.client) for source in sources if isinstance(source, MongoSource)}
    assert len(clients) == 1


async def test_a_registered_source_is_pinged_for_readiness(with_notes):
    sources, _notes = with_notes
    statuses = {status.name: status for status in await sources.ping()}
    assert set(statuses) == {"users", "strategies", "credentials", "trades", "analytics", "notes"}
    assert statuses["notes"].ok


async def test_a_registered_source_is_migrated(with_notes):
    sources, notes = with_notes
    await sources.migrate()
    names = [index["name"] async for index in await notes.db["notes"].list_indexes()]
    assert "userId_1" in names


async def test_a_registered_source_forgets_a_deleted_account(with_notes):
    sources, notes = with_notes
    victim = await make_user(sources)
    bystander = await make_user(sources)
    await notes.add(victim.id, "victim's")
    await notes.add(bystander.id, "bystander's")

    assert await delete_account(sources, victim.id, settle_seconds=0)

    assert await notes.count(victim.id) == 0
    assert await notes.count(bystander.id) == 1


async def test_a_registered_source_is_cleared_like_the_others(with_notes):
    # `clear` is what the suite's `sources` fixture calls before every test that asks for it.
    sources, notes = with_notes
    user = await make_user(sources)
    await notes.add(user.id, "a note")

    await sources.clear()

    assert await notes.count(user.id) == 0
    assert await sources.users.db["users"].count_documents({}) == 0


async def test_a_registered_source_is_closed_with_the_others(with_notes):
    sources, notes = with_notes
    await notes.db.client.drop_database(notes.db.name)

    await sources.close()

    with pytest.raises(SourceUnavailable) as raised:
        await notes.ping()
    assert raised.value.source == "notes"


async def test_a_name_is_registered_once(with_notes):
    sources, notes = with_notes
    with pytest.raises(ValueError, match="registered already"):
        sources.register(notes)


async def test_a_source_maps_driver_errors_inside_itself(sources):
    # A duplicate key is a CONFLICT, any other driver failure SOURCE_UNAVAILABLE naming the
    # source; the caller wrote no error handling.
    async def insert_twice(db: Any) -> None:
        await db["scratch"].insert_one({"_id": "same"})
        await db["scratch"].insert_one({"_id": "same"})

    with pytest.raises(Conflict):
        await sources.strategies.run(insert_twice, kind="write")

    async def bad_statement(conn: Any) -> None:
        from sqlalchemy import text  # noqa: PLC0415

        await conn.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(SourceUnavailable) as raised:
        await sources.trades.read(bad_statement, kind="lookup")
    assert raised.value.source == "trades"
    assert isinstance(sources.trades, SqlSource)


@pytest.mark.parametrize("name", ["users", "strategies", "credentials", "trades", "analytics"])
async def test_every_source_keeps_the_contract(sources, settings, name):
    source = {known.name: known for known in sources}[name]
    stranger = "0" * 24

    await source.ping()
    await source.migrate()
    await source.migrate()  # idempotent
    await source.forget_user(stranger)  # a user it never knew: harmless
    await source.forget_user(stranger)
    await source.clear()

    assert source.loaders(Scope(user_id=stranger)) is not None
    # Its deadlines are the settings' by kind, with this source's overrides applied.
    deadlines = settings.source_deadlines(source.name)
    assert source.limits.deadlines == Deadlines(**deadlines)
