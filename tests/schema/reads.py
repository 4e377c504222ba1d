"""What the read-query tests share: the queries, pagination helpers and two traders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from datasources import Sources
from datasources.strategies import StrategyRecord
from datasources.trades import trades as trades_table
from datasources.users import UserRecord
from gateway.core.settings import Settings
from tests.helpers import (
    data_of,
    error_codes,
    gql,
    key,
    make_strategy,
    make_trades,
    make_user,
    signed_in,
    trade_row,
)

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)

ME = "{ me { id email firstName lastName phone role createdAt updatedAt } }"
STRATEGY = """
query Strategy($id: ID!) {
  strategy(id: $id) {
    id name code status containerId instrument broker environment config
    lastAction autoReconnect errorMessage errorCount lastHeartbeat createdAt updatedAt
  }
}
"""
STRATEGIES = """
query Strategies($status: StrategyStatus, $first: Int, $after: String) {
  strategies(status: $status, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name status } }
  }
}
"""
TRADES = """
query Trades($filter: TradeFilterInput, $first: Int, $after: String) {
  trades(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id strategyId instrument status entryTime } }
  }
}
"""
STRATEGY_TRADES = """
query($id: ID!) {
  strategy(id: $id) { trades { totalCount edges { node { id strategyId } } } }
}
"""
TRADE_FIELDS = """
{
  trades {
    edges {
      node {
        id strategyId strategyName instrument side quantity entryPrice exitPrice
        entryTime exitTime pnl fees netPnl status broker environment
      }
    }
  }
}
"""


def node_ids(connection: dict[str, Any]) -> list[str]:
    """The database keys of a connection's nodes, in order (their global ids decoded)."""
    return [key(edge["node"]["id"]) for edge in connection["edges"]]


def bad_input_field(body: dict[str, Any]) -> str:
    """The `extensions.field` of a response's single BAD_USER_INPUT error."""
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    field: str = body["errors"][0]["extensions"]["field"]
    return field


async def stored_trades(sources: Sources, user: UserRecord) -> list[tuple[str, datetime]]:
    """The user's trades as stored, (id, entry time), in the list's order: newest entry first,
    ties broken by the higher id first."""
    query = select(trades_table.c.id, trades_table.c.entry_time).where(
        trades_table.c.user_id == user.id
    )
    async with sources.trades.engine.connect() as conn:
        rows = [(str(row.id), row.entry_time) for row in await conn.execute(query)]
    return sorted(rows, key=lambda row: (row[1], int(row[0])), reverse=True)


async def walk(client, query: str, name: str, token: str, first: int, **variables: Any):
    """Every page of a connection, following endCursor; returns the pages."""
    pages = []
    after = None
    while True:
        body = await gql(client, query, {**variables, "first": first, "after": after}, token=token)
        page = data_of(body)[name]
        pages.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            return pages
        after = page["pageInfo"]["endCursor"]
        assert len(pages) < 50, "pagination does not terminate"


@dataclass
class TwoTraders:
    """The viewer and another user, each with strategies and trades."""

    viewer: UserRecord
    token: str
    mine: list[StrategyRecord]
    other: UserRecord
    theirs: list[StrategyRecord]


async def two_traders(sources: Sources, settings: Settings) -> TwoTraders:
    """The viewer with two ACTIVE strategies and a trade each; another user with three
    strategies (ACTIVE, PAUSED, ERROR) and three trades each, some newer than the viewer's."""
    viewer, token = await signed_in(sources, settings)
    other = await make_user(sources)
    mine = [await make_strategy(sources, viewer, status="ACTIVE") for _ in range(2)]
    theirs = [await make_strategy(sources, other, status=s) for s in ("ACTIVE", "PAUSED", "ERROR")]
    await make_trades(
        sources,
        [trade_row(strategy, entry_time=BASE - timedelta(hours=1)) for strategy in mine]
        + [
            trade_row(strategy, entry_time=BASE - timedelta(minutes=n))
            for strategy in theirs
            for n in range(3)
        ],
    )
    return TwoTraders(viewer=viewer, token=token, mine=mine, other=other, theirs=theirs)
