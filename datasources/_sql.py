"""SQL helpers shared by the trades and analytics sources: portable column types, engines
and their base class.

The same table definitions run on PostgreSQL (asyncpg) and SQLite (aiosqlite).
PostgreSQL keeps money in `numeric` and times in `timestamptz`; SQLite has
neither, so money is stored there as an integer count of 10^-8 units (exact,
and summable in SQL) and times as naive UTC text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from sqlalchemy import BigInteger, Date, DateTime, Integer, MetaData, Numeric, event, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.types import TypeDecorator

from datasources._source import ReadKind, Shared, SourceBase, SourceLimits
from datasources._sql_reads import ReadConnection, Statements, run_raw
from datasources._versions import MigrationStatus, Version

if TYPE_CHECKING:
    from datasources._alembic import SqlVersions

T = TypeVar("T")

MONEY_SCALE = 8
# The SQL sources' Alembic script directories (datasources/migrations/<source>).
MIGRATIONS = Path(__file__).parent / "migrations"
_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
_ONE = Decimal(1)
_FACTOR = 10**MONEY_SCALE

# A bigint identity on PostgreSQL, SQLite's rowid alias on SQLite (only INTEGER autoincrements).
BigIntId = BigInteger().with_variant(Integer(), "sqlite")
# The largest value of a bigint id: a larger key cannot name a row (and would overflow).
MAX_BIGINT = 2**63 - 1


def sql_ids(keys: Iterable[str]) -> list[int]:
    """The keys that can name a row of a bigint-id table (the decimal spelling of a positive
    id, as `str(id)` writes it), as integers, deduplicated; the others cannot match any row."""
    ids = (int(key) for key in keys if key.isascii() and key.isdigit() and key == str(int(key)))
    return list(dict.fromkeys(i for i in ids if 0 < i <= MAX_BIGINT))


def canonical(amount: Decimal) -> Decimal:
    """`amount` at most 8 places, without trailing zeros and never in exponent form."""
    amount = amount.quantize(_QUANTUM).normalize()
    # A whole amount may have become "1E+2": quantize(1) makes it "100" and leaves "7" as it
    # is. (This test costs half what reading the exponent from `as_tuple()` did, per value.)
    if amount == amount.to_integral_value():
        return amount.quantize(_ONE)
    if amount.is_nan():  # never an amount (as before, when its exponent "n" failed to compare)
        raise TypeError("NaN is not an amount")
    return amount


def money_from_numeric(value: Any) -> Decimal | None:
    """A `Money` value as PostgreSQL's `numeric` returns it (a Decimal), canonical."""
    return None if value is None else canonical(Decimal(value))


def money_from_scaled(value: Any) -> Decimal | None:
    """A `Money` value as SQLite stores it (an integer count of 10^-8), canonical."""
    return None if value is None else canonical(Decimal(int(value)) / _FACTOR)


