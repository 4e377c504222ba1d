"""The SQL sources on both dialects (PostgreSQL and SQLite), and a contract every loader keeps."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources import Scope, Shared, Sources
from datasources import analytics as analytics_source
from datasources import trades as trades_source
from datasources._sql import create_engine
from datasources.analytics import ActivityKey, MetricsKey, daily_strategy_metrics
from datasources.outbox import Event
from datasources.strategies import StrategyPageKey, StrategyRecord
from datasources.trades import TradeCountKey, TradeCursor, TradeFilter, TradePageKey
from tests.helpers import (
    NOW,
    make_credentials,
    make_strategy,
    make_trades,
    make_user,
    refresh_analytics,
    trade_row,
)

DAY = datetime(2026, 3, 10, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
async def engines(
    request, sources: Sources, tmp_path
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """(trades, analytics) engines: the suite's PostgreSQL databases, or fresh SQLite files."""
    if request.param == "postgresql":
        yield sources.trades.engine, sources.analytics.engine
        return
    trades_engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'trades.sqlite3'}")
    analytics_engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'analytics.sqlite3'}")
    async with trades_engine.begin() as conn:
        await conn.run_sync(trades_source.metadata.create_all)
    async with analytics_engine.begin() as conn:
        await conn.run_sync(analytics_source.metadata.create_all)
    yield trades_engine, analytics_engine
    await trades_engine.dispose()
    await analytics_engine.dispose()


def sql_strategy(strategy_id: str, user_id: str = "u" * 24) -> StrategyRecord:
    """A strategy record for SQL-only tests: trades need its ids, no Mongo document."""
    return StrategyRecord(
        id=strategy_id, user_id=user_id, name=f"s-{strategy_id[-4:]}", code="",
        status="ACTIVE", container_id=None, instrument="ETHUSDT", broker="binance",
        environment="TESTNET", config={}, last_action=None, auto_reconnect=False,
        error_message=None, error_count=0, last_heartbeat=None, created_at=DAY, updated_at=DAY,
    )  # fmt: skip


async def insert(engine: AsyncEngine, rows) -> None:
    async with engine.begin() as conn:
        await trades_source.insert_trades(conn=conn, rows=rows)


async def test_money_round_trips_exactly_and_sums_exactly(engines):
    trades_engine, _ = engines
    strategy = sql_strategy("a" * 24)
    amounts = [
        Decimal("0.1"),
        Decimal("0.2"),
        Decimal("0.00000001"),
        Decimal("12345678901.12345678"),
    ]
    await insert(
        trades_engine,
        [trade_row(strategy, pnl=amount, fees=Decimal(0), entry_time=DAY) for amount in amounts],
    )

    async with trades_engine.connect() as conn:
        stored = (await conn.execute(select(trades_source.trades.c.pnl))).scalars().all()
        summary = await trades_source.summarize_trades(conn=conn, user_ids=[strategy.user_id])

    assert sorted(stored) == sorted(amounts)
    assert summary[strategy.user_id].net_pnl == Decimal("12345678901.42345679")


async def test_times_come_back_aware_in_utc(engines):
    trades_engine, _ = engines
    strategy = sql_strategy("a" * 24)
    local = datetime(2026, 3, 10, 23, 30, tzinfo=UTC).astimezone()
    await insert(trades_engine, [trade_row(strategy, entry_time=local)])

    async with trades_engine.connect() as conn:
        stored = (await conn.execute(select(trades_source.trades.c.entry_time))).scalar_one()

    assert stored == local
    assert stored.utcoffset() == timedelta(0)


async def test_naive_times_are_refused(engines):
    trades_engine, _ = engines
    naive = datetime(2026, 3, 10, 12, 0)  # noqa: DTZ001 - the point of the test

    with pytest.raises(Exception, match="timezone-aware"):
        await insert(trades_engine, [trade_row(sql_strategy("a" * 24), entry_time=naive)])


