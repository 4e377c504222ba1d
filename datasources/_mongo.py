"""MongoDB helpers shared by the users, strategies and credentials sources, and their base."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pymongo
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.errors import InvalidId
from pymongo import AsyncMongoClient, uri_parser
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from datasources._source import CallKind, Shared, SourceBase, SourceLimits, _retrieve
from datasources._versions import MigrationStatus, Version

if TYPE_CHECKING:
    from datasources._mongo_versions import MongoMigration

Document = dict[str, Any]
# The collection of a database's applied versions (datasources/_mongo_versions.py).
SCHEMA_MIGRATIONS = "schema_migrations"
T = TypeVar("T")
R = TypeVar("R")


def client_key(uri: str) -> str:
    """The part of a Mongo URI that picks a server (so sources on one server share a client)."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))


def database_name(uri: str) -> str:
    """The database named in the URI's path (`mongodb://host/user_db` -> `user_db`)."""
    name = uri_parser.parse_uri(uri)["database"]
    if not name:
        # Name the problem, never the URI: it may carry a password.
        raise ValueError("a Mongo URI must name its database in its path (mongodb://host/db)")
    return str(name)


def open_client(uri: str, *, timeout: float) -> AsyncMongoClient[Document]:
    """A lazily connecting client with timeouts short enough for a request path."""
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        tzinfo=UTC,
        serverSelectionTimeoutMS=int(timeout * 1000),
        connectTimeoutMS=int(timeout * 1000),
        appname="trading-gateway",
    )


def get_database(client: AsyncMongoClient[Document], uri: str) -> AsyncDatabase[Document]:
    """The database of `uri` on `client`, decoding datetimes as aware UTC."""
    options: CodecOptions[Document] = CodecOptions(tz_aware=True, tzinfo=UTC)
    return client.get_database(database_name(uri), codec_options=options)


def to_object_id(value: str) -> ObjectId | None:
    """`value` as an ObjectId, or None when it is not a valid 24-hex id."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


def to_object_ids(values: Any) -> list[ObjectId]:
    """The valid ObjectIds among `values`; invalid ids cannot match any document."""
    ids = (to_object_id(value) for value in values)
    return [oid for oid in ids if oid is not None]


def utc(value: datetime | None) -> datetime | None:
    """A stored datetime as aware UTC (documents written by other tools may be naive)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def now() -> datetime:
    """The current time, truncated to Mongo's millisecond precision."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class MongoSource(SourceBase):
    """A source in one MongoDB database. Sources on one server share a client, and so its
    connection pool (`Shared`)."""

    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = (
        PyMongoError,
        OSError,
        TimeoutError,
    )
    conflict_errors: ClassVar[tuple[type[BaseException], ...]] = (DuplicateKeyError,)
    # The collections whose documents carry activity events (datasources/outbox.py): the
    # relay delivers what is pending in each, and `migrate` indexes them.
    outbox_collections: ClassVar[tuple[str, ...]] = ()
    # The database's versions, oldest first (datasources/migrations/<name>.py); none: the
    # source's own `migrate` creates what it needs.
    migrations: ClassVar[tuple[MongoMigration, ...]] = ()
    db_system = "mongodb"

    def __init__(
        self,
        client: Shared[AsyncMongoClient[Document]],
        uri: str,
        *,
        limits: SourceLimits | None = None,
    ) -> None:
        super().__init__(limits=limits)
        self._client = client
        self.db: AsyncDatabase[Document] = get_database(client.lease(), uri)

    async def _bounded(self, call: Coroutine[Any, Any, R], seconds: float) -> R:
        # The driver's own client-side operation timeout (CSOT) ends the call: server
        # selection, connection checkout and every socket read share the deadline, and the
        # driver cleans up after itself. Cancelling its coroutines from outside instead
        # (asyncio.timeout) wedged the client for good under load: on uvloop a cancelled
        # server selection left the topology's condition lock released ("RuntimeError:
        # Lock is not acquired"), and every later operation failed until a restart
        # (tests/http/test_faults.py reproduces both).
        # Never 0: PyMongo reads a zero timeout as none at all.
        with pymongo.timeout(max(seconds, 0.001)):
            return await super()._bounded(call, seconds)

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        # Never cancelled: the driver's deadline ends it moments later.
        task.add_done_callback(_retrieve)

    async def run(
        self, work: Callable[[AsyncDatabase[Document]], Awaitable[T]], *, kind: CallKind
    ) -> T:
        """Run `work` against the database within this source's boundary: errors mapped,
        ended by the deadline of its `kind` (a lookup, an aggregate or a write)."""
        return await work(self.db)

    async def ping(self) -> None:
        """One `ping` command."""
        await self.db.command("ping")

    async def migrate(self) -> None:
        """Apply the source's versions not applied yet (`migrations`, recorded in the
        database's `schema_migrations`), adopting a database indexed before versions."""
        from datasources import _mongo_versions  # noqa: PLC0415 - imports this module

        await _mongo_versions.upgrade(self.db, self.migrations)

    async def migration_status(self) -> MigrationStatus:
        """The source's applied and pending versions."""
        from datasources import _mongo_versions  # noqa: PLC0415

        if not self.migrations:
            return MigrationStatus(self.name, kind="unversioned", current=None, head=None)
        return await _mongo_versions.status(self.db, self.migrations, source=self.name)

    async def downgrade(self, to: str) -> tuple[str, ...]:
        """Undo the versions after `to` (`base`: all), newest first; returns those undone."""
        from datasources import _mongo_versions  # noqa: PLC0415

        if not self.migrations:
            return ()
        return tuple(await _mongo_versions.downgrade(self.db, self.migrations, to=to))

    def versions(self) -> tuple[str, ...]:
        """The source's version ids, oldest first (empty: unversioned)."""
        return tuple(migration.version for migration in self.migrations)

    async def history(self) -> list[Version]:
        """Every version, oldest first, with whether it is applied."""
        from datasources import _mongo_versions  # noqa: PLC0415

        return await _mongo_versions.history(self.db, self.migrations)

    async def clear(self) -> None:
        """Empty every collection of the database but its versions (tests only)."""
        for name in await self.db.list_collection_names():
            if name != SCHEMA_MIGRATIONS:
                await self.db[name].delete_many({})

    async def close(self) -> None:
        """Give the shared client back; the last source on a server closes it."""
        await self._calls_ended()
        await self._client.release()
