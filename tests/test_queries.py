"""The read queries over HTTP: `me`, `strategy`, `strategies`, `trades`, their cross-source
fields, Relay pagination, and the viewer's scope.

The dashboard, profile, analytics and credentials views are in test_aggregates.py.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
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
    make_credentials,
    make_strategy,
    make_trades,
    make_user,
    refresh_analytics,
    signed_in,
    token_for,
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


# Helpers -------------------------------------------------------------------------------


def node_ids(connection: dict[str, Any]) -> list[str]:
    """The node ids of a connection's edges, in order."""
    return [edge["node"]["id"] for edge in connection["edges"]]


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


# me ------------------------------------------------------------------------------------


async def test_me_returns_the_viewers_own_account(client, sources, settings):
    await make_user(sources)
    user, token = await signed_in(
        sources, settings, first_name="Grace", last_name="Hopper", phone="+1 555 0199"
    )

    body = await gql(client, ME, token=token)

    assert data_of(body)["me"] == {
        "id": user.id,
        "email": user.email,
        "firstName": "Grace",
        "lastName": "Hopper",
        "phone": "+1 555 0199",
        "role": "USER",
        "createdAt": user.created_at.isoformat(),
        "updatedAt": user.updated_at.isoformat(),
    }
    assert body["data"]["me"]["createdAt"].endswith("+00:00")


# strategy(id) ----------------------------------------------------------------------------


async def test_strategy_by_id_returns_the_viewers_strategy_with_every_field(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(
        sources,
        user,
        name="BTC momentum",
        status="ERROR",
        environment="LIVE",
        config={"timeframe": "15m", "risk": 0.02, "legs": [1, 2]},
        error_message="Broker rejected order",
        error_count=3,
        auto_reconnect=True,
    )

    body = await gql(client, STRATEGY, {"id": strategy.id}, token=token)

    assert data_of(body)["strategy"] == {
        "id": strategy.id,
        "name": "BTC momentum",
        "code": "def on_tick(ctx, tick): pass",
        "status": "ERROR",
        "containerId": None,
        "instrument": "BTCUSDT",
        "broker": "binance",
        "environment": "LIVE",
        "config": {"timeframe": "15m", "risk": 0.02, "legs": [1, 2]},
        "lastAction": None,
        "autoReconnect": True,
        "errorMessage": "Broker rejected order",
        "errorCount": 3,
        "lastHeartbeat": None,
        "createdAt": strategy.created_at.isoformat(),
        "updatedAt": strategy.updated_at.isoformat(),
    }
    assert body["data"]["strategy"]["createdAt"].endswith("+00:00")


async def test_a_user_never_sees_another_users_strategy_by_id(client, sources, settings):
    owner = await make_user(sources)
    theirs = await make_strategy(sources, owner, name="not yours")
    _, token = await signed_in(sources, settings)

    body = await gql(client, STRATEGY, {"id": theirs.id}, token=token)

    assert error_codes(body) == ["NOT_FOUND"]
    assert body["data"] == {"strategy": None}
    assert "not yours" not in str(body)


async def test_an_unknown_or_malformed_strategy_id_is_not_found(client, sources, settings):
    _, token = await signed_in(sources, settings)

    for strategy_id in ("0123456789abcdef01234567", "not-an-object-id", ""):
        body = await gql(client, STRATEGY, {"id": strategy_id}, token=token)
        assert error_codes(body) == ["NOT_FOUND"], strategy_id
        assert body["data"] == {"strategy": None}, strategy_id


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ('strategy(id: "000000000000000000000000") { id }', "NOT_FOUND"),
        ("strategies(first: 101) { totalCount }", "BAD_USER_INPUT"),
        ("trades(first: 101) { totalCount }", "BAD_USER_INPUT"),
        ('analytics(from: "2026-01-09", to: "2026-01-08") { netPnl }', "BAD_USER_INPUT"),
    ],
)
async def test_a_failing_root_field_of_another_source_nulls_only_itself(
    client, sources, settings, field, code
):
    user, token = await signed_in(sources, settings)
    name = field.split("(")[0]

    body = await gql(client, f"{{ me {{ id }} {field} }}", token=token)

    assert body["data"] == {"me": {"id": user.id}, name: None}
    assert error_codes(body) == [code]
    assert body["errors"][0]["path"] == [name]


# strategies --------------------------------------------------------------------------------


async def test_strategies_lists_the_viewers_strategies_newest_first(client, sources, settings):
    user, token = await signed_in(sources, settings)
    made = [await make_strategy(sources, user, name=f"s{index}") for index in range(4)]

    body = await gql(client, STRATEGIES, token=token)

    connection = data_of(body)["strategies"]
    assert node_ids(connection) == [strategy.id for strategy in reversed(made)]
    assert [edge["node"]["name"] for edge in connection["edges"]] == ["s3", "s2", "s1", "s0"]
    assert connection["totalCount"] == 4