async def test_pages_of_several_owners_come_from_one_query_with_a_limit_per_owner(engines):
    trades_engine, _ = engines
    first, second = sql_strategy("a" * 24), sql_strategy("b" * 24)
    await insert(
        trades_engine,
        [trade_row(first, entry_time=DAY + timedelta(hours=h)) for h in range(5)]
        + [trade_row(second, entry_time=DAY + timedelta(hours=h)) for h in range(2)],
    )

    async with trades_engine.connect() as conn:
        rows = await trades_source.find_trade_pages(
            conn=conn,
            partition="strategy",
            owners=[first.id, second.id],
            user_ids=None,
            trade_filter=TradeFilter(),
            limit=3,
            after=None,
        )

    by_owner: dict[str, list[datetime]] = {}
    for row in rows:
        by_owner.setdefault(row.strategy_id, []).append(row.entry_time)
    assert by_owner[first.id] == [DAY + timedelta(hours=h) for h in (4, 3, 2)]
    assert by_owner[second.id] == [DAY + timedelta(hours=h) for h in (1, 0)]


async def test_a_cursor_continues_after_ties_on_entry_time_by_id(engines):
    trades_engine, _ = engines
    strategy = sql_strategy("a" * 24)
    await insert(trades_engine, [trade_row(strategy, entry_time=DAY) for _ in range(4)])

    async with trades_engine.connect() as conn:
        everything = await trades_source.find_trade_pages(
            conn=conn, partition="user", owners=[strategy.user_id], user_ids=None,
            trade_filter=TradeFilter(), limit=10, after=None,
        )  # fmt: skip
        cursor = TradeCursor(entry_time=DAY, id=int(everything[1].id))
        rest = await trades_source.find_trade_pages(
            conn=conn, partition="user", owners=[strategy.user_id], user_ids=None,
            trade_filter=TradeFilter(), limit=10, after=cursor,
        )  # fmt: skip

    assert [int(t.id) for t in everything] == sorted((int(t.id) for t in everything), reverse=True)
    assert [t.id for t in rest] == [t.id for t in everything[2:]]


async def test_daily_net_pnl_groups_closed_trades_by_the_utc_day_of_their_exit(engines):
    trades_engine, _ = engines
    strategy = sql_strategy("a" * 24)
    late = datetime(2026, 3, 10, 23, 50, tzinfo=UTC)
    await insert(
        trades_engine,
        [
            # Exits after midnight UTC: belongs to the 11th.
            trade_row(strategy, entry_time=late, exit_time=late + timedelta(minutes=20)),
            trade_row(strategy, entry_time=late - timedelta(hours=5), pnl=Decimal("-2")),
            trade_row(strategy, entry_time=late, status="OPEN", exit_time=None, pnl=None),
        ],
    )

    async with trades_engine.connect() as conn:
        daily = await trades_source.daily_net_pnl(conn=conn, user_ids=[strategy.user_id])

    assert [(d.day, d.trades, d.net_pnl) for d in daily[strategy.user_id]] == [
        (date(2026, 3, 10), 1, Decimal("-2.1")),
        (date(2026, 3, 11), 1, Decimal("4.9")),
    ]


async def test_the_analytics_refresh_is_idempotent(engines):
    trades_engine, analytics_engine = engines
    strategy = sql_strategy("a" * 24)
    await insert(
        trades_engine,
        [
            trade_row(strategy, entry_time=DAY, pnl=Decimal("5"), fees=Decimal("1")),
            trade_row(strategy, entry_time=DAY, pnl=Decimal("-3"), fees=Decimal("1")),
            trade_row(strategy, entry_time=DAY + timedelta(days=1), quantity=Decimal(2)),
        ],
    )

    async def refresh_and_read(since=None):
        await analytics_source.refresh_daily_metrics(
            trades_engine=trades_engine, analytics_engine=analytics_engine, since=since
        )
        async with analytics_engine.connect() as conn:
            return await analytics_source.find_daily_metrics(conn=conn, user_ids=None)

    once = await refresh_and_read()
    twice = await refresh_and_read()
    partial = await refresh_and_read(since=date(2026, 3, 11))

    assert once == twice == partial
    first_day = once[0]
    assert (first_day.day, first_day.trades, first_day.wins, first_day.losses) == (
        date(2026, 3, 10), 2, 1, 1,
    )  # fmt: skip
    assert (first_day.gross_pnl, first_day.fees, first_day.net_pnl) == (
        Decimal(2), Decimal(2), Decimal(0),
    )  # fmt: skip
    assert first_day.volume == Decimal(100)
    assert once[1].volume == Decimal(200)


