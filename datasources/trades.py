"""The trades source: the `trades` table, on PostgreSQL in production and SQLite embedded."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from aiodataloader import DataLoader
from sqlalchemy import (
    Column,
    ColumnElement,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from datasources._batch import Page, Scope, grouped, in_key_order, paginate
from datasources._fields import (
    StoredField,
    as_is,
    lower,
    lower_or_none,
    store_fields,
    upper,
    upper_or_none,
)
from datasources._sql import MIGRATIONS, BigIntId, Money, SqlSource, UtcDateTime, sql_ids, utc_day
from datasources._sql_reads import (
    Count,
    Read,
    ReadConnection,
    as_tuple,
    bound,
    count_of,
    dialect_of,
    fetch_all,
    one_of,
)

metadata = MetaData()

trades = Table(
    "trades",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("user_id", String(24), nullable=False),
    Column("strategy_id", String(24), nullable=False),
    Column("strategy_name", String(100), nullable=False),
    Column("instrument", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", Money(), nullable=False),
    Column("entry_price", Money(), nullable=False),
    Column("exit_price", Money()),
    Column("entry_time", UtcDateTime(), nullable=False),
    Column("exit_time", UtcDateTime()),
    Column("pnl", Money()),
    Column("fees", Money(), nullable=False, server_default="0"),
    Column("status", String(8), nullable=False),
    Column("broker", String(32)),
    Column("environment", String(8)),
)
# The figures, defined once (DESIGN.md, "Storage shapes"); every PnL figure uses these.
# A trade counts in PnL, win rate and drawdown when it is closed and has an exit time
# (its UTC exit day is its day). A NULL pnl counts as 0, so such a trade nets -fees.
COUNTED = and_(trades.c.status == "closed", trades.c.exit_time.is_not(None))
GROSS_PNL = func.coalesce(trades.c.pnl, 0, type_=Money())
NET_PNL = GROSS_PNL - trades.c.fees
IS_WIN = NET_PNL > 0


def net_pnl(pnl: Decimal | None, fees: Decimal) -> Decimal:
    """The net PnL of one counted trade, in Python: the same as `NET_PNL`."""
    return (pnl or Decimal(0)) - fees


Index("ix_trades_user_entry", trades.c.user_id, trades.c.entry_time.desc())
Index("ix_trades_strategy_entry", trades.c.strategy_id, trades.c.entry_time.desc())
Index(
    "ix_trades_user_strategy_name_entry",
    trades.c.user_id,
    trades.c.strategy_name,
    trades.c.entry_time.desc(),
)

Partition = Literal["user", "strategy"]


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One trade; `side`, `status` and `environment` upper-case as in the API."""

    id: str
    user_id: str
    strategy_id: str
    strategy_name: str
    instrument: str
    side: str
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal | None
    entry_time: datetime
    exit_time: datetime | None
    pnl: Decimal | None
    fees: Decimal
    status: str
    broker: str | None
    environment: str | None


@dataclass(frozen=True, slots=True)
class TradeFilter:
    """Conditions on a trades list; `from_time` inclusive and `to_time` exclusive, on entry."""

    strategy_id: str | None = None
    instrument: str | None = None
    status: str | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class TradeCursor:
    """A position in the (entry time desc, id desc) order of a trades list."""

    entry_time: datetime
    id: int


@dataclass(frozen=True, slots=True)
class TradePageKey:
    """One page of the trades of a user (`partition="user"`) or of one strategy."""

    partition: Partition
    owner: str
    first: int
    filter: TradeFilter = field(default_factory=TradeFilter)
    after: TradeCursor | None = None


@dataclass(frozen=True, slots=True)
class TradeCountKey:
    """How many trades a user or a strategy has under a filter."""

    partition: Partition
    owner: str
    filter: TradeFilter = field(default_factory=TradeFilter)