async def test_strategies_filtered_by_status_lists_and_counts_only_that_status(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    paused = [await make_strategy(sources, user, status="PAUSED") for _ in range(2)]
    await make_strategy(sources, user, status="ACTIVE")
    await make_strategy(sources, user, status="STOPPED")

    body = await gql(client, STRATEGIES, {"status": "PAUSED"}, token=token)

    connection = data_of(body)["strategies"]
    assert node_ids(connection) == [paused[1].id, paused[0].id]
    assert {edge["node"]["status"] for edge in connection["edges"]} == {"PAUSED"}
    assert connection["totalCount"] == 2


async def test_a_user_without_strategies_gets_an_empty_connection(client, sources, settings):
    _, token = await signed_in(sources, settings)

    body = await gql(client, STRATEGIES, token=token)

    assert data_of(body)["strategies"] == {
        "totalCount": 0,
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }


async def test_walking_every_page_of_strategies_yields_each_strategy_once_in_order(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    made = [await make_strategy(sources, user) for _ in range(7)]

    pages = await walk(client, STRATEGIES, "strategies", token, first=3)

    assert [len(page["edges"]) for page in pages] == [3, 3, 1]
    walked = [strategy_id for page in pages for strategy_id in node_ids(page)]
    assert walked == [strategy.id for strategy in reversed(made)]
    assert {page["totalCount"] for page in pages} == {7}


async def test_a_strategies_page_reports_its_cursors_and_its_neighbours(client, sources, settings):
    user, token = await signed_in(sources, settings)
    for _ in range(5):
        await make_strategy(sources, user)

    first = data_of(await gql(client, STRATEGIES, {"first": 2}, token=token))["strategies"]
    middle = data_of(
        await gql(
            client, STRATEGIES, {"first": 2, "after": first["pageInfo"]["endCursor"]}, token=token
        )
    )["strategies"]
    last = data_of(
        await gql(
            client, STRATEGIES, {"first": 2, "after": middle["pageInfo"]["endCursor"]}, token=token
        )
    )["strategies"]

    for page in (first, middle, last):
        cursors = [edge["cursor"] for edge in page["edges"]]
        assert page["pageInfo"]["startCursor"] == cursors[0]
        assert page["pageInfo"]["endCursor"] == cursors[-1]
    assert [first["pageInfo"]["hasPreviousPage"], first["pageInfo"]["hasNextPage"]] == [
        False,
        True,
    ]
    assert [middle["pageInfo"]["hasPreviousPage"], middle["pageInfo"]["hasNextPage"]] == [
        True,
        True,
    ]
    assert [last["pageInfo"]["hasPreviousPage"], last["pageInfo"]["hasNextPage"]] == [True, False]
    assert len(last["edges"]) == 1


async def test_a_page_that_exactly_fills_the_list_has_no_next_page(client, sources, settings):
    user, token = await signed_in(sources, settings)
    for _ in range(3):
        await make_strategy(sources, user)

    page = data_of(await gql(client, STRATEGIES, {"first": 3}, token=token))["strategies"]

    assert len(page["edges"]) == 3
    assert page["pageInfo"]["hasNextPage"] is False


async def test_first_zero_returns_no_edges_but_still_counts_the_whole_list(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy), trade_row(strategy)])

    strategies = data_of(await gql(client, STRATEGIES, {"first": 0}, token=token))["strategies"]
    trades = data_of(await gql(client, TRADES, {"first": 0}, token=token))["trades"]

    for connection, total in ((strategies, 1), (trades, 2)):
        assert connection["edges"] == []
        assert connection["totalCount"] == total
        assert connection["pageInfo"] == {
            "hasNextPage": True,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        }


async def test_first_of_one_hundred_is_accepted_and_returns_up_to_a_hundred_items(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [trade_row(strategy, entry_time=BASE - timedelta(minutes=n)) for n in range(101)],
    )

    page = data_of(await gql(client, TRADES, {"first": 100}, token=token))["trades"]

    assert len(page["edges"]) == 100
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["totalCount"] == 101


async def test_a_list_defaults_to_twenty_items_when_first_is_omitted(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources, [trade_row(strategy, entry_time=BASE - timedelta(minutes=n)) for n in range(21)]
    )

    page = data_of(await gql(client, TRADES, token=token))["trades"]

    assert len(page["edges"]) == 20
    assert page["pageInfo"]["hasNextPage"] is True


