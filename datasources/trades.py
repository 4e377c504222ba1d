"""The trades source: the `trades` table, on PostgreSQL in production and SQLite embedded."""

from __future__ import annotations

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
    MetaData,
    Row,
    String,
    Table,
    and_,
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
    lower,
    lower_or_none,
    read_fields,
    store_fields,
    upper,
    upper_or_none,
)
from datasources._sql import MIGRATIONS, BigIntId, Money, SqlSource, UtcDateTime, sql_ids, utc_day

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


def _record(row: Row[Any]) -> TradeRecord:
    return TradeRecord(id=str(row.id), **read_fields(FIELDS, row._mapping))


def _partition_column(partition: Partition) -> ColumnElement[str]:
    return trades.c.user_id if partition == "user" else trades.c.strategy_id


def _conditions(
    *, user_ids: Sequence[str] | None, trade_filter: TradeFilter
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if user_ids is not None:
        conditions.append(trades.c.user_id.in_(user_ids))
    if trade_filter.strategy_id is not None:
        conditions.append(trades.c.strategy_id == trade_filter.strategy_id)
    if trade_filter.instrument is not None:
        conditions.append(trades.c.instrument == trade_filter.instrument)
    if trade_filter.status is not None:
        conditions.append(trades.c.status == trade_filter.status.lower())
    if trade_filter.from_time is not None:
        conditions.append(trades.c.entry_time >= trade_filter.from_time)
    if trade_filter.to_time is not None:
        conditions.append(trades.c.entry_time < trade_filter.to_time)
    return conditions


def _after(cursor: TradeCursor) -> ColumnElement[bool]:
    return or_(
        trades.c.entry_time < cursor.entry_time,
        and_(trades.c.entry_time == cursor.entry_time, trades.c.id < cursor.id),
    )


async def find_trade_pages(
    *,
    conn: AsyncConnection,
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
    column = _partition_column(partition)
    conditions = [column.in_(owners), *_conditions(user_ids=user_ids, trade_filter=trade_filter)]
    if after is not None:
        conditions.append(_after(after))
    order = (trades.c.entry_time.desc(), trades.c.id.desc())
    if len(owners) == 1:
        query = select(trades).where(*conditions).order_by(*order).limit(limit)
        return [_record(row) for row in await conn.execute(query)]
    rank = func.row_number().over(partition_by=column, order_by=order).label("rank")
    ranked = select(trades, rank).where(*conditions).subquery()
    query = (
        select(ranked)
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c[column.name], ranked.c.entry_time.desc(), ranked.c.id.desc())
    )
    return [_record(row) for row in await conn.execute(query)]


async def find_trades(
    *, conn: AsyncConnection, ids: Sequence[int], user_ids: Sequence[str] | None
) -> list[TradeRecord]:
    """The trades with these ids owned by one of `user_ids` (None: any user's), in one query."""
    conditions: list[ColumnElement[bool]] = [trades.c.id.in_(ids)]
    if user_ids is not None:
        conditions.append(trades.c.user_id.in_(user_ids))
    return [_record(row) for row in await conn.execute(select(trades).where(*conditions))]


async def count_trades(
    *,
    conn: AsyncConnection,
    partition: Partition,
    owners: Sequence[str],
    user_ids: Sequence[str] | None,
    trade_filter: TradeFilter,
) -> dict[str, int]:
    """The number of trades of each owner under the filter (one GROUP BY)."""
    column = _partition_column(partition)
    query = (
        select(column, func.count())
        .where(column.in_(owners), *_conditions(user_ids=user_ids, trade_filter=trade_filter))
        .group_by(column)
    )
    return {owner: int(n) for owner, n in await conn.execute(query)}


async def summarize_trades(
    *, conn: AsyncConnection, user_ids: Sequence[str]
) -> dict[str, TradeSummary]:
    """Lifetime figures per user: all trades in `trades`, PnL over `COUNTED` ones (one GROUP BY)."""
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
        .where(trades.c.user_id.in_(user_ids))
        .group_by(trades.c.user_id)
    )
    return {
        row[0]: TradeSummary(
            trades=int(row[1]),
            closed=int(row[2] or 0),
            wins=int(row[3] or 0),
            gross_pnl=row[4] or Decimal(0),
            fees=row[5] or Decimal(0),
            net_pnl=row[6] or Decimal(0),
        )
        for row in await conn.execute(query)
    }


async def daily_net_pnl(
    *, conn: AsyncConnection, user_ids: Sequence[str]
) -> dict[str, list[DailyPnl]]:
    """Per user, the net PnL of closed trades grouped by UTC exit day, oldest day first."""
    day = utc_day(trades.c.exit_time)
    query = (
        select(
            trades.c.user_id,
            day.label("day"),
            func.count(),
            func.sum(NET_PNL, type_=Money()),
        )
        .where(trades.c.user_id.in_(user_ids), COUNTED)
        .group_by(trades.c.user_id, day)
        .order_by(trades.c.user_id, day)
    )
    result: dict[str, list[DailyPnl]] = {}
    for user_id, on, n, net in await conn.execute(query):
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
            await self._source.read(
                lambda conn: find_trades(conn=conn, ids=ids, user_ids=self._scope.owners),
                kind="lookup",
            )
            if ids
            else []
        )
        return in_key_order(keys, rows, lambda trade: trade.id)

    async def _load_pages(self, keys: list[TradePageKey]) -> list[Page[TradeRecord]]:
        groups = grouped(keys, lambda k: (k.partition, k.filter, k.first, k.after))

        async def fetch(conn: AsyncConnection) -> dict[TradePageKey, Page[TradeRecord]]:
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

        pages = await self._source.read(fetch, kind="lookup")
        return [pages[key] for key in keys]

    async def _load_counts(self, keys: list[TradeCountKey]) -> list[int]:
        groups = grouped(keys, lambda k: (k.partition, k.filter))

        async def fetch(conn: AsyncConnection) -> dict[TradeCountKey, int]:
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

        counts = await self._source.read(fetch, kind="aggregate")
        return [counts[key] for key in keys]

    async def _load_summaries(self, keys: list[str]) -> list[TradeSummary]:
        users = self._scope.visible(keys)
        found: dict[str, TradeSummary] = {}
        if users:
            found = await self._source.read(
                lambda conn: summarize_trades(conn=conn, user_ids=users), kind="aggregate"
            )
        return [found.get(key, TradeSummary()) for key in keys]

    async def _load_daily(self, keys: list[str]) -> list[list[DailyPnl]]:
        users = self._scope.visible(keys)
        found: dict[str, list[DailyPnl]] = {}
        if users:
            found = await self._source.read(
                lambda conn: daily_net_pnl(conn=conn, user_ids=users), kind="aggregate"
            )
        return [found.get(key, []) for key in keys]


# Account deletion (see resolvers/deletion.py).


async def delete_user_trades(*, conn: AsyncConnection, user_id: str) -> int:
    """Remove every trade of a user; idempotent. Returns how many rows were removed."""
    result = await conn.execute(delete(trades).where(trades.c.user_id == user_id))
    return result.rowcount