async def test_a_refresh_since_a_day_leaves_earlier_days_alone(engines):
    trades_engine, analytics_engine = engines
    strategy = sql_strategy("a" * 24)
    await insert(trades_engine, [trade_row(strategy, entry_time=DAY)])
    await analytics_source.refresh_daily_metrics(
        trades_engine=trades_engine, analytics_engine=analytics_engine
    )
    await insert(trades_engine, [trade_row(strategy, entry_time=DAY)])  # arrives late

    await analytics_source.refresh_daily_metrics(
        trades_engine=trades_engine, analytics_engine=analytics_engine, since=date(2026, 3, 11)
    )

    async with analytics_engine.connect() as conn:
        trades_counted = (await conn.execute(select(daily_strategy_metrics.c.trades))).scalar_one()
    assert trades_counted == 1


async def test_a_refresh_of_some_users_leaves_the_others_alone(engines):
    trades_engine, analytics_engine = engines
    mine, theirs = sql_strategy("a" * 24, "u" * 24), sql_strategy("b" * 24, "v" * 24)
    await insert(
        trades_engine, [trade_row(mine, entry_time=DAY), trade_row(theirs, entry_time=DAY)]
    )
    await analytics_source.refresh_daily_metrics(
        trades_engine=trades_engine, analytics_engine=analytics_engine
    )
    await insert(
        trades_engine, [trade_row(mine, entry_time=DAY), trade_row(theirs, entry_time=DAY)]
    )

    await analytics_source.refresh_daily_metrics(
        trades_engine=trades_engine, analytics_engine=analytics_engine, user_ids=["u" * 24]
    )

    async with analytics_engine.connect() as conn:
        query = select(daily_strategy_metrics.c.user_id, daily_strategy_metrics.c.trades)
        counted = dict(tuple(row) for row in await conn.execute(query))
    assert counted == {"u" * 24: 2, "v" * 24: 1}


async def test_lifetime_daily_and_analytics_pnl_agree_on_odd_trades(engines):
    trades_engine, analytics_engine = engines
    strategy = sql_strategy("a" * 24)
    await insert(
        trades_engine,
        [
            trade_row(strategy, entry_time=DAY, pnl=Decimal("5"), fees=Decimal("1")),
            # Closed without a recorded pnl: counts as 0, so it nets -fees and is a loss.
            trade_row(strategy, entry_time=DAY, pnl=None, fees=Decimal("0.5")),
            # Closed without an exit time: belongs to no day, so it counts nowhere.
            trade_row(strategy, entry_time=DAY, exit_time=None, pnl=Decimal("100")),
            trade_row(strategy, entry_time=DAY, status="OPEN", exit_time=None, pnl=None),
        ],
    )

    async with trades_engine.connect() as conn:
        summary = (await trades_source.summarize_trades(conn=conn, user_ids=[strategy.user_id]))[
            strategy.user_id
        ]
        daily = (await trades_source.daily_net_pnl(conn=conn, user_ids=[strategy.user_id]))[
            strategy.user_id
        ]
    await analytics_source.refresh_daily_metrics(
        trades_engine=trades_engine, analytics_engine=analytics_engine
    )
    async with analytics_engine.connect() as conn:
        metrics = await analytics_source.find_daily_metrics(conn=conn, user_ids=[strategy.user_id])

    assert (summary.trades, summary.closed, summary.wins) == (4, 2, 1)
    assert (summary.gross_pnl, summary.fees, summary.net_pnl) == (
        Decimal(5), Decimal("1.5"), Decimal("3.5"),
    )  # fmt: skip
    assert [(d.day, d.trades, d.net_pnl) for d in daily] == [(DAY.date(), 2, Decimal("3.5"))]
    assert [(m.day, m.trades, m.wins, m.losses) for m in metrics] == [(DAY.date(), 2, 1, 1)]
    assert (metrics[0].gross_pnl, metrics[0].fees, metrics[0].net_pnl) == (
        summary.gross_pnl, summary.fees, summary.net_pnl,
    )  # fmt: skip