@pytest.mark.parametrize("first", [101, -1, 1000])
@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("query($first: Int) { strategies(first: $first) { totalCount } }", None),
        ("query($first: Int) { trades(first: $first) { totalCount } }", None),
        ("query($first: Int) { me { strategies(first: $first) { totalCount } } }", "me"),
        ("query($first: Int) { me { trades(first: $first) { totalCount } } }", "me"),
        ("query($first: Int!) { dashboard { recentTrades(first: $first) { id } } }", "dashboard"),
        (
            "query($first: Int!) { dashboard { activeStrategies(first: $first) { id } } }",
            "dashboard",
        ),
    ],
)
async def test_a_page_size_outside_zero_to_one_hundred_is_bad_user_input_on_first(
    client, sources, settings, query, path, first
):
    _, token = await signed_in(sources, settings)

    body = await gql(client, query, {"first": first}, token=token)

    assert bad_input_field(body) == "first"
    if path is None:
        # A root list is nullable: only it is lost.
        assert list(body["data"].values()) == [None]
    else:
        # Nested lists are nullable: the rest of the answer survives.
        assert body["data"][path] is not None


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "dHJhZGU6", "c3RyYXRlZ3k6eHl6", "=" * 8])
async def test_a_garbage_cursor_is_bad_user_input_on_after(client, sources, settings, cursor):
    user, token = await signed_in(sources, settings)
    await make_strategy(sources, user)

    for query in (STRATEGIES, TRADES):
        body = await gql(client, query, {"after": cursor}, token=token)
        assert bad_input_field(body) == "after", (query, cursor)
        assert list(body["data"].values()) == [None], (query, cursor)


async def test_a_strategy_cursor_is_refused_by_the_trades_list(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy)])
    strategies = data_of(await gql(client, STRATEGIES, token=token))["strategies"]

    body = await gql(client, TRADES, {"after": strategies["edges"][0]["cursor"]}, token=token)

    assert bad_input_field(body) == "after"


async def test_a_trade_cursor_is_refused_by_the_strategies_list(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy)])
    trades = data_of(await gql(client, TRADES, token=token))["trades"]

    body = await gql(client, STRATEGIES, {"after": trades["edges"][0]["cursor"]}, token=token)

    assert bad_input_field(body) == "after"


async def test_a_trade_cursor_with_a_time_without_offset_is_bad_user_input(
    client, sources, settings
):
    _, token = await signed_in(sources, settings)
    naive = base64.urlsafe_b64encode(b"trade:2026-01-01T00:00:00|5").decode().rstrip("=")

    body = await gql(client, TRADES, {"after": naive}, token=token)

    assert bad_input_field(body) == "after"


# trades --------------------------------------------------------------------------------------