@dataclass(frozen=True, slots=True)
class TradeSummary:
    """A user's lifetime trading figures; PnL counts closed trades only."""

    trades: int = 0
    closed: int = 0
    wins: int = 0
    gross_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    net_pnl: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class DailyPnl:
    """Net PnL and closed-trade count of one UTC day (the day of each trade's exit)."""

    day: date
    trades: int
    net_pnl: Decimal


# A trade's fields, defined once (datasources/_fields.py): every column but the id, how it
# is read into the record and written, and which the API shows.
FIELDS: tuple[StoredField, ...] = (
    StoredField("user_id", "user_id", shown=False, required=True),
    StoredField("strategy_id", "strategy_id", required=True),
    StoredField("strategy_name", "strategy_name", required=True),
    StoredField("instrument", "instrument", required=True),
    StoredField("side", "side", load=upper, store=lower, required=True),
    StoredField("quantity", "quantity", required=True),
    StoredField("entry_price", "entry_price", required=True),
    StoredField("exit_price", "exit_price"),
    StoredField("entry_time", "entry_time", required=True),
    StoredField("exit_time", "exit_time"),
    StoredField("pnl", "pnl"),
    StoredField("fees", "fees", Decimal(0)),
    StoredField("status", "status", load=upper, store=lower, required=True),
    StoredField("broker", "broker"),
    StoredField("environment", "environment", load=upper_or_none, store=lower_or_none),
)


# A trade as read: its id, then every field's column, in TradeRecord's order (`Read`
# checks it), each made into the record's value in the same step.
_TRADE_COLUMNS = (trades.c.id, *(trades.c[field.stored] for field in FIELDS))
_TRADE_LOADS: dict[str, Callable[[Any], Any]] = {
    "id": str,
    **{field.stored: field.load for field in FIELDS if field.load is not as_is},
}


def _partition_column(partition: Partition) -> ColumnElement[str]:
    return trades.c.user_id if partition == "user" else trades.c.strategy_id


def _filter_values(trade_filter: TradeFilter) -> dict[str, Any]:
    """The filter's conditions that apply, by bind name (see `_filter_conditions`)."""
    values: dict[str, Any] = {}
    if trade_filter.strategy_id is not None:
        values["strategy_id"] = trade_filter.strategy_id
    if trade_filter.instrument is not None:
        values["instrument"] = trade_filter.instrument
    if trade_filter.status is not None:
        values["status"] = trade_filter.status.lower()
    if trade_filter.from_time is not None:
        values["from_time"] = trade_filter.from_time
    if trade_filter.to_time is not None:
        values["to_time"] = trade_filter.to_time
    return values


def _filter_conditions(names: Iterable[str]) -> list[ColumnElement[bool]]:
    conditions = {
        "strategy_id": lambda: trades.c.strategy_id == bindparam("strategy_id"),
        "instrument": lambda: trades.c.instrument == bindparam("instrument"),
        "status": lambda: trades.c.status == bindparam("status"),
        "from_time": lambda: trades.c.entry_time >= bindparam("from_time"),
        "to_time": lambda: trades.c.entry_time < bindparam("to_time"),
    }
    return [conditions[name]() for name in names]


def _scoped(user_ids: Sequence[str] | None, values: dict[str, Any]) -> Count:
    """Bind the scope's user ids (None: every user's); how many there are."""
    if user_ids is not None:
        values["user_ids"] = bound(user_ids)
    return count_of(user_ids)


def _these_users(user_ids: Sequence[str], values: dict[str, Any]) -> Count:
    """Bind the users a per-user figure is read for: always a list (an empty one matches
    no row), never every user's, even if a caller passed None past the type checker."""
    if user_ids is None:
        raise TypeError("per-user figures need the users' ids")
    values["user_ids"] = bound(user_ids)
    return "one" if len(user_ids) == 1 else "many"


def _scope_conditions(users: Count, dialect: str) -> list[ColumnElement[bool]]:
    return [] if users == "none" else [one_of(trades.c.user_id, "user_ids", dialect, users)]


