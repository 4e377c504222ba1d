"""The analytics source: daily strategy metrics rolled up from trades, and activity events."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Date,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from datasources._batch import Scope, grouped, in_key_order
from datasources._sql import MIGRATIONS, BigIntId, Money, SqlSource, UtcDateTime, sql_ids
from datasources._sql_reads import (
    Count,
    Read,
    ReadConnection,
    bound,
    count_of,
    dialect_of,
    fetch_all,
    one_of,
)
from datasources.outbox import Event
from datasources.trades import COUNTED, net_pnl, trades

metadata = MetaData()

daily_strategy_metrics = Table(
    "daily_strategy_metrics",
    metadata,
    Column("user_id", String(24), nullable=False),
    Column("strategy_id", String(24), nullable=False),
    Column("day", Date(), nullable=False),
    Column("trades", Integer(), nullable=False),
    Column("wins", Integer(), nullable=False),
    Column("losses", Integer(), nullable=False),
    Column("gross_pnl", Money(), nullable=False),
    Column("fees", Money(), nullable=False),
    Column("net_pnl", Money(), nullable=False),
    Column("volume", Money(), nullable=False),
    PrimaryKeyConstraint("strategy_id", "day", name="pk_daily_strategy_metrics"),
)
Index("ix_daily_metrics_user_day", daily_strategy_metrics.c.user_id, daily_strategy_metrics.c.day)

activity_events = Table(
    "activity_events",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("user_id", String(24), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("subject_id", String(64)),
    Column("at", UtcDateTime(), nullable=False),
    Column("data", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    # The outbox event's id (datasources/outbox.py): delivering an event twice records it
    # once. Rows written before the outbox, and history imported, have none.
    Column("event_id", String(32)),
)
Index("ix_activity_user_at", activity_events.c.user_id, activity_events.c.at.desc())
Index("ux_activity_event_id", activity_events.c.event_id, unique=True)


@dataclass(frozen=True, slots=True)
class DailyMetricRecord:
    """One strategy's figures for one UTC day."""

    user_id: str
    strategy_id: str
    day: date
    trades: int
    wins: int
    losses: int
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class ActivityEventRecord:
    """Something that happened to a user's account or strategies."""

    id: str
    user_id: str
    kind: str
    subject_id: str | None
    at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MetricsKey:
    """A user's daily metrics between two days (inclusive), optionally for one strategy."""

    user_id: str
    from_day: date | None = None
    to_day: date | None = None
    strategy_id: str | None = None


@dataclass(frozen=True, slots=True)
class ActivityKey:
    """A user's most recent activity events."""

    user_id: str
    limit: int = 20


@dataclass(slots=True)
class _Accumulator:
    user_id: str
    trades: int = 0
    wins: int = 0
    losses: int = 0
    gross_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    volume: Decimal = Decimal(0)
    net_pnl: Decimal = field(default=Decimal(0))


# The columns of each record, in its order (`Read` checks it).
_METRIC_COLUMNS = tuple(daily_strategy_metrics.c)
_EVENT_COLUMNS = tuple(c for c in activity_events.c if c.name != "event_id")
_EVENT_LOADS: dict[str, Callable[[Any], Any]] = {"id": str, "data": lambda data: data or {}}


@functools.cache
def _metrics_read(
    dialect: str, users: Count, strategies: Count, from_day: bool, to_day: bool
) -> Read[DailyMetricRecord]:
    table = daily_strategy_metrics
    conditions: list[ColumnElement[bool]] = []
    if users != "none":
        conditions.append(one_of(table.c.user_id, "user_ids", dialect, users))
    if strategies != "none":
        conditions.append(one_of(table.c.strategy_id, "strategy_ids", dialect, strategies))
    if from_day:
        conditions.append(table.c.day >= bindparam("from_day"))
    if to_day:
        conditions.append(table.c.day <= bindparam("to_day"))
    query = select(*_METRIC_COLUMNS).where(*conditions).order_by(table.c.day, table.c.strategy_id)
    return Read(query, DailyMetricRecord)


async def find_daily_metrics(
    *,
    conn: ReadConnection,
    user_ids: Sequence[str] | None,
    strategy_ids: Sequence[str] | None = None,
    from_day: date | None = None,
    to_day: date | None = None,
) -> list[DailyMetricRecord]:
    """Daily metrics of these users (None: all) and strategies (None: all), oldest day first."""
    values: dict[str, Any] = {}
    if from_day is not None:
        values["from_day"] = from_day
    if to_day is not None:
        values["to_day"] = to_day
    if user_ids is not None:
        values["user_ids"] = bound(user_ids)
    if strategy_ids is not None:
        values["strategy_ids"] = bound(strategy_ids)
    read = _metrics_read(
        dialect_of(conn),
        count_of(user_ids),
        count_of(strategy_ids),
        from_day is not None,
        to_day is not None,
    )
    return await fetch_all(conn, read, values)


