"""`me` and the fields that join across sources: User.strategies / credentials / trades /
analytics, Strategy.owner / trades / performance, Trade.strategy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.helpers import (
    data_of,
    gid,
    gql,
    make_credentials,
    make_strategy,
    make_trades,
    make_user,
    refresh_analytics,
    signed_in,
    trade_row,
)
from tests.schema.reads import (
    BASE,
    ME,
    node_ids,
    stored_trades,
)

# me ------------------------------------------------------------------------------------


async def test_me_returns_the_viewers_own_account(client, sources, settings):
    await make_user(sources)
    user, token = await signed_in(
        sources, settings, first_name="Grace", last_name="Hopper", phone="+1 555 0199"
    )

    body = await gql(client, ME, token=token)

    assert data_of(body)["me"] == {
        "id": gid(user),
        "email": user.email,
        "firstName": "Grace",
        "lastName": "Hopper",
        "phone": "+1 555 0199",
        "role": "USER",
        "createdAt": user.created_at.isoformat(),
        "updatedAt": user.updated_at.isoformat(),
    }
    assert body["data"]["me"]["createdAt"].endswith("+00:00")


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
    assert me["id"] == gid(viewer)
    assert me["strategies"] == {
        "totalCount": 1,
        "edges": [{"node": {"id": gid(strategy), "status": "ACTIVE"}}],
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
        {"id": gid(strategy)},
        token=token,
    )

    assert data_of(body)["strategy"]["owner"] == {
        "id": gid(viewer),
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
        trades = by_strategy[gid(strategy)]
        assert trades["totalCount"] == index + 1
        assert {edge["node"]["strategyId"] for edge in trades["edges"]} == {gid(strategy)}
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
        {"id": gid(strategy)},
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
        {"id": gid(strategy)},
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
        {"id": gid(mine)},
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
        {"id": gid(strategy)},
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
            "strategyId": gid(second),
            "strategy": {"id": gid(second), "name": "beta", "owner": {"id": gid(user)}},
        },
        {
            "strategyId": gid(first),
            "strategy": {"id": gid(first), "name": "alpha", "owner": {"id": gid(user)}},
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