async def test_trades_are_newest_entry_first_with_ties_broken_by_the_higher_id(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    same = BASE - timedelta(hours=5)
    await make_trades(
        sources,
        [
            trade_row(strategy, entry_time=same),
            trade_row(strategy, entry_time=BASE - timedelta(hours=9)),
            trade_row(strategy, entry_time=same),
            trade_row(strategy, entry_time=BASE - timedelta(hours=1)),
            trade_row(strategy, entry_time=same),
        ],
    )
    expected = await stored_trades(sources, user)

    page = data_of(await gql(client, TRADES, token=token))["trades"]

    assert node_ids(page) == [trade_id for trade_id, _ in expected]
    tied = [int(edge["node"]["id"]) for edge in page["edges"][1:4]]
    assert tied == sorted(tied, reverse=True)
    assert {edge["node"]["entryTime"] for edge in page["edges"][1:4]} == {same.isoformat()}


async def test_walking_every_page_of_trades_yields_each_trade_once_in_order(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    # Ties on entry time straddle the page boundaries.
    await make_trades(
        sources,
        [trade_row(strategy, entry_time=BASE - timedelta(hours=n // 3)) for n in range(11)],
    )
    expected = [trade_id for trade_id, _ in await stored_trades(sources, user)]

    pages = await walk(client, TRADES, "trades", token, first=4)

    assert [len(page["edges"]) for page in pages] == [4, 4, 3]
    walked = [trade_id for page in pages for trade_id in node_ids(page)]
    assert walked == expected
    assert len(set(walked)) == 11
    assert {page["totalCount"] for page in pages} == {11}
    assert [page["pageInfo"]["hasPreviousPage"] for page in pages] == [False, True, True]


async def test_walking_the_pages_of_a_filtered_trades_list_keeps_the_filter(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [
            trade_row(
                strategy,
                entry_time=BASE - timedelta(hours=n),
                instrument="ETHUSDT" if n % 2 else "BTCUSDT",
            )
            for n in range(10)
        ],
    )

    pages = await walk(client, TRADES, "trades", token, first=2, filter={"instrument": "ETHUSDT"})

    walked = [edge["node"] for page in pages for edge in page["edges"]]
    assert len(walked) == 5
    assert {node["instrument"] for node in walked} == {"ETHUSDT"}
    assert {page["totalCount"] for page in pages} == {5}


async def test_a_trade_serializes_decimals_as_exact_strings_and_times_as_utc_iso(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user, name="ETH scalper", instrument="ETHUSDT")
    entry = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
    await make_trades(
        sources,
        [
            trade_row(
                strategy,
                side="SELL",
                quantity=Decimal("0.00000001"),
                entry_price=Decimal("3210.12345678"),
                exit_price=Decimal("3200.5"),
                entry_time=entry,
                exit_time=entry + timedelta(minutes=90),
                pnl=Decimal("0.3"),
                fees=Decimal("0.1"),
            )
        ],
    )

    body = await gql(client, TRADE_FIELDS, token=token)

    node = data_of(body)["trades"]["edges"][0]["node"]
    assert node == {
        "id": node["id"],
        "strategyId": strategy.id,
        "strategyName": "ETH scalper",
        "instrument": "ETHUSDT",
        "side": "SELL",
        "quantity": "0.00000001",
        "entryPrice": "3210.12345678",
        "exitPrice": "3200.5",
        "entryTime": "2026-03-14T09:26:53.589793+00:00",
        "exitTime": "2026-03-14T10:56:53.589793+00:00",
        "pnl": "0.3",
        "fees": "0.1",
        "netPnl": "0.2",
        "status": "CLOSED",
        "broker": "binance",
        "environment": "TESTNET",
    }


async def test_large_amounts_keep_every_digit(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [
            trade_row(
                strategy,
                quantity=Decimal("123456789012.12345678"),
                pnl=Decimal("99999999999999999999.99999999"),
                fees=Decimal("0.00000001"),
            )
        ],
    )

    body = await gql(client, "{ trades { edges { node { quantity pnl netPnl } } } }", token=token)

    assert data_of(body)["trades"]["edges"][0]["node"] == {
        "quantity": "123456789012.12345678",
        "pnl": "99999999999999999999.99999999",
        "netPnl": "99999999999999999999.99999998",
    }


async def test_a_computed_amount_is_spelled_like_a_stored_one(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy, pnl=Decimal("2.50"), fees=Decimal("0.50"))])

    body = await gql(client, "{ trades { edges { node { pnl fees netPnl } } } }", token=token)

    # 2.5 - 0.5 is Decimal("2.0") in Python; the API spells it "2", as it would a stored 2.
    assert data_of(body)["trades"]["edges"][0]["node"] == {
        "pnl": "2.5",
        "fees": "0.5",
        "netPnl": "2",
    }


async def test_an_open_trade_has_no_exit_and_no_net_pnl(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [trade_row(strategy, status="OPEN", exit_price=None, exit_time=None, pnl=None)],
    )

    body = await gql(
        client,
        "{ trades { edges { node { status exitPrice exitTime pnl fees netPnl } } } }",
        token=token,
    )

    assert data_of(body)["trades"]["edges"][0]["node"] == {
        "status": "OPEN",
        "exitPrice": None,
        "exitTime": None,
        "pnl": None,
        "fees": "0.1",
        "netPnl": None,
    }


async def test_trades_filter_by_strategy_lists_and_counts_only_its_trades(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    wanted = await make_strategy(sources, user)
    other = await make_strategy(sources, user)
    await make_trades(
        sources,
        [trade_row(wanted), trade_row(other), trade_row(wanted), trade_row(other)],
    )

    body = await gql(client, TRADES, {"filter": {"strategyId": wanted.id}}, token=token)

    page = data_of(body)["trades"]
    assert {edge["node"]["strategyId"] for edge in page["edges"]} == {wanted.id}
    assert len(page["edges"]) == 2
    assert page["totalCount"] == 2


async def test_trades_filter_by_instrument_and_status_combines_both_conditions(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [
            trade_row(strategy, instrument="SOLUSDT"),
            trade_row(strategy, instrument="SOLUSDT", status="OPEN", pnl=None, exit_time=None),
            trade_row(strategy, instrument="BTCUSDT", status="OPEN", pnl=None, exit_time=None),
            trade_row(strategy, instrument="SOLUSDT", status="OPEN", pnl=None, exit_time=None),
        ],
    )

    body = await gql(
        client, TRADES, {"filter": {"instrument": "SOLUSDT", "status": "OPEN"}}, token=token
    )

    page = data_of(body)["trades"]
    assert [(e["node"]["instrument"], e["node"]["status"]) for e in page["edges"]] == [
        ("SOLUSDT", "OPEN"),
        ("SOLUSDT", "OPEN"),
    ]
    assert page["totalCount"] == 2
    unfiltered = data_of(await gql(client, TRADES, token=token))["trades"]
    assert unfiltered["totalCount"] == 4


async def test_trades_filter_by_time_includes_from_and_excludes_to_on_entry_time(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    start = datetime(2026, 2, 1, tzinfo=UTC)
    await make_trades(
        sources,
        [trade_row(strategy, entry_time=start + timedelta(hours=hours)) for hours in range(-1, 5)],
    )

    body = await gql(
        client,
        TRADES,
        {
            "filter": {
                "from": start.isoformat(),
                "to": (start + timedelta(hours=3)).isoformat(),
            }
        },
        token=token,
    )

    page = data_of(body)["trades"]
    assert [edge["node"]["entryTime"] for edge in page["edges"]] == [
        "2026-02-01T02:00:00+00:00",
        "2026-02-01T01:00:00+00:00",
        "2026-02-01T00:00:00+00:00",
    ]
    assert page["totalCount"] == 3


async def test_trades_filter_times_in_another_offset_mean_the_same_instant(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [
            trade_row(strategy, entry_time=datetime(2026, 2, 1, 10, tzinfo=UTC)),
            trade_row(strategy, entry_time=datetime(2026, 2, 1, 12, tzinfo=UTC)),
        ],
    )

    body = await gql(
        client,
        TRADES,
        {"filter": {"from": "2026-02-01T12:30:00+01:00", "to": "2026-02-01T13:30:00+01:00"}},
        token=token,
    )

    page = data_of(body)["trades"]
    assert [edge["node"]["entryTime"] for edge in page["edges"]] == ["2026-02-01T12:00:00+00:00"]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-02-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"),
        ("2026-02-02T00:00:00+00:00", "2026-02-01T00:00:00+00:00"),
        ("2026-02-01T01:00:00+01:00", "2026-02-01T00:00:00+00:00"),
    ],
)
async def test_a_trades_filter_whose_from_is_not_before_to_is_bad_user_input(
    client, sources, settings, start, end
):
    _, token = await signed_in(sources, settings)

    body = await gql(client, TRADES, {"filter": {"from": start, "to": end}}, token=token)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] == {"trades": None}


async def test_a_trades_filter_time_without_an_offset_is_bad_user_input(client, sources, settings):
    user, token = await signed_in(sources, settings)
    await make_strategy(sources, user)

    for conditions in (
        {"from": "2026-02-01T00:00:00"},
        {"to": "2026-02-01T00:00:00"},
        {"from": "2026-02-01T00:00:00", "to": "2026-02-02T00:00:00+00:00"},
    ):
        body = await gql(client, TRADES, {"filter": conditions}, token=token)
        assert error_codes(body) == ["BAD_USER_INPUT"], conditions
        assert body["errors"][0]["extensions"]["field"].startswith("filter."), conditions


FILTERED_TRADES = {
    "trades": "query($f: TradeFilterInput) { trades(filter: $f) { totalCount } }",
    "me.trades": "query($f: TradeFilterInput) { me { trades(filter: $f) { totalCount } } }",
    "strategy.trades": (
        "query($id: ID!, $f: TradeFilterInput) { strategy(id: $id) { trades(filter: $f) "
        "{ totalCount } } }"
    ),
}
# Values no trade can match, and that PostgreSQL would refuse or Python could not convert.
UNMATCHABLE_FILTERS = {
    "a NUL in the instrument": ({"instrument": "a\u0000b"}, "filter.instrument"),
    "a newline in the instrument": ({"instrument": "BTC\nUSDT"}, "filter.instrument"),
    "a blank instrument": ({"instrument": "  "}, "filter.instrument"),
    "an instrument over 64 characters": ({"instrument": "X" * 65}, "filter.instrument"),
    "a NUL strategy id": ({"strategyId": "\u0000"}, "filter.strategyId"),
    "a strategy id that is no id": ({"strategyId": "not-an-id"}, "filter.strategyId"),
    "a from before year 1 in UTC": ({"from": "0001-01-01T00:00:00+05:00"}, "filter.from"),
    "a to after year 9999 in UTC": ({"to": "9999-12-31T23:00:00-05:00"}, "filter.to"),
}


@pytest.mark.parametrize("why", list(UNMATCHABLE_FILTERS))
async def test_a_trades_filter_value_no_trade_could_have_is_bad_user_input_naming_it(
    client, sources, settings, caplog, why
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    conditions, field = UNMATCHABLE_FILTERS[why]

    for where, query in FILTERED_TRADES.items():
        body = await gql(client, query, {"f": conditions, "id": strategy.id}, token=token)
        assert bad_input_field(body) == field, (why, where)

    # Refused before any source was asked: no source is reported as failing.
    assert not [r for r in caplog.records if r.name == "gateway.sources"], why


async def test_a_trades_filter_strategy_id_is_matched_in_either_case(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy)])

    body = await gql(client, TRADES, {"filter": {"strategyId": strategy.id.upper()}}, token=token)

    assert data_of(body)["trades"]["totalCount"] == 1


def trade_cursor_of(payload: str) -> str:
    return base64.urlsafe_b64encode(f"trade:{payload}".encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "payload",
    [
        "2026-01-01T00:00:00+00:00|99999999999999999999999",
        "2026-01-01T00:00:00+00:00|9223372036854775808",
        "2026-01-01T00:00:00+00:00|0",
        "2026-01-01T00:00:00+00:00|-5",
        "2026-01-01T00:00:00+00:00|+5",
        "2026-01-01T00:00:00+00:00|\u0665",
        "2026-01-01T00:00:00+00:00|" + "9" * 5000,
        "0001-01-01T00:00:00+05:00|5",
        "9999-12-31T23:00:00-05:00|5",
    ],
)
async def test_a_trade_cursor_out_of_range_is_bad_user_input(client, sources, settings, payload):
    _, token = await signed_in(sources, settings)

    body = await gql(client, TRADES, {"after": trade_cursor_of(payload)}, token=token)

    assert bad_input_field(body) == "after"


async def test_a_trade_cursor_at_the_edges_of_the_range_is_accepted(client, sources, settings):
    _, token = await signed_in(sources, settings)

    for payload in (
        "0001-01-01T00:00:00+00:00|9223372036854775807",
        "9999-12-31T23:59:59+00:00|1",
    ):
        body = await gql(client, TRADES, {"after": trade_cursor_of(payload)}, token=token)
        assert data_of(body)["trades"]["edges"] == [], payload


# Authorization: another user's data never shows -----------------------------------------------


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


async def test_another_users_strategies_never_appear_in_the_list_or_its_count(
    client, sources, settings
):
    two = await two_traders(sources, settings)

    for status, expected in (
        (None, two.mine),
        ("ACTIVE", two.mine),
        ("PAUSED", []),
        ("ERROR", []),
    ):
        body = await gql(client, STRATEGIES, {"status": status}, token=two.token)
        connection = data_of(body)["strategies"]
        assert sorted(node_ids(connection)) == sorted(s.id for s in expected), status
        assert connection["totalCount"] == len(expected), status


async def test_another_users_trades_never_appear_in_the_list_or_its_count(
    client, sources, settings
):
    two = await two_traders(sources, settings)

    body = await gql(client, TRADES, {"first": 100}, token=two.token)

    page = data_of(body)["trades"]
    assert {edge["node"]["strategyId"] for edge in page["edges"]} == {s.id for s in two.mine}
    assert page["totalCount"] == 2


async def test_a_trades_filter_on_another_users_strategy_returns_nothing(client, sources, settings):
    two = await two_traders(sources, settings)

    body = await gql(client, TRADES, {"filter": {"strategyId": two.theirs[0].id}}, token=two.token)

    page = data_of(body)["trades"]
    assert page["edges"] == []
    assert page["totalCount"] == 0


async def test_a_cursor_from_another_users_list_reveals_nothing_of_theirs(
    client, sources, settings
):
    two = await two_traders(sources, settings)
    their_page = data_of(
        await gql(client, STRATEGIES, {"first": 1}, token=token_for(settings, two.other))
    )["strategies"]

    body = await gql(
        client, STRATEGIES, {"after": their_page["pageInfo"]["endCursor"]}, token=two.token
    )

    # The cursor is only a position: the viewer still sees only its own strategies.
    assert set(node_ids(data_of(body)["strategies"])) <= {s.id for s in two.mine}
    assert data_of(body)["strategies"]["totalCount"] == 2


async def test_a_trade_pointing_at_another_users_strategy_does_not_resolve_it(
    client, sources, settings
):
    viewer, token = await signed_in(sources, settings)
    other = await make_user(sources)
    theirs = await make_strategy(sources, other, name="their secret strategy")
    # A stray row: the viewer's trade that names the other user's strategy.
    await make_trades(sources, [{**trade_row(theirs), "user_id": viewer.id}])

    body = await gql(
        client, "{ trades { edges { node { strategyId strategy { id name } } } } }", token=token
    )

    node = data_of(body)["trades"]["edges"][0]["node"]
    assert node == {"strategyId": theirs.id, "strategy": None}


async def test_a_strategys_trades_never_include_another_users_rows(client, sources, settings):
    viewer, token = await signed_in(sources, settings)
    other = await make_user(sources)
    mine = await make_strategy(sources, viewer)
    # A stray row: another user's trade that names the viewer's strategy.
    await make_trades(sources, [trade_row(mine), {**trade_row(mine), "user_id": other.id}])

    body = await gql(client, STRATEGY_TRADES, {"id": mine.id}, token=token)

    trades = data_of(body)["strategy"]["trades"]
    assert trades["totalCount"] == 1
    assert len(trades["edges"]) == 1


# Cross-source fields -------------------------------------------------------------------------


async def test_me_joins_the_viewers_strategies_credentials_trades_and_analytics(
    client, sources, settings, secrets_spy
):
    viewer, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, viewer, status="ACTIVE")
    await make_credentials(sources, viewer, secrets_spy)
    await make_trades(
        sources,
        [
            trade_row(strategy, pnl=Decimal("2.5"), fees=Decimal("0.5")),
            trade_row(strategy, pnl=Decimal("-1"), fees=Decimal("0.25")),
        ],
    )
    await refresh_analytics(sources)

    body = await gql(
        client,
        """
        {
          me {
            id
            strategies { totalCount edges { node { id status } } }
            credentials { broker configured }
            trades { totalCount edges { node { strategyId netPnl } } }
            analytics { trades wins losses netPnl }
          }
        }
        """,
        token=token,
    )

    me = data_of(body)["me"]
    assert me["id"] == viewer.id
    assert me["strategies"] == {
        "totalCount": 1,
        "edges": [{"node": {"id": strategy.id, "status": "ACTIVE"}}],
    }
    assert me["credentials"] == {"broker": "binance", "configured": True}
    assert me["trades"]["totalCount"] == 2
    assert sorted(edge["node"]["netPnl"] for edge in me["trades"]["edges"]) == ["-1.25", "2"]
    assert me["analytics"] == {"trades": 2, "wins": 1, "losses": 1, "netPnl": "0.75"}