@functools.cache
def _pages_read(
    dialect: str,
    partition: Partition,
    owners: Count,
    users: Count,
    filters: tuple[str, ...],
    after: bool,
) -> Read[TradeRecord]:
    column = _partition_column(partition)
    conditions = [
        one_of(column, "owners", dialect, owners),
        *_scope_conditions(users, dialect),
        *_filter_conditions(filters),
    ]
    if after:
        cursor_time = bindparam("after_time", type_=trades.c.entry_time.type)
        conditions.append(
            or_(
                trades.c.entry_time < cursor_time,
                and_(trades.c.entry_time == cursor_time, trades.c.id < bindparam("after_id")),
            )
        )
    order = (trades.c.entry_time.desc(), trades.c.id.desc())
    limit = bindparam("limit", type_=Integer())
    if owners == "one":
        query = select(*_TRADE_COLUMNS).where(*conditions).order_by(*order).limit(limit)
        return Read(query, TradeRecord, _TRADE_LOADS)
    rank = func.row_number().over(partition_by=column, order_by=order).label("rank")
    ranked = select(*_TRADE_COLUMNS, rank).where(*conditions).subquery()
    query = (
        select(*(ranked.c[c.name] for c in _TRADE_COLUMNS))
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c[column.name], ranked.c.entry_time.desc(), ranked.c.id.desc())
    )
    return Read(query, TradeRecord, _TRADE_LOADS)


async def find_trade_pages(
    *,
    conn: ReadConnection,
    partition: Partition,
    owners: Sequence[str],
    user_ids: Sequence[str] | None,
    trade_filter: TradeFilter,
    limit: int,
    after: TradeCursor | None,
) -> list[TradeRecord]:
    """Up to `limit` trades per owner (a user or a strategy), newest entry first, in one query.

    Only rows of `user_ids` are read (None: every user's), whatever the owners.
    """
    values = _filter_values(trade_filter)
    filters = tuple(values)
    values["owners"] = bound(owners)
    values["limit"] = limit
    users = _scoped(user_ids, values)
    if after is not None:
        values["after_time"] = after.entry_time
        values["after_id"] = after.id
    shape = (partition, count_of(owners), users, filters, after is not None)
    read = _pages_read(dialect_of(conn), *shape)
    return await fetch_all(conn, read, values)


@functools.cache
def _by_id_read(dialect: str, ids: Count, users: Count) -> Read[TradeRecord]:
    conditions = [one_of(trades.c.id, "ids", dialect, ids)]
    conditions += _scope_conditions(users, dialect)
    return Read(select(*_TRADE_COLUMNS).where(*conditions), TradeRecord, _TRADE_LOADS)


async def find_trades(
    *, conn: ReadConnection, ids: Sequence[int], user_ids: Sequence[str] | None
) -> list[TradeRecord]:
    """The trades with these ids owned by one of `user_ids` (None: any user's), in one query."""
    values: dict[str, Any] = {"ids": bound(ids)}
    users = _scoped(user_ids, values)
    return await fetch_all(conn, _by_id_read(dialect_of(conn), count_of(ids), users), values)


@functools.cache
def _count_read(
    dialect: str, partition: Partition, owners: Count, users: Count, filters: tuple[str, ...]
) -> Read[tuple[Any, ...]]:
    column = _partition_column(partition)
    query = (
        select(column, func.count())
        .where(
            one_of(column, "owners", dialect, owners),
            *_scope_conditions(users, dialect),
            *_filter_conditions(filters),
        )
        .group_by(column)
    )
    return Read(query, as_tuple)


async def count_trades(
    *,
    conn: ReadConnection,
    partition: Partition,
    owners: Sequence[str],
    user_ids: Sequence[str] | None,
    trade_filter: TradeFilter,
) -> dict[str, int]:
    """The number of trades of each owner under the filter (one GROUP BY)."""
    values = _filter_values(trade_filter)
    filters = tuple(values)
    values["owners"] = bound(owners)
    users = _scoped(user_ids, values)
    read = _count_read(dialect_of(conn), partition, count_of(owners), users, filters)
    return {owner: int(n) for owner, n in await fetch_all(conn, read, values)}


