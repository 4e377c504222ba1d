"""The SQL sources' reads: each compiled once from the table definitions, run as a prepared
statement straight on asyncpg on PostgreSQL, and every statement seen by one hook.

A `Read` is a SQLAlchemy `select` whose varying values are named bind parameters. On
PostgreSQL, SQLAlchemy compiles it once per process; each call then binds the values
by position and runs the text on the pooled asyncpg connection (`RawConnection`),
whose statement cache keeps it prepared: no SQLAlchemy execution context, result
object or per-column type call on the way. Each row becomes its result in one step,
through the converters the select's column types call for (`Money`: canonical
Decimals; `UtcDateTime`: aware UTC datetimes, by the very functions those types use).
On any other connection (SQLite, or a SQLAlchemy connection a caller holds) the same
select runs through SQLAlchemy, whose types have done the converting.

A driver error on the raw path is raised as SQLAlchemy would raise it (the same
`DBAPIError` subclasses, a dead connection invalidating the pool and flagged
`connection_invalidated`), so the source boundary maps it exactly as before.

`Statements` is the one place every statement of a source passes, raw or through
SQLAlchemy (whose cursor events it forwards): the tests count round trips there.
The asyncpg connection is reachable only inside `RawConnection`, so no read can
bypass it (tests/unit/test_sql_reads.py checks that nothing else touches the driver).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Date, Enum, Integer, String, any_, bindparam, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.types import JSON
from sqlalchemy.util import greenlet_spawn

R = TypeVar("R")
T = TypeVar("T")
Convert = Callable[[Any], Any]
# Called as a statement starts, with its text; may return what to call when it ends.
StatementListener = Callable[[str], Callable[[], None] | None]


# How many values a list condition is given, as far as its statement's text cares.
Count = Literal["none", "one", "many"]


def count_of(values: Sequence[Any] | None) -> Count:
    """`values`' `Count` (None: no condition at all)."""
    if values is None:
        return "none"
    return "one" if len(values) == 1 else "many"


def one_of(
    column: ColumnElement[Any], name: str, dialect: str, count: Count
) -> ColumnElement[bool]:
    """`column` is one of the values bound as `name` (by `bound`): `= $n` for one (an index
    scan in the index's order, as `IN ($n)` gave before), otherwise `= ANY($n)` on
    PostgreSQL (one text whatever the list's length, so it stays prepared) and `IN (...)`
    elsewhere."""
    if count == "one":
        return column == bindparam(name)
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def bound(values: Sequence[Any]) -> Any:
    """`values` as `one_of` binds them."""
    return values[0] if len(values) == 1 else list(values)


def as_tuple(*values: Any) -> tuple[Any, ...]:
    """A row's values as they are (the `into` of reads that return plain rows)."""
    return values


class Read(Generic[R]):
    """One SELECT, with named bind parameters for what varies per call, and how each of its
    rows becomes an `R`: `into(*values)`, each column's value first converted from its
    stored form by its type, then by its `loads` entry (by column name) if it has one."""

    def __init__(
        self,
        query: Select[*tuple[Any, ...]],
        into: Callable[..., R],
        loads: Mapping[str, Convert] | None = None,
    ) -> None:
        columns = list(query.selected_columns)
        names = [getattr(column, "name", None) for column in columns]
        unknown = set(loads or {}) - set(names)
        if unknown:
            raise ValueError(f"loads name no selected column: {sorted(unknown)}")
        if dataclasses.is_dataclass(into):
            # Records are made positionally: the columns must be the record's fields.
            fields = [field.name for field in dataclasses.fields(into)]
            if fields != names:
                raise ValueError(f"{into.__name__} has fields {fields}, the read {names}")
        self.query = query
        self._into = into
        self._loads = [(loads or {}).get(name) if name else None for name in names]
        self._types = [column.type for column in columns]
        # Converted by SQLAlchemy's result processing: only the loads are left.
        self.processed = _row_maker(into, self._loads)
        self._compiled: _Prepared[R] | None = None

    def prepared(self, dialect: Dialect) -> _Prepared[R]:
        """The statement as sent on PostgreSQL, compiled on first use (by the first engine's
        dialect: every asyncpg dialect compiles a select alike)."""
        if self._compiled is None:
            self._compiled = _Prepared(self, dialect)
        return self._compiled

    def raw_converters(self) -> list[Convert | None]:
        """Each column's converter from what asyncpg returns to what the record holds."""
        return [
            _then(_from_postgresql(type_), load)
            for type_, load in zip(self._types, self._loads, strict=True)
        ]