async def test_user_strategies_and_trades_paginate_like_the_root_lists(client, sources, settings):
    user, token = await signed_in(sources, settings)
    made = [await make_strategy(sources, user, status="PAUSED") for _ in range(3)]
    await make_trades(
        sources, [trade_row(made[0], entry_time=BASE - timedelta(hours=n)) for n in range(3)]
    )
    expected_trades = [trade_id for trade_id, _ in await stored_trades(sources, user)]
    query = """
    query($sAfter: String, $tAfter: String) {
      me {
        strategies(status: PAUSED, first: 2, after: $sAfter) {
          totalCount pageInfo { hasNextPage endCursor } edges { node { id } }
        }
        trades(first: 2, after: $tAfter) {
          totalCount pageInfo { hasNextPage endCursor } edges { node { id } }
        }
      }
    }
    """

    first = data_of(await gql(client, query, token=token))["me"]
    second = data_of(
        await gql(
            client,
            query,
            {
                "sAfter": first["strategies"]["pageInfo"]["endCursor"],
                "tAfter": first["trades"]["pageInfo"]["endCursor"],
            },
            token=token,
        )
    )["me"]

    assert node_ids(first["strategies"]) + node_ids(second["strategies"]) == [
        s.id for s in reversed(made)
    ]
    assert node_ids(first["trades"]) + node_ids(second["trades"]) == expected_trades
    assert [first["strategies"]["totalCount"], first["trades"]["totalCount"]] == [3, 3]
    assert second["strategies"]["pageInfo"]["hasNextPage"] is False
    assert second["trades"]["pageInfo"]["hasNextPage"] is False


