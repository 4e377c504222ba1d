"""The SQL sources' reads on PostgreSQL, run raw on asyncpg (datasources/_sql_reads.py): the
same results as through SQLAlchemy, every statement seen by the hook the round-trip
counts listen to (as many as PostgreSQL sees), driver errors mapped as before."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select, text
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.dashboard import PgWireCounter
from datasources import Scope, Shared, SourceLimits, Sources
from datasources import analytics as analytics_source
from datasources import trades as trades_source
from datasources._sql import create_engine
from datasources._sql_reads import RawConnection, Read, as_tuple, fetch_all
from datasources.analytics import ActivityKey, AnalyticsSource, MetricsKey
from datasources.trades import (
    TradeCountKey,
    TradeCursor,
    TradeFilter,
    TradePageKey,
    TradesSource,
)
from gateway.core.errors import SourceUnavailable
from tests.faults import url_via
from tests.helpers import NOW

# A read function with all but its connection given.
Read_ = Callable[..., Awaitable[Any]]
USER, OTHER = "a" * 24, "b" * 24
STRATEGIES = ["c" * 24, "d" * 24, "e" * 24]
DAY = datetime(2026, 3, 10, 23, 59, 59, 999999, tzinfo=UTC)
# Amounts whose canonical forms differ from how numeric(28, 8) returns them.
AMOUNTS = [
    Decimal("0.1"),
    Decimal("100"),
    Decimal("0.00000001"),
    Decimal("-12345678901.12345678"),
    Decimal("0"),
    Decimal("2.50"),
]


def row(n: int, user_id: str = USER, **overrides: Any) -> dict[str, Any]:
    entry = DAY - timedelta(hours=n * 7)
    closed = n % 4 != 3
    values: dict[str, Any] = {
        "user_id": user_id,
        "strategy_id": STRATEGIES[n % 3],
        "strategy_name": f"s{n % 3}",
        "instrument": ["BTCUSDT", "ETHUSDT"][n % 2],
        "side": ["BUY", "SELL"][n % 2],
        "quantity": AMOUNTS[n % 6],
        "entry_price": AMOUNTS[(n + 1) % 6],
        "exit_price": AMOUNTS[(n + 2) % 6] if closed else None,
        "entry_time": entry,
        "exit_time": entry + timedelta(minutes=n) if closed else None,
        "pnl": None if n % 5 == 0 else AMOUNTS[(n + 3) % 6],
        "fees": AMOUNTS[(n + 4) % 6],
        "status": "CLOSED" if closed else "OPEN",
        "broker": None if n % 7 == 0 else "binance",
        "environment": None if n % 6 == 0 else "TESTNET",
    }
    values.update(overrides)
    return values


async def fill(sources: Sources) -> list[int]:
    """Trades of two users, activity events, the metrics rolled up; the trades' ids."""
    async with sources.trades.engine.begin() as conn:
        await trades_source.insert_trades(
            conn=conn, rows=[row(n) for n in range(40)] + [row(n, OTHER) for n in range(6)]
        )
        ids = (await conn.execute(select(trades_source.trades.c.id))).scalars().all()
    async with sources.analytics.engine.begin() as conn:
        for n in range(12):
            await analytics_source.record_activity(
                conn=conn,
                user_id=[USER, OTHER][n % 2],
                kind="STRATEGY_STARTED",
                subject_id=None if n % 3 else STRATEGIES[0],
                data={} if n % 4 else {"n": n, "amount": "0.1"},
                at=NOW - timedelta(minutes=n // 2),  # ties on `at` for the id to break
            )
    await analytics_source.refresh_daily_metrics(
        trades_engine=sources.trades.engine, analytics_engine=sources.analytics.engine
    )
    return list(ids)


def trade_reads(ids: list[int]) -> list[Read_]:
    """Every trades read, in every shape the loaders use (each called with `conn=`)."""
    filters = [
        TradeFilter(),
        TradeFilter(strategy_id=STRATEGIES[1], status="CLOSED"),
        TradeFilter(instrument="ETHUSDT", from_time=DAY - timedelta(days=5), to_time=DAY),
    ]
    after = TradeCursor(entry_time=DAY - timedelta(days=3), id=ids[20])
    reads: list[Read_] = []
    for user_ids in ([USER], None, [USER, OTHER]):
        for trade_filter in filters:
            for partition, owners in (("user", [USER]), ("strategy", STRATEGIES)):
                scoped: dict[str, Any] = {
                    "partition": partition, "owners": owners, "user_ids": user_ids,
                }  # fmt: skip
                for cursor in (None, after):
                    reads.append(
                        partial(
                            trades_source.find_trade_pages,
                            **scoped, trade_filter=trade_filter, limit=4, after=cursor,
                        )
                    )  # fmt: skip
                reads.append(
                    partial(trades_source.count_trades, **scoped, trade_filter=trade_filter)
                )
        reads.append(partial(trades_source.find_trades, ids=ids[:7], user_ids=user_ids))
        reads.append(partial(trades_source.find_trades, ids=ids[:1], user_ids=user_ids))
    for users in ([USER], [USER, OTHER]):
        reads.append(partial(trades_source.summarize_trades, user_ids=users))
        reads.append(partial(trades_source.daily_net_pnl, user_ids=users))
    return reads


def analytics_reads(event_ids: list[int]) -> list[Read_]:
    """Every analytics read, in every shape the loaders use (each called with `conn=`)."""
    reads: list[Read_] = []
    for user_ids in ([USER], None, [USER, OTHER]):
        for strategy_ids in (None, STRATEGIES[:1], STRATEGIES):
            for from_day, to_day in ((None, None), (date(2026, 3, 1), date(2026, 3, 9))):
                reads.append(
                    partial(
                        analytics_source.find_daily_metrics,
                        user_ids=user_ids, strategy_ids=strategy_ids,
                        from_day=from_day, to_day=to_day,
                    )
                )  # fmt: skip
        reads.append(
            partial(analytics_source.find_activity_events, ids=event_ids, user_ids=user_ids)
        )
    for users in ([USER], [USER, OTHER]):
        reads.append(partial(analytics_source.find_recent_activity, user_ids=users, limit=3))
    return reads


async def event_ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        table = analytics_source.activity_events
        return list((await conn.execute(select(table.c.id))).scalars().all())


async def test_every_read_gives_on_asyncpg_what_it_gives_through_sqlalchemy(sources):
    ids = await fill(sources)
    cases = [(sources.trades, read) for read in trade_reads(ids)] + [
        (sources.analytics, read)
        for read in analytics_reads(await event_ids(sources.analytics.engine))
    ]

    answered = 0
    for source, read in cases:
        raw: list[Any] = []

        async def on_raw(conn: Any, read: Read_ = read, raw: list[Any] = raw) -> None:
            assert isinstance(conn, RawConnection)
            raw.append(await read(conn=conn))

        await source.fetch(on_raw, kind="lookup")
        async with source.engine.connect() as conn:
            through_sqlalchemy = await read(conn=conn)

        assert raw == [through_sqlalchemy]
        assert repr(raw) == repr([through_sqlalchemy])  # the same Decimal spellings, zones
        answered += bool(through_sqlalchemy)
    assert answered > len(cases) * 0.8  # the reads found rows: they were compared on data


async def test_amounts_and_times_come_back_canonical_and_in_utc(sources):
    await fill(sources)

    page = await sources.trades.loaders(Scope(USER)).page.load(
        TradePageKey(partition="user", owner=USER, first=40)
    )

    amounts = {trade.quantity for trade in page.items}
    assert {format(amount, "f") for amount in amounts} == {
        "0.1", "100", "0.00000001", "-12345678901.12345678", "0", "2.5",
    }  # fmt: skip
    assert all(trade.entry_time.tzinfo is UTC for trade in page.items)
    assert page.items[0].entry_time == DAY
    assert page.items[0].side in {"BUY", "SELL"}
    assert {trade.environment for trade in page.items} == {None, "TESTNET"}


def loader_calls(ids: list[int], events: list[int]) -> list[Callable[[Any, Any], Awaitable[Any]]]:
    """One call of every loader of the two sources (some twice, in other shapes)."""
    today = DAY.date()
    return [
        lambda t, a: t.page.load(TradePageKey(partition="user", owner=USER, first=10)),
        lambda t, a: t.page.load_many(
            [TradePageKey(partition="strategy", owner=s, first=3) for s in STRATEGIES]
        ),
        lambda t, a: t.count.load(TradeCountKey(partition="user", owner=USER)),
        lambda t, a: t.daily.load(USER),
        lambda t, a: t.summary.load(USER),
        lambda t, a: t.by_id.load_many([str(i) for i in ids[:5]]),
        lambda t, a: a.activity.load(ActivityKey(user_id=USER, limit=10)),
        lambda t, a: a.metrics.load(MetricsKey(user_id=USER, from_day=today - timedelta(days=9))),
        lambda t, a: a.by_strategy.load(STRATEGIES[0]),
        lambda t, a: a.event_by_id.load_many([str(i) for i in events[:3]]),
    ]


def count_one(counter: Counter[str], name: str, _statement: str) -> None:
    counter[name] += 1


async def test_the_statement_hook_counts_every_round_trip_postgresql_sees(sources, settings):
    ids = await fill(sources)
    events = await event_ids(sources.analytics.engine)
    server = urlsplit(settings.trades_database_url)
    wire = PgWireCounter(server.hostname or "127.0.0.1", server.port or 5432)
    port = await wire.start()
    databases = {
        urlsplit(url).path.lstrip("/"): name
        for name, url in (
            ("trades", settings.trades_database_url),
            ("analytics", settings.analytics_database_url),
        )
    }
    engines = [
        Shared(create_engine(url_via(url, port)), AsyncEngine.dispose)
        for url in (settings.trades_database_url, settings.analytics_database_url)
    ]
    trades = TradesSource(engines[0], limits=SourceLimits())
    analytics = AnalyticsSource(engines[1], limits=SourceLimits())
    hooked: Counter[str] = Counter()
    for source in (trades, analytics):
        source.statements.listen(partial(count_one, hooked, source.name))

    async def every_read() -> None:
        # One after another: each source keeps one pooled connection, whose statements
        # are prepared after the first pass.
        for call in loader_calls(ids, events):
            await call(trades.loaders(Scope(USER)), analytics.loaders(Scope(USER)))
        for source in (trades, analytics):
            await source.ping()  # through SQLAlchemy, not raw
            await source.read(lambda conn: conn.execute(text("SELECT 1")), kind="lookup")

    try:
        await every_read()
        hooked.clear()
        wire.enabled = True
        await every_read()
        wire.enabled = False
    finally:
        await trades.close()
        await analytics.close()
        await wire.close()

    seen = Counter({databases[name]: n for name, n in wire.counts.items()})
    assert hooked == seen
    assert hooked["trades"] >= 8
    assert hooked["analytics"] >= 6


async def test_a_raw_read_of_a_missing_table_is_source_unavailable(sources):
    missing = Table("no_such_table", MetaData(), Column("n", Integer()))
    read = Read(select(missing.c.n), as_tuple)

    with pytest.raises(SourceUnavailable) as raised:
        await sources.trades.fetch(lambda conn: fetch_all(conn, read, {}), kind="lookup")

    assert raised.value.source == "trades"
    # The driver's error reaches the boundary as SQLAlchemy raises it on its own path.
    assert isinstance(raised.value.__cause__, DBAPIError)
    assert not raised.value.__cause__.connection_invalidated


@pytest.mark.parametrize("read", [trades_source.summarize_trades, trades_source.daily_net_pnl])
async def test_per_user_figures_are_never_read_for_every_user(sources, read):
    await fill(sources)
    every: Any = None  # past the type checker

    with pytest.raises(TypeError, match="users' ids"):
        await sources.trades.fetch(lambda conn: read(conn=conn, user_ids=every), kind="aggregate")
    assert (
        await sources.trades.fetch(lambda conn: read(conn=conn, user_ids=[]), kind="aggregate")
        == {}
    )


async def test_a_raw_read_on_a_connection_the_database_ended_is_retried_on_a_fresh_one(sources):
    await fill(sources)
    loads = sources.trades.loaders(Scope(USER))
    assert (await loads.summary.load(USER)).trades == 40  # a pooled connection exists now
    async with sources.analytics.engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": sources.trades.engine.url.database},
        )

    summary = await sources.trades.loaders(Scope(USER)).summary.load(USER)

    assert summary.trades == 40