@functools.cache
def _events_read(dialect: str, ids: Count, users: Count) -> Read[ActivityEventRecord]:
    table = activity_events
    conditions = [one_of(table.c.id, "ids", dialect, ids)]
    if users != "none":
        conditions.append(one_of(table.c.user_id, "user_ids", dialect, users))
    return Read(select(*_EVENT_COLUMNS).where(*conditions), ActivityEventRecord, _EVENT_LOADS)


async def find_activity_events(
    *, conn: ReadConnection, ids: Sequence[int], user_ids: Sequence[str] | None
) -> list[ActivityEventRecord]:
    """The events with these ids owned by one of `user_ids` (None: any user's), in one query."""
    values: dict[str, Any] = {"ids": bound(ids)}
    if user_ids is not None:
        values["user_ids"] = bound(user_ids)
    read = _events_read(dialect_of(conn), count_of(ids), count_of(user_ids))
    return await fetch_all(conn, read, values)


@functools.cache
def _recent_read(dialect: str, users: Count) -> Read[ActivityEventRecord]:
    table = activity_events
    order = (table.c.at.desc(), table.c.id.desc())
    limit = bindparam("limit", type_=Integer())
    user = one_of(table.c.user_id, "user_ids", dialect, users)
    if users == "one":
        query = select(*_EVENT_COLUMNS).where(user).order_by(*order).limit(limit)
        return Read(query, ActivityEventRecord, _EVENT_LOADS)
    rank = func.row_number().over(partition_by=table.c.user_id, order_by=order).label("rank")
    ranked = select(*_EVENT_COLUMNS, rank).where(user).subquery()
    query = (
        select(*(ranked.c[c.name] for c in _EVENT_COLUMNS))
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c.user_id, ranked.c.at.desc(), ranked.c.id.desc())
    )
    return Read(query, ActivityEventRecord, _EVENT_LOADS)


async def find_recent_activity(
    *, conn: ReadConnection, user_ids: Sequence[str], limit: int
) -> list[ActivityEventRecord]:
    """Up to `limit` newest events per user, newest first, in one query."""
    values = {"user_ids": bound(user_ids), "limit": limit}
    return await fetch_all(conn, _recent_read(dialect_of(conn), count_of(user_ids)), values)