async def test_strategy_owner_is_the_viewer(client, sources, settings):
    viewer, token = await signed_in(sources, settings, first_name="Owner")
    strategy = await make_strategy(sources, viewer)

    body = await gql(
        client,
        "query($id: ID!) { strategy(id: $id) { owner { id email firstName } } }",
        {"id": strategy.id},
        token=token,
    )

    assert data_of(body)["strategy"]["owner"] == {
        "id": viewer.id,
        "email": viewer.email,
        "firstName": "Owner",
    }


async def test_each_strategy_in_a_list_gets_only_its_own_trades(client, sources, settings):
    user, token = await signed_in(sources, settings)
    made = [await make_strategy(sources, user) for _ in range(3)]
    rows = [
        trade_row(strategy, entry_time=BASE - timedelta(hours=n))
        for index, strategy in enumerate(made)
        for n in range(index + 1)
    ]
    await make_trades(sources, rows)

    body = await gql(
        client,
        """
        {
          strategies {
            edges {
              node {
                id
                trades(first: 2) {
                  totalCount pageInfo { hasNextPage } edges { node { strategyId entryTime } }
                }
              }
            }
          }
        }
        """,
        token=token,
    )

    by_strategy = {
        edge["node"]["id"]: edge["node"]["trades"] for edge in data_of(body)["strategies"]["edges"]
    }
    for index, strategy in enumerate(made):
        trades = by_strategy[strategy.id]
        assert trades["totalCount"] == index + 1
        assert {edge["node"]["strategyId"] for edge in trades["edges"]} == {strategy.id}
        assert len(trades["edges"]) == min(index + 1, 2)
        assert trades["pageInfo"]["hasNextPage"] is (index + 1 > 2)
        times = [edge["node"]["entryTime"] for edge in trades["edges"]]
        assert times == sorted(times, reverse=True)


