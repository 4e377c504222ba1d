"""Batching: round trips per source do not grow with the size of the lists in the answer.

Counted for real: PyMongo command monitoring and SQLAlchemy cursor events see
every command and statement the app sends (tests/helpers.py RoundTrips).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from datasources import Scope
from tests.helpers import (
    NOW,
    Span,
    gid,
    gql,
    make_credentials,
    make_strategy,
    make_trades,
    make_user,
    refresh_analytics,
    token_for,
    trade_row,
)

NESTED = """
{
  strategies(first: 100) {
    totalCount
    edges {
      node {
        id name
        owner { id email }
        trades(first: 5) {
          totalCount
          edges { node { id netPnl strategy { id name } } }
        }
        performance { trades netPnl winRate maxDrawdown }
      }
    }
  }
}
"""

DASHBOARD = """
{
  dashboard {
    user { id email }
    strategyCounts { active paused stopped error total }
    activeStrategies(first: 100) { id name owner { id } }
    recentTrades(first: 100) { id strategy { id } }
    pnl { today sevenDays thirtyDays allTime }
    equityCurve { day equity }
    credentialsConfigured
    recentActivity(first: 100) { kind }
  }
}
"""


async def seed_trader(sources, strategies: int, trades_each: int = 3):
    """A user with `strategies` strategies (every status), their trades and metrics."""
    user = await make_user(sources)
    await make_credentials(sources, user)
    statuses = ["ACTIVE", "PAUSED", "STOPPED", "ERROR"]
    rows: list[dict[str, Any]] = []
    for index in range(strategies):
        strategy = await make_strategy(sources, user, status=statuses[index % 4])
        rows.extend(
            trade_row(strategy, entry_time=NOW - timedelta(days=day, hours=1))
            for day in range(trades_each)
        )
    await make_trades(sources, rows)
    await refresh_analytics(sources)
    return user


async def count_round_trips(client, settings, round_trips, user, query):
    token = token_for(settings, user)
    round_trips.reset()
    body = await gql(client, query, token=token)
    assert "errors" not in body, body["errors"]
    return dict(round_trips.counts), body["data"]


@pytest.mark.parametrize("size", [5, 200])
async def test_nested_strategies_cost_one_query_per_loader_whatever_their_number(
    client, sources, settings, round_trips, size
):
    user = await seed_trader(sources, strategies=size)

    counts, data = await count_round_trips(client, settings, round_trips, user, NESTED)

    assert len(data["strategies"]["edges"]) == min(size, 100)
    assert data["strategies"]["totalCount"] == size
    first = data["strategies"]["edges"][0]["node"]
    assert first["owner"]["id"] == gid(user)
    assert first["trades"]["totalCount"] == 3
    assert first["trades"]["edges"][0]["node"]["strategy"]["id"] == first["id"]
    assert first["performance"]["trades"] == 3
    # users: the viewer check (Strategy.owner is served from the same loader's cache);
    # strategies: the page, its total, Trade.strategy by id; trades: the pages, their totals;
    # analytics: every strategy's performance.
    assert counts == {"users": 1, "strategies": 3, "trades": 2, "analytics": 1}


async def test_the_dashboard_costs_the_same_round_trips_for_5_and_200_strategies(
    client, sources, settings, round_trips
):
    small = await seed_trader(sources, strategies=5)
    large = await seed_trader(sources, strategies=200)

    small_counts, small_data = await count_round_trips(
        client, settings, round_trips, small, DASHBOARD
    )
    large_counts, large_data = await count_round_trips(
        client, settings, round_trips, large, DASHBOARD
    )

    assert small_data["dashboard"]["strategyCounts"]["total"] == 5
    assert large_data["dashboard"]["strategyCounts"]["total"] == 200
    assert len(large_data["dashboard"]["activeStrategies"]) == 50
    assert len(large_data["dashboard"]["recentTrades"]) == 100
    assert small_counts == large_counts
    # Each source answers once per access pattern: the viewer; counts and active
    # strategies; credentials; recent trades, daily PnL (shared by pnl and the
    # equity curve) and Trade.strategy's lookups go to strategies by id; activity.
    assert large_counts == {
        "users": 1,
        "strategies": 3,
        "credentials": 1,
        "trades": 2,
        "analytics": 1,
    }


async def test_the_dashboard_asks_its_sources_concurrently(client, sources, settings, round_trips):
    user = await seed_trader(sources, strategies=8)
    query = """{ dashboard { strategyCounts { total } pnl { allTime }
                 credentialsConfigured recentActivity { kind } } }"""
    token = token_for(settings, user)
    # Hold the trades table locked so the trades query stalls; the other sources must
    # be asked (and answer) meanwhile, not after it.
    async with sources.trades.engine.connect() as blocker:
        await blocker.execute(text("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE"))
        round_trips.reset()
        request = asyncio.ensure_future(gql(client, query, token=token))
        await asyncio.sleep(0.3)
        assert not request.done()
        await blocker.commit()
    body = await request

    assert "errors" not in body
    first: dict[str, Span] = {}
    for span in round_trips.spans:
        first.setdefault(span.source, span)
    stalled_end = first["trades"].ended
    assert stalled_end is not None
    # The viewer check (users) runs alongside the reads too: it costs no extra wait.
    for source in ("users", "strategies", "credentials", "analytics"):
        answered = first[source].ended
        assert answered is not None, source
        assert first[source].started < answered < stalled_end, source


async def test_a_loader_returns_results_in_key_order_with_none_for_misses(sources):
    user = await make_user(sources)
    other = await make_user(sources)
    mine = await make_strategy(sources, user)
    theirs = await make_strategy(sources, other)
    loaders = sources.loaders(Scope(user_id=user.id))

    found = await loaders.strategies.by_id.load_many(
        [theirs.id, mine.id, "not-an-object-id", "0" * 24, mine.id]
    )

    assert [record.id if record else None for record in found] == [
        None,
        mine.id,
        None,
        None,
        mine.id,
    ]