async def test_a_refresh_does_not_bring_back_the_metrics_of_an_account_deleted_meanwhile(
    tmp_path,
):
    # SQLite files, so that a plain connection can play the deletion at the exact moment
    # the refresh has read the trades and not yet written the metrics.
    trades_engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'trades.sqlite3'}")
    analytics_engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'analytics.sqlite3'}")
    async with trades_engine.begin() as conn:
        await conn.run_sync(trades_source.metadata.create_all)
    async with analytics_engine.begin() as conn:
        await conn.run_sync(analytics_source.metadata.create_all)
    leaving = sql_strategy("a" * 24, user_id="l" * 24)
    staying = sql_strategy("b" * 24, user_id="s" * 24)
    await insert(
        trades_engine, [trade_row(leaving, entry_time=DAY), trade_row(staying, entry_time=DAY)]
    )

    def delete_the_account_meanwhile(done: int, total: int) -> None:
        if done < total:
            return
        # The deletion saga's order: the user's trades, then its analytics.
        for name, statement in (
            ("trades", "DELETE FROM trades WHERE user_id = ?"),
            ("analytics", "DELETE FROM daily_strategy_metrics WHERE user_id = ?"),
        ):
            raw = sqlite3.connect(tmp_path / f"{name}.sqlite3")
            with raw:
                raw.execute(statement, (leaving.user_id,))
            raw.close()

    try:
        await analytics_source.refresh_daily_metrics(
            trades_engine=trades_engine,
            analytics_engine=analytics_engine,
            on_progress=delete_the_account_meanwhile,
        )
        async with analytics_engine.connect() as conn:
            metrics = await analytics_source.find_daily_metrics(conn=conn, user_ids=None)
    finally:
        await trades_engine.dispose()
        await analytics_engine.dispose()

    assert [(m.user_id, m.trades) for m in metrics] == [(staying.user_id, 1)]


async def test_recent_activity_keeps_a_limit_per_user_newest_first(engines):
    _, analytics_engine = engines
    async with analytics_engine.begin() as conn:
        for user_id, count in (("a" * 24, 4), ("b" * 24, 1)):
            for minute in range(count):
                await analytics_source.record_activity(
                    conn=conn, user_id=user_id, kind=f"K{minute}",
                    at=DAY + timedelta(minutes=minute),
                )  # fmt: skip

    async with analytics_engine.connect() as conn:
        events = await analytics_source.find_recent_activity(
            conn=conn, user_ids=["a" * 24, "b" * 24], limit=2
        )

    assert [(e.user_id[0], e.kind) for e in events] == [("a", "K3"), ("a", "K2"), ("b", "K0")]


async def test_migrating_twice_changes_nothing(sources):
    async def indexes():
        found = {}
        for name, db in (("users", sources.users.db), ("strategies", sources.strategies.db),
                         ("credentials", sources.credentials.db)):  # fmt: skip
            found[name] = sorted(
                [
                    (index["name"], bool(index.get("unique")))
                    async for index in await db[name].list_indexes()
                ]
            )
        return found

    before = await indexes()
    await sources.migrate()
    await sources.migrate()

    assert await indexes() == before
    pending = ("outbox_pending", False)  # the outbox's (datasources/outbox.py)
    assert before["users"] == [("_id_", False), ("email_1", True), pending]
    assert before["strategies"] == [
        ("_id_", False),
        pending,
        ("userId_1", False),
        ("userId_1_name_1", True),
        ("userId_1_status_1", False),
    ]
    assert before["credentials"] == [("_id_", False), pending, ("userId_1", True)]