async def test_a_strategys_trades_accept_a_filter(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [
            trade_row(strategy),
            trade_row(strategy, status="OPEN", exit_time=None, pnl=None),
            trade_row(strategy, status="OPEN", exit_time=None, pnl=None),
        ],
    )

    body = await gql(
        client,
        """
        query($id: ID!) {
          strategy(id: $id) {
            open: trades(filter: {status: OPEN}) { totalCount edges { node { status } } }
            closed: trades(filter: {status: CLOSED}) { totalCount }
          }
        }
        """,
        {"id": strategy.id},
        token=token,
    )

    found = data_of(body)["strategy"]
    assert found["open"]["totalCount"] == 2
    assert [edge["node"]["status"] for edge in found["open"]["edges"]] == ["OPEN", "OPEN"]
    assert found["closed"]["totalCount"] == 1


async def test_strategy_performance_summarizes_its_closed_trades_by_day(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    sibling = await make_strategy(sources, user)
    day1 = datetime(2026, 1, 10, 12, tzinfo=UTC)
    day2 = datetime(2026, 1, 12, 12, tzinfo=UTC)
    await make_trades(
        sources,
        [
            trade_row(strategy, entry_time=day1, pnl=Decimal("10"), fees=Decimal("1")),
            trade_row(strategy, entry_time=day1, pnl=Decimal("-3"), fees=Decimal("0.5")),
            trade_row(strategy, entry_time=day2, pnl=Decimal("-12"), fees=Decimal("0.5")),
            trade_row(strategy, entry_time=day2, status="OPEN", exit_time=None, pnl=None),
            trade_row(sibling, entry_time=day2, pnl=Decimal("100"), fees=Decimal("0")),
        ],
    )
    await refresh_analytics(sources)

    body = await gql(
        client,
        """
        query($id: ID!) {
          strategy(id: $id) {
            performance {
              trades wins losses winRate grossPnl fees netPnl volume maxDrawdown lastTradeDay
            }
          }
        }
        """,
        {"id": strategy.id},
        token=token,
    )

    # Day 1 nets 9 - 3.5 = 5.5; day 2 nets -12.5: the curve goes 5.5 then -7, a fall of 12.5.
    assert data_of(body)["strategy"]["performance"] == {
        "trades": 3,
        "wins": 1,
        "losses": 2,
        "winRate": pytest.approx(1 / 3),
        "grossPnl": "-5",
        "fees": "2",
        "netPnl": "-7",
        "volume": "150",
        "maxDrawdown": "12.5",
        "lastTradeDay": "2026-01-12",
    }


async def test_a_strategys_performance_never_includes_another_users_rows(client, sources, settings):
    viewer, token = await signed_in(sources, settings)
    other = await make_user(sources)
    mine = await make_strategy(sources, viewer)
    # A stray row on another day: another user's trade that names the viewer's strategy.
    await make_trades(
        sources,
        [
            trade_row(mine, entry_time=datetime(2026, 1, 10, 12, tzinfo=UTC), pnl=Decimal(3)),
            {
                **trade_row(mine, entry_time=datetime(2026, 1, 11, 12, tzinfo=UTC)),
                "user_id": other.id,
                "pnl": Decimal(500),
            },
        ],
    )
    await refresh_analytics(sources)

    body = await gql(
        client,
        "query($id: ID!) { strategy(id: $id) { performance { trades netPnl lastTradeDay } } }",
        {"id": mine.id},
        token=token,
    )

    assert data_of(body)["strategy"]["performance"] == {
        "trades": 1,
        "netPnl": "2.9",
        "lastTradeDay": "2026-01-10",
    }


async def test_a_strategy_without_closed_trades_has_empty_performance(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy, status="OPEN", exit_time=None, pnl=None)])
    await refresh_analytics(sources)

    body = await gql(
        client,
        "query($id: ID!) { strategy(id: $id) "
        "{ performance { trades winRate netPnl maxDrawdown lastTradeDay } } }",
        {"id": strategy.id},
        token=token,
    )

    assert data_of(body)["strategy"]["performance"] == {
        "trades": 0,
        "winRate": None,
        "netPnl": "0",
        "maxDrawdown": "0",
        "lastTradeDay": None,
    }