def utc_datetime(value: Any) -> datetime | None:
    """A `UtcDateTime` value as read: aware, in UTC (a naive one is taken as UTC)."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """An exact decimal: `numeric(28, 8)` on PostgreSQL, scaled integer on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(28, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = Decimal(value)
        if dialect.name == "sqlite":
            return int((amount * _FACTOR).to_integral_value())
        return amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if dialect.name == "sqlite":
            return money_from_scaled(value)
        return money_from_numeric(value)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect; naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("UtcDateTime needs a timezone-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return utc_datetime(value)

    @property
    def python_type(self) -> type[datetime]:
        return datetime


class utc_day(FunctionElement[date]):  # noqa: N801 - reads as the SQL function it renders
    """The UTC calendar day of a timestamp column, as a `date`."""

    type = Date()
    inherit_cache = True
    name = "utc_day"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC' AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


async def read(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run the read `work` on a pooled connection, and once more on a fresh one if that
    connection turned out dead (the database restarted or dropped it): reads are
    idempotent, so the caller never sees a connection the pool had not noticed was gone."""
    return await _retried(lambda: _on_sqlalchemy(engine, work))


async def _on_sqlalchemy(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async with engine.connect() as conn:
        return await work(conn)


async def _retried(attempt: Callable[[], Awaitable[T]]) -> T:
    try:
        return await attempt()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return await attempt()


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine for `url`, tuned for its dialect (UTC sessions on PostgreSQL)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url)
        _enable_sqlite_pragmas(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: on asyncpg it costs three round trips per checkout (BEGIN, ping,
        # ROLLBACK) on every loader's critical path. A connection found dead raises a
        # disconnect error instead, which SQLAlchemy answers by invalidating the whole
        # pool; `read` then retries once on a fresh connection.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": {"timezone": "UTC", "application_name": "gateway"}},
    )


def _enable_sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets the demo's readers and the analytics refresh work side by side.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


async def _select_one(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT 1"))


class SqlSource(SourceBase):
    """A source in one SQL database (its tables in `metadata`). Two sources may share one
    database, and so one engine (`Shared`)."""

    metadata: ClassVar[MetaData]
    # The Alembic script directory of the source's versions (datasources/migrations/<name>);
    # None: unversioned, `migrate` creates what is missing.
    migrations: ClassVar[Path | None] = None
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = (
        SQLAlchemyError,
        OSError,
        TimeoutError,
    )
    conflict_errors: ClassVar[tuple[type[BaseException], ...]] = (IntegrityError,)

    def __init__(self, engine: Shared[AsyncEngine], *, limits: SourceLimits | None = None) -> None:
        self.db_system = engine.resource.dialect.name  # postgresql, sqlite
        super().__init__(limits=limits)
        self._shared = engine
        self.engine = engine.lease()
        # Reads send one SELECT per connection: in autocommit, without the BEGIN and
        # ROLLBACK round trips an implicit transaction would add around it.
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # Every statement this source sends, raw or not (`Statements`).
        self.statements = Statements(self.engine)
        # On asyncpg, reads skip SQLAlchemy's execution layer (datasources/_sql_reads.py).
        self._raw = self.engine.dialect.driver == "asyncpg"

    async def fetch(self, work: Callable[[ReadConnection], Awaitable[T]], *, kind: ReadKind) -> T:
        """Run `work`, which reads with `fetch_all` (datasources/_sql_reads.py), within this
        source's boundary, ended by the deadline of its `kind`, and once more on a fresh
        connection like `read`. On PostgreSQL `work` gets a `RawConnection`: its `Read`s run
        as prepared statements straight on asyncpg. Elsewhere it gets a SQLAlchemy
        connection in autocommit. The loaders read this way."""
        if self._raw:
            return await _retried(lambda: run_raw(self.engine, self.statements, work))
        return await read(self._reader, work)

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]], *, kind: ReadKind) -> T:
        """Run the read `work` on a SQLAlchemy connection in autocommit, within this
        source's boundary, ended by the deadline of its `kind` (see `read` for the retry).
        For any statement; a `Read` costs less through `fetch`."""
        return await read(self._reader, work)

    async def write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` in one transaction within this source's boundary."""
        async with self.engine.begin() as conn:
            return await work(conn)

    async def ping(self) -> None:
        """One `SELECT 1`, retried once on a fresh connection like every read: a pooled
        connection the database dropped says nothing about the database now."""
        await read(self._reader, _select_one)

    async def migrate(self) -> None:
        """Apply the source's versions not applied yet (README, "Migrations"), adopting
        tables created before versions; a source without versions (`migrations` None) has
        its missing tables and indexes created."""
        versions = self._versions()
        if versions is None:
            async with self.engine.begin() as conn:
                await conn.run_sync(self.metadata.create_all)
            return
        from datasources import _alembic  # noqa: PLC0415 - Alembic stays out of serving imports

        await _alembic.upgrade(self.engine, versions)

    async def migration_status(self) -> MigrationStatus:
        """The source's applied and pending versions."""
        versions = self._versions()
        if versions is None:
            return MigrationStatus(self.name, kind="unversioned", current=None, head=None)
        from datasources import _alembic  # noqa: PLC0415

        return await _alembic.status(self.engine, versions)

    async def downgrade(self, to: str) -> tuple[str, ...]:
        """Undo the versions after `to` (`base`: all), newest first, in one transaction;
        returns those undone."""
        versions = self._versions()
        if versions is None:
            return ()
        from datasources import _alembic  # noqa: PLC0415

        return tuple(await _alembic.downgrade(self.engine, versions, to=to))

    def versions(self) -> tuple[str, ...]:
        """The source's version ids, oldest first (empty: unversioned)."""
        versions = self._versions()
        if versions is None:
            return ()
        from datasources import _alembic  # noqa: PLC0415

        return _alembic.version_ids(versions)

    async def history(self) -> list[Version]:
        """Every version, oldest first, with whether it is applied."""
        versions = self._versions()
        if versions is None:
            return []
        from datasources import _alembic  # noqa: PLC0415

        return await _alembic.history(self.engine, versions)

    def _versions(self) -> SqlVersions | None:
        if self.migrations is None:
            return None
        from datasources._alembic import SqlVersions  # noqa: PLC0415

        return SqlVersions(self.name, self.migrations, self.metadata, self._adopt)

    def _adopt(self, conn: Connection) -> None:
        """Bring tables created before versions to the first version: what the unversioned
        `migrate` did (create what is missing)."""
        self.metadata.create_all(conn)

    async def clear(self) -> None:
        """Delete every row of the source's tables (tests only)."""
        async with self.engine.begin() as conn:
            for table in reversed(self.metadata.sorted_tables):
                await conn.execute(table.delete())

    async def close(self) -> None:
        """Give the engine back; the last source on a database disposes of its pool."""
        await self._calls_ended()
        await self._shared.release()