class _Prepared(Generic[R]):
    """A `Read` compiled for PostgreSQL: its text, its positional arguments, its row maker."""

    def __init__(self, read: Read[R], dialect: Dialect) -> None:
        compiled = read.query.compile(dialect=dialect)
        self.sql = compiled.string
        # Per position: the value's name (None: a constant of the query), its bind
        # processor and, for constants, the value already processed.
        self._arguments: list[tuple[str | None, Convert | None, Any]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            if bind.expanding:
                raise ValueError(f"{name}: an expanding parameter (use one_of) on PostgreSQL")
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                self._arguments.append((name, process, None))
            else:
                value = bind.effective_value
                self._arguments.append((None, None, process(value) if process else value))
        self.make = _row_maker(read._into, read.raw_converters())

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for `values` (by bind name)."""
        arguments = []
        for name, process, constant in self._arguments:
            if name is None:
                arguments.append(constant)
            elif process is None:
                arguments.append(values[name])
            else:
                arguments.append(process(values[name]))
        return arguments


def _from_postgresql(type_: TypeEngine[Any]) -> Convert | None:
    """What SQLAlchemy's result processing does to a value of `type_` read by asyncpg."""
    # Imported here: _sql.py defines the types and imports this module.
    from datasources._sql import Money, UtcDateTime, money_from_numeric, utc_datetime  # noqa: PLC0415

    if isinstance(type_, Money):
        return money_from_numeric
    if isinstance(type_, UtcDateTime):
        return utc_datetime
    # asyncpg returns these as SQLAlchemy does (JSON through the codec the dialect installs
    # on every connection). An Enum is a String SQLAlchemy may turn into its Python enum.
    if isinstance(type_, String | Integer | Date | JSON) and not isinstance(type_, Enum):
        return None
    raise TypeError(f"no raw PostgreSQL reading for a column of type {type_!r}: add one here")


def _then(first: Convert | None, second: Convert | None) -> Convert | None:
    if first is None or second is None:
        return first or second
    return lambda value: second(first(value))


def _identity(value: Any) -> Any:
    return value


def _row_maker(into: Callable[..., R], converters: Sequence[Convert | None]) -> Callable[[Any], R]:
    """One row (indexable, in the select's column order) to one `R`, in one call."""
    if not any(converters):
        return lambda row: into(*row)
    steps = [convert or _identity for convert in converters]
    return lambda row: into(*[step(value) for step, value in zip(steps, row, strict=True)])


class Statements:
    """Every statement one SQL source sends, raw or through SQLAlchemy: listeners are told
    when each starts and ends (tests/helpers.py RoundTrips counts round trips here).

    SQLAlchemy's statements arrive by its cursor events, registered on the engine with
    the first listener (so a process without listeners pays nothing); raw ones are
    reported by `RawConnection` around each execution. Two sources sharing one engine
    both hear its SQLAlchemy statements, as the cursor events on that engine did."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.listeners: list[StatementListener] = []

    def listen(self, listener: StatementListener) -> None:
        """Tell `listener` of every statement from now on."""
        if not self.listeners:
            self._forward_cursor_events()
        self.listeners.append(listener)

    def started(self, statement: str) -> list[Callable[[], None]]:
        """Report a statement starting; what to call when it ends."""
        return [ended for listener in self.listeners if (ended := listener(statement))]

    def _forward_cursor_events(self) -> None:
        running: dict[int, list[Callable[[], None]]] = {}
        sync_engine = self._engine.sync_engine

        def before(
            _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
        ) -> None:
            if ended := self.started(statement):
                running[id(context)] = ended

        def after(
            _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
        ) -> None:
            for end in running.pop(id(context), ()):
                end()

        event.listen(sync_engine, "before_cursor_execute", before)
        event.listen(sync_engine, "after_cursor_execute", after)


class RawConnection:
    """A pooled asyncpg connection lent to one read (see the module docstring). Reads only:
    it runs no transaction, so each statement is one round trip in autocommit."""

    dialect_name = "postgresql"

    def __init__(self, engine: AsyncEngine, pooled: PoolProxiedConnection, statements: Statements):
        self._engine = engine
        self._pooled = pooled
        self._driver = pooled.driver_connection
        self._statements = statements

    async def all(self, read: Read[R], values: Mapping[str, Any]) -> list[R]:
        """Every row of `read` with `values` bound, each made into its result."""
        prepared = read.prepared(self._engine.dialect)
        try:
            arguments = prepared.arguments(values)
        except Exception as exc:
            # A value its column type refuses (a naive time): SQLAlchemy's StatementError.
            raise self._wrapped(exc, prepared.sql, values) from exc
        ended = self._statements.started(prepared.sql) if self._statements.listeners else ()
        try:
            rows = await self._driver.fetch(prepared.sql, *arguments)  # type: ignore[union-attr]
        except Exception as exc:
            raise self._as_sqlalchemy_error(exc, prepared.sql, arguments) from exc
        finally:
            for end in ended:
                end()
        make = prepared.make
        return [make(row) for row in rows]

    def _as_sqlalchemy_error(
        self, exc: Exception, statement: str, arguments: Sequence[Any]
    ) -> BaseException:
        """`exc` as SQLAlchemy raises a driver error on its own execution path: translated
        to the dialect's DBAPI error, wrapped in `sqlalchemy.exc.DBAPIError`, and, when the
        connection is gone, the pool invalidated (the database restarted: every pooled
        connection is as dead) with the error flagged `connection_invalidated`."""
        dialect = self._engine.dialect
        adapted = self._pooled.dbapi_connection
        try:
            # The dialect's own translation of an asyncpg error (it always raises).
            adapted._handle_exception(exc)  # type: ignore[union-attr]
        except dialect.loaded_dbapi.Error as translated:
            gone = dialect.is_disconnect(translated, adapted, None)
            if gone:
                self._engine.pool._invalidate(self._pooled, translated)
            return self._wrapped(translated, statement, list(arguments), invalidated=gone)
        except Exception as untranslated:  # noqa: BLE001 - not a driver error: raised as it came
            return untranslated
        return exc

    def _wrapped(
        self, exc: Exception, statement: str, parameters: Any, *, invalidated: bool = False
    ) -> BaseException:
        """`exc` wrapped as SQLAlchemy wraps an error of executing `statement`: a driver
        error in its `DBAPIError` subclass, any other in a `StatementError`."""
        return DBAPIError.instance(
            statement,
            parameters,
            exc,
            self._engine.dialect.loaded_dbapi.Error,
            hide_parameters=self._engine.sync_engine.hide_parameters,
            connection_invalidated=invalidated,
            dialect=self._engine.dialect,
        )


async def run_raw(
    engine: AsyncEngine, statements: Statements, work: Callable[[RawConnection], Awaitable[T]]
) -> T:
    """Run `work` on a connection checked out of `engine`'s pool, then give it back. A call
    that did not end normally (cancelled, abandoned at its deadline) may have left the
    driver mid-statement: that connection is closed, never pooled again."""
    pooled = await engine.raw_connection()
    try:
        result = await work(RawConnection(engine, pooled, statements))
    except Exception:
        await greenlet_spawn(pooled.close)
        raise
    except BaseException:
        pooled.invalidate()
        raise
    await greenlet_spawn(pooled.close)
    return result


# Connections a read runs on: SQLAlchemy's, or the raw one on PostgreSQL.
ReadConnection = AsyncConnection | RawConnection


def dialect_of(conn: ReadConnection) -> str:
    """The name of the database `conn` talks to (`postgresql`, `sqlite`)."""
    if isinstance(conn, RawConnection):
        return conn.dialect_name
    return conn.dialect.name


async def fetch_all(conn: ReadConnection, read: Read[R], values: Mapping[str, Any]) -> list[R]:
    """Every row of `read` with `values` bound, as results: raw on a `RawConnection`,
    through SQLAlchemy on any other."""
    if isinstance(conn, RawConnection):
        return await conn.all(read, values)
    make = read.processed
    return [make(row) for row in await conn.execute(read.query, dict(values))]


__all__ = [
    "Count",
    "RawConnection",
    "Read",
    "ReadConnection",
    "Statements",
    "as_tuple",
    "bound",
    "count_of",
    "dialect_of",
    "fetch_all",
    "one_of",
    "run_raw",
]