async def test_a_value_its_column_type_refuses_fails_as_it_does_through_sqlalchemy(sources):
    naive = TradeFilter(from_time=datetime(2026, 3, 1))  # noqa: DTZ001 - the value refused
    read = partial(
        trades_source.find_trade_pages,
        partition="user", owners=[USER], user_ids=[USER], trade_filter=naive, limit=3, after=None,
    )  # fmt: skip

    with pytest.raises(StatementError) as through_sqlalchemy:
        async with sources.trades.engine.connect() as conn:
            await read(conn=conn)
    with pytest.raises(SourceUnavailable) as raw:
        await sources.trades.fetch(lambda conn: read(conn=conn), kind="lookup")

    assert type(raw.value.__cause__) is type(through_sqlalchemy.value)
    assert isinstance(raw.value.__cause__.orig, ValueError)


async def test_a_list_of_any_length_is_read_by_one_statement_text(sources, settings):
    await fill(sources)
    trades = TradesSource(
        Shared(create_engine(settings.trades_database_url), AsyncEngine.dispose),
        limits=SourceLimits(),
    )
    texts: list[str] = []
    trades.statements.listen(texts.append)
    try:
        for owners in (STRATEGIES[:2], STRATEGIES, STRATEGIES[:1]):
            await trades.loaders(Scope(USER)).page.load_many(
                [TradePageKey(partition="strategy", owner=owner, first=3) for owner in owners]
            )
    finally:
        await trades.close()

    # Two and three strategies: one text, prepared once per connection; one: its own.
    assert texts[0] == texts[1] != texts[2]
    assert "= ANY (" in texts[0]
    assert "ANY" not in texts[2]