async def record_activity(
    *,
    conn: AsyncConnection,
    user_id: str,
    kind: str,
    subject_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one activity event for a user."""
    await conn.execute(
        insert(activity_events).values(
            user_id=user_id,
            kind=kind,
            subject_id=subject_id,
            at=at or datetime.now(UTC),
            data=dict(data or {}),
        )
    )


async def record_events(*, conn: AsyncConnection, events: Sequence[Event]) -> None:
    """Record outbox events, each once: an event already recorded (delivered before, or by
    a concurrent delivery) is skipped."""
    if not events:
        return
    rows = [
        {
            "event_id": item.id,
            "user_id": item.user_id,
            "kind": item.kind,
            "subject_id": item.subject_id,
            "at": item.at,
            "data": dict(item.data),
        }
        for item in events
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(activity_events).values(rows)
    await conn.execute(statement.on_conflict_do_nothing(index_elements=["event_id"]))


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one analytics refresh did."""

    trades_read: int
    rows_written: int
    since: date | None


async def refresh_daily_metrics(
    *,
    trades_engine: AsyncEngine,
    analytics_engine: AsyncEngine,
    since: date | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    batch_size: int = 5000,
    user_ids: Sequence[str] | None = None,
) -> RefreshResult:
    """Recompute `daily_strategy_metrics` from closed trades, for every day from `since` on,
    of every user or of `user_ids` only.

    Idempotent: the days in range are deleted and rewritten in one transaction,
    so running it twice leaves the same rows. `on_progress(done, total)` is
    called as trades are read.
    """
    if user_ids is not None:
        # A chunk of users at a time, each a refresh of its own (within SQLite's limit on
        # bound parameters).
        users = list(dict.fromkeys(user_ids))
        step = min(batch_size, 500)
        read = written = 0
        for start in range(0, len(users), step):
            done = await _refresh(
                trades_engine,
                analytics_engine,
                since,
                None,
                batch_size,
                users[start : start + step],
            )
            read += done.trades_read
            written += done.rows_written
            if on_progress:
                on_progress(min(start + step, len(users)), len(users))
        return RefreshResult(trades_read=read, rows_written=written, since=since)
    return await _refresh(trades_engine, analytics_engine, since, on_progress, batch_size, None)


async def _refresh(
    trades_engine: AsyncEngine,
    analytics_engine: AsyncEngine,
    since: date | None,
    on_progress: Callable[[int, int], None] | None,
    batch_size: int,
    users: Sequence[str] | None,
) -> RefreshResult:
    closed = [COUNTED]
    if since is not None:
        closed.append(trades.c.exit_time >= datetime.combine(since, time.min, tzinfo=UTC))
    if users is not None:
        closed.append(trades.c.user_id.in_(users))
    totals: dict[tuple[str, date], _Accumulator] = {}
    read = 0
    async with trades_engine.connect() as conn:
        total = int((await conn.execute(select(func.count()).where(*closed))).scalar_one())
        if on_progress:
            on_progress(0, total)
        columns = [
            trades.c.user_id,
            trades.c.strategy_id,
            trades.c.exit_time,
            trades.c.quantity,
            trades.c.entry_price,
            trades.c.pnl,
            trades.c.fees,
        ]
        result = await conn.stream(select(*columns).where(*closed).order_by(trades.c.id))
        async for chunk in result.partitions(batch_size):
            for user_id, strategy_id, exit_time, quantity, price, pnl, fees in chunk:
                bucket = totals.setdefault(
                    (strategy_id, exit_time.astimezone(UTC).date()), _Accumulator(user_id)
                )
                gross = pnl or Decimal(0)
                net = net_pnl(pnl, fees)
                bucket.trades += 1
                bucket.wins += net > 0
                bucket.losses += net < 0
                bucket.gross_pnl += gross
                bucket.fees += fees
                bucket.net_pnl += net
                bucket.volume += quantity * price
            read += len(chunk)
            if on_progress:
                on_progress(read, total)
    rows = [
        {
            "user_id": acc.user_id,
            "strategy_id": strategy_id,
            "day": day,
            "trades": acc.trades,
            "wins": acc.wins,
            "losses": acc.losses,
            "gross_pnl": acc.gross_pnl,
            "fees": acc.fees,
            "net_pnl": acc.net_pnl,
            "volume": acc.volume,
        }
        for (strategy_id, day), acc in sorted(totals.items())
    ]
    async with analytics_engine.begin() as conn:
        stale = delete(daily_strategy_metrics)
        if since is not None:
            stale = stale.where(daily_strategy_metrics.c.day >= since)
        if users is not None:
            stale = stale.where(daily_strategy_metrics.c.user_id.in_(users))
        await conn.execute(stale)
        for start in range(0, len(rows), batch_size):
            await conn.execute(insert(daily_strategy_metrics), rows[start : start + batch_size])
    await _drop_vanished_users(
        trades_engine=trades_engine,
        analytics_engine=analytics_engine,
        user_ids=sorted({acc.user_id for acc in totals.values()}),
        batch_size=batch_size,
    )
    return RefreshResult(trades_read=read, rows_written=len(rows), since=since)


async def _drop_vanished_users(
    *,
    trades_engine: AsyncEngine,
    analytics_engine: AsyncEngine,
    user_ids: Sequence[str],
    batch_size: int,
) -> None:
    """Delete the just-written metrics of users who no longer have any trade.

    An account deletion may remove a user's trades and then its analytics while
    a refresh runs: the refresh read the trades before, and its insert of the
    user's metrics can commit after the deletion's analytics step (which cannot
    see, or wait for, rows not yet committed). So this check runs after the
    commit: the deletion removes trades before analytics, so either its trades
    step is done by now and the rows go here, or its analytics step is still to
    come and removes them then.
    """
    step = min(batch_size, 500)  # keep within SQLite's bound-parameter limit
    for start in range(0, len(user_ids), step):
        chunk = list(user_ids[start : start + step])
        async with trades_engine.connect() as conn:
            query = select(trades.c.user_id).where(trades.c.user_id.in_(chunk)).distinct()
            present = set((await conn.execute(query)).scalars())
        gone = [user_id for user_id in chunk if user_id not in present]
        if gone:
            async with analytics_engine.begin() as conn:
                await conn.execute(
                    delete(daily_strategy_metrics).where(daily_strategy_metrics.c.user_id.in_(gone))
                )


class AnalyticsSource(SqlSource):
    """The analytics source: `daily_strategy_metrics` and `activity_events`."""

    name = "analytics"
    metadata = metadata

    migrations = MIGRATIONS / "analytics"

    def _adopt(self, conn: Connection) -> None:
        """Bring tables created before versions to the first version: create what is
        missing, and give an `activity_events` table from before the outbox its `event_id`."""
        self.metadata.create_all(conn)
        _add_event_id(conn)

    async def forget_user(self, user_id: str) -> None:
        """Remove the user's daily metrics and activity events."""
        async with self.engine.begin() as conn:
            await delete_user_analytics(conn=conn, user_id=user_id)

    def loaders(self, scope: Scope) -> AnalyticsLoaders:
        """The analytics source's loaders for one request."""
        return AnalyticsLoaders(self, scope)


def _add_event_id(conn: Connection) -> None:
    columns = {column["name"] for column in inspect(conn).get_columns(activity_events.name)}
    if "event_id" not in columns:
        conn.execute(text("ALTER TABLE activity_events ADD COLUMN event_id VARCHAR(32)"))
    for index in activity_events.indexes:
        index.create(conn, checkfirst=True)


class AnalyticsLoaders:
    """The analytics source's per-request loaders."""

    def __init__(self, source: SqlSource, scope: Scope) -> None:
        self._source = source
        self._scope = scope
        self.metrics: DataLoader[MetricsKey, list[DailyMetricRecord]] = source.loader(
            self._load_metrics
        )
        self.by_strategy: DataLoader[str, list[DailyMetricRecord]] = source.loader(
            self._load_by_strategy
        )
        self.activity: DataLoader[ActivityKey, list[ActivityEventRecord]] = source.loader(
            self._load_activity
        )
        self.event_by_id: DataLoader[str, ActivityEventRecord | None] = source.loader(
            self._load_events_by_id
        )

    async def _load_metrics(self, keys: list[MetricsKey]) -> list[list[DailyMetricRecord]]:
        groups = grouped(keys, lambda k: (k.from_day, k.to_day, k.strategy_id))

        async def fetch(conn: ReadConnection) -> dict[MetricsKey, list[DailyMetricRecord]]:
            found: dict[MetricsKey, list[DailyMetricRecord]] = {}
            for (from_day, to_day, strategy_id), group in groups.items():
                users = self._scope.visible(key.user_id for key in group)
                rows = (
                    await find_daily_metrics(
                        conn=conn,
                        user_ids=users,
                        strategy_ids=None if strategy_id is None else [strategy_id],
                        from_day=from_day,
                        to_day=to_day,
                    )
                    if users
                    else []
                )
                by_user = grouped(rows, lambda row: row.user_id)
                for key in group:
                    found[key] = by_user.get(key.user_id, [])
            return found

        found = await self._source.fetch(fetch, kind="lookup")
        return [found[key] for key in keys]

    async def _load_by_strategy(self, keys: list[str]) -> list[list[DailyMetricRecord]]:
        strategy_ids = list(dict.fromkeys(keys))
        rows = await self._source.fetch(
            lambda conn: find_daily_metrics(
                conn=conn, user_ids=self._scope.owners, strategy_ids=strategy_ids
            ),
            kind="lookup",
        )
        by_strategy = grouped(rows, lambda row: row.strategy_id)
        return [by_strategy.get(key, []) for key in keys]

    async def _load_activity(self, keys: list[ActivityKey]) -> list[list[ActivityEventRecord]]:
        groups = grouped(keys, lambda k: k.limit)

        async def fetch(conn: ReadConnection) -> dict[ActivityKey, list[ActivityEventRecord]]:
            found: dict[ActivityKey, list[ActivityEventRecord]] = {}
            for limit, group in groups.items():
                users = self._scope.visible(key.user_id for key in group)
                rows = (
                    await find_recent_activity(conn=conn, user_ids=users, limit=limit)
                    if users
                    else []
                )
                by_user = grouped(rows, lambda row: row.user_id)
                for key in group:
                    found[key] = by_user.get(key.user_id, [])
            return found

        found = await self._source.fetch(fetch, kind="lookup")
        return [found[key] for key in keys]

    async def _load_events_by_id(self, keys: list[str]) -> list[ActivityEventRecord | None]:
        ids = sql_ids(keys)
        rows = (
            await self._source.fetch(
                lambda conn: find_activity_events(conn=conn, ids=ids, user_ids=self._scope.owners),
                kind="lookup",
            )
            if ids
            else []
        )
        return in_key_order(keys, rows, lambda event: event.id)


# Account deletion (see resolvers/deletion.py).


async def delete_user_analytics(*, conn: AsyncConnection, user_id: str) -> int:
    """Remove a user's daily metrics and activity events; idempotent. Returns rows removed."""
    metrics = await conn.execute(
        delete(daily_strategy_metrics).where(daily_strategy_metrics.c.user_id == user_id)
    )
    events = await conn.execute(delete(activity_events).where(activity_events.c.user_id == user_id))
    return metrics.rowcount + events.rowcount