# The loader contract: whatever the source, a batch of keys gets one result per key, in key
# order; a key owned by another user, or unknown, gets the empty result, never the data.
CONTRACT = {
    "users.by_id": (lambda ls: ls.users.by_id, lambda o: o["user"].id, None),
    "strategies.by_id": (
        lambda ls: ls.strategies.by_id,
        lambda o: o["strategy"].id,
        None,
    ),
    "strategies.page": (
        lambda ls: ls.strategies.page,
        lambda o: StrategyPageKey(user_id=o["user"].id, status=None, first=10),
        lambda result: result.items == [],
    ),
    "strategies.counts": (
        lambda ls: ls.strategies.counts,
        lambda o: o["user"].id,
        lambda result: result.count() == 0,
    ),
    "credentials.by_user": (
        lambda ls: ls.credentials.by_user,
        lambda o: o["user"].id,
        None,
    ),
    "trades.page": (
        lambda ls: ls.trades.page,
        lambda o: TradePageKey(partition="strategy", owner=o["strategy"].id, first=10),
        lambda result: result.items == [],
    ),
    "trades.count": (
        lambda ls: ls.trades.count,
        lambda o: TradeCountKey(partition="user", owner=o["user"].id),
        lambda result: result == 0,
    ),
    "trades.summary": (
        lambda ls: ls.trades.summary,
        lambda o: o["user"].id,
        lambda r: r.trades == 0,
    ),
    "trades.daily": (
        lambda ls: ls.trades.daily,
        lambda o: o["user"].id,
        lambda r: r == [],
    ),
    "analytics.metrics": (
        lambda ls: ls.analytics.metrics,
        lambda o: MetricsKey(user_id=o["user"].id),
        lambda result: result == [],
    ),
    "analytics.by_strategy": (
        lambda ls: ls.analytics.by_strategy,
        lambda o: o["strategy"].id,
        lambda result: result == [],
    ),
    "analytics.activity": (
        lambda ls: ls.analytics.activity,
        lambda o: ActivityKey(user_id=o["user"].id),
        lambda result: result == [],
    ),
}


async def owned_data(sources: Sources) -> dict[str, Any]:
    user = await make_user(sources)
    strategy = await make_strategy(sources, user)
    await make_credentials(sources, user)
    await make_trades(sources, [trade_row(strategy, entry_time=NOW - timedelta(hours=3))])
    await refresh_analytics(sources)
    async with sources.analytics.engine.begin() as conn:
        await analytics_source.record_activity(conn=conn, user_id=user.id, kind="SIGNED_IN")
    return {"user": user, "strategy": strategy}


@pytest.mark.parametrize("loader_name", sorted(CONTRACT))
async def test_every_loader_answers_each_key_in_order_and_only_within_its_scope(
    sources, loader_name
):
    pick, key_of, is_empty = CONTRACT[loader_name]
    mine = await owned_data(sources)
    theirs = await owned_data(sources)
    loader = pick(sources.loaders(Scope(user_id=mine["user"].id)))

    results = await loader.load_many([key_of(theirs), key_of(mine), key_of(theirs)])

    empty = is_empty or (lambda result: result is None)
    assert empty(results[0]), "another user's data was returned"
    assert empty(results[2]), "another user's data was returned"
    assert not empty(results[1]), "the viewer's own data is missing"


async def test_migrate_gives_an_activity_table_from_before_the_outbox_its_event_ids(tmp_path):
    path = tmp_path / "analytics.sqlite3"
    with sqlite3.connect(path) as old:  # the table as the gateway created it before
        old.execute(
            "CREATE TABLE activity_events (id INTEGER PRIMARY KEY, user_id VARCHAR(24) NOT NULL,"
            " kind VARCHAR(64) NOT NULL, subject_id VARCHAR(64), at DATETIME NOT NULL,"
            " data JSON NOT NULL)"
        )
        old.execute(
            "INSERT INTO activity_events (user_id, kind, at, data)"
            " VALUES ('u1', 'SIGNED_IN', '2026-01-01 00:00:00', '{}')"
        )
    shared = Shared(create_engine(f"sqlite+aiosqlite:///{path}"), lambda e: e.dispose())
    source = analytics_source.AnalyticsSource(shared)
    try:
        await source.migrate()
        await source.migrate()  # idempotent
        event = Event(id="e" * 32, user_id="u1", kind="SIGNED_IN")
        for _ in range(2):  # delivered twice, recorded once
            await source.write(
                lambda conn: analytics_source.record_events(conn=conn, events=[event])
            )
    finally:
        await source.close()

    with sqlite3.connect(path) as migrated:
        rows = migrated.execute("SELECT kind, event_id FROM activity_events ORDER BY id").fetchall()
        indexes = {row[1] for row in migrated.execute("PRAGMA index_list('activity_events')")}
    assert rows == [("SIGNED_IN", None), ("SIGNED_IN", "e" * 32)]
    assert "ux_activity_event_id" in indexes