async def test_trade_strategy_resolves_the_strategy_that_made_it(client, sources, settings):
    user, token = await signed_in(sources, settings)
    first = await make_strategy(sources, user, name="alpha")
    second = await make_strategy(sources, user, name="beta")
    await make_trades(
        sources,
        [
            trade_row(first, entry_time=BASE - timedelta(hours=2)),
            trade_row(second, entry_time=BASE - timedelta(hours=1)),
        ],
    )

    body = await gql(
        client,
        "{ trades { edges { node { strategyId strategy { id name owner { id } } } } } }",
        token=token,
    )

    assert [edge["node"] for edge in data_of(body)["trades"]["edges"]] == [
        {
            "strategyId": second.id,
            "strategy": {"id": second.id, "name": "beta", "owner": {"id": user.id}},
        },
        {
            "strategyId": first.id,
            "strategy": {"id": first.id, "name": "alpha", "owner": {"id": user.id}},
        },
    ]


async def test_a_trade_of_a_deleted_strategy_has_a_null_strategy(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy)])
    await sources.strategies.db["strategies"].delete_many({})

    body = await gql(
        client, "{ trades { edges { node { strategyName strategy { id } } } } }", token=token
    )

    assert data_of(body)["trades"]["edges"] == [
        {"node": {"strategyName": strategy.name, "strategy": None}}
    ]