@functools.cache
def _summary_read(dialect: str, users: Count) -> Read[tuple[Any, ...]]:
    query = (
        select(
            trades.c.user_id,
            func.count(),
            func.sum(case((COUNTED, 1), else_=0)),
            func.sum(case((and_(COUNTED, IS_WIN), 1), else_=0)),
            func.sum(case((COUNTED, GROSS_PNL)), type_=Money()),
            func.sum(case((COUNTED, trades.c.fees)), type_=Money()),
            func.sum(case((COUNTED, NET_PNL)), type_=Money()),
        )
        .where(*_scope_conditions(users, dialect))
        .group_by(trades.c.user_id)
    )
    return Read(query, as_tuple)


async def summarize_trades(
    *, conn: ReadConnection, user_ids: Sequence[str]
) -> dict[str, TradeSummary]:
    """Lifetime figures per user: all trades in `trades`, PnL over `COUNTED` ones (one GROUP BY)."""
    values: dict[str, Any] = {}
    read = _summary_read(dialect_of(conn), _these_users(user_ids, values))
    return {
        row[0]: TradeSummary(
            trades=int(row[1]),
            closed=int(row[2] or 0),
            wins=int(row[3] or 0),
            gross_pnl=row[4] or Decimal(0),
            fees=row[5] or Decimal(0),
            net_pnl=row[6] or Decimal(0),
        )
        for row in await fetch_all(conn, read, values)
    }


@functools.cache
def _daily_read(dialect: str, users: Count) -> Read[tuple[Any, ...]]:
    day = utc_day(trades.c.exit_time)
    query = (
        select(
            trades.c.user_id,
            day.label("day"),
            func.count(),
            func.sum(NET_PNL, type_=Money()),
        )
        .where(*_scope_conditions(users, dialect), COUNTED)
        .group_by(trades.c.user_id, day)
        .order_by(trades.c.user_id, day)
    )
    return Read(query, as_tuple)


async def daily_net_pnl(
    *, conn: ReadConnection, user_ids: Sequence[str]
) -> dict[str, list[DailyPnl]]:
    """Per user, the net PnL of closed trades grouped by UTC exit day, oldest day first."""
    values: dict[str, Any] = {}
    read = _daily_read(dialect_of(conn), _these_users(user_ids, values))
    result: dict[str, list[DailyPnl]] = {}
    for user_id, on, n, net in await fetch_all(conn, read, values):
        result.setdefault(user_id, []).append(
            DailyPnl(day=_as_date(on), trades=int(n), net_pnl=net or Decimal(0))
        )
    return result


def _as_date(value: date | str) -> date:
    # SQLite returns the day as text when the expression's type is not applied.
    return value if isinstance(value, date) else date.fromisoformat(value)


async def insert_trades(*, conn: AsyncConnection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert trades given as record fields (`FIELDS`; `side`, `status` in either case)."""
    values = [store_fields(FIELDS, row) for row in rows]
    if values:
        await conn.execute(insert(trades), values)


def _owner_of(partition: Partition) -> Callable[[TradeRecord], str]:
    if partition == "user":
        return lambda trade: trade.user_id
    return lambda trade: trade.strategy_id


class TradesSource(SqlSource):
    """The trades source: the `trades` table."""

    name = "trades"
    metadata = metadata
    migrations = MIGRATIONS / "trades"

    async def forget_user(self, user_id: str) -> None:
        """Remove every trade of the user."""
        async with self.engine.begin() as conn:
            await delete_user_trades(conn=conn, user_id=user_id)

    def loaders(self, scope: Scope) -> TradeLoaders:
        """The trades source's loaders for one request."""
        return TradeLoaders(self, scope)


class TradeLoaders:
    """The trades source's per-request loaders."""

    def __init__(self, source: SqlSource, scope: Scope) -> None:
        self._source = source
        self._scope = scope
        self.by_id: DataLoader[str, TradeRecord | None] = source.loader(self._load_by_id)
        self.page: DataLoader[TradePageKey, Page[TradeRecord]] = source.loader(self._load_pages)
        self.count: DataLoader[TradeCountKey, int] = source.loader(self._load_counts)
        self.summary: DataLoader[str, TradeSummary] = source.loader(self._load_summaries)
        self.daily: DataLoader[str, list[DailyPnl]] = source.loader(self._load_daily)

    async def _load_by_id(self, keys: list[str]) -> list[TradeRecord | None]:
        ids = sql_ids(keys)
        rows = (
            await self._source.fetch(
                lambda conn: find_trades(conn=conn, ids=ids, user_ids=self._scope.owners),
                kind="lookup",
            )
            if ids
            else []
        )
        return in_key_order(keys, rows, lambda trade: trade.id)

    async def _load_pages(self, keys: list[TradePageKey]) -> list[Page[TradeRecord]]:
        groups = grouped(keys, lambda k: (k.partition, k.filter, k.first, k.after))

        async def fetch(conn: ReadConnection) -> dict[TradePageKey, Page[TradeRecord]]:
            pages: dict[TradePageKey, Page[TradeRecord]] = {}
            for (partition, trade_filter, first, after), group in groups.items():
                rows = await find_trade_pages(
                    conn=conn,
                    partition=partition,
                    owners=list(dict.fromkeys(key.owner for key in group)),
                    user_ids=self._scope.owners,
                    trade_filter=trade_filter,
                    limit=first + 1,
                    after=after,
                )
                by_owner = grouped(rows, _owner_of(partition))
                for key in group:
                    pages[key] = paginate(by_owner.get(key.owner, []), key.first)
            return pages

        pages = await self._source.fetch(fetch, kind="lookup")
        return [pages[key] for key in keys]

    async def _load_counts(self, keys: list[TradeCountKey]) -> list[int]:
        groups = grouped(keys, lambda k: (k.partition, k.filter))

        async def fetch(conn: ReadConnection) -> dict[TradeCountKey, int]:
            counts: dict[TradeCountKey, int] = {}
            for (partition, trade_filter), group in groups.items():
                found = await count_trades(
                    conn=conn,
                    partition=partition,
                    owners=list(dict.fromkeys(key.owner for key in group)),
                    user_ids=self._scope.owners,
                    trade_filter=trade_filter,
                )
                for key in group:
                    counts[key] = found.get(key.owner, 0)
            return counts

        counts = await self._source.fetch(fetch, kind="aggregate")
        return [counts[key] for key in keys]

    async def _load_summaries(self, keys: list[str]) -> list[TradeSummary]:
        users = self._scope.visible(keys)
        found: dict[str, TradeSummary] = {}
        if users:
            found = await self._source.fetch(
                lambda conn: summarize_trades(conn=conn, user_ids=users), kind="aggregate"
            )
        return [found.get(key, TradeSummary()) for key in keys]

    async def _load_daily(self, keys: list[str]) -> list[list[DailyPnl]]:
        users = self._scope.visible(keys)
        found: dict[str, list[DailyPnl]] = {}
        if users:
            found = await self._source.fetch(
                lambda conn: daily_net_pnl(conn=conn, user_ids=users), kind="aggregate"
            )
        return [found.get(key, []) for key in keys]


# Account deletion (see resolvers/deletion.py).


async def delete_user_trades(*, conn: AsyncConnection, user_id: str) -> int:
    """Remove every trade of a user; idempotent. Returns how many rows were removed."""
    result = await conn.execute(delete(trades).where(trades.c.user_id == user_id))
    return result.rowcount
