"""The viewer's scope: another user's strategies and trades never show, in a list, a count,
a cursor or a join."""

from __future__ import annotations

from tests.helpers import (
    data_of,
    gid,
    gql,
    make_strategy,
    make_trades,
    make_user,
    signed_in,
    token_for,
    trade_row,
)
from tests.schema.reads import (
    STRATEGIES,
    STRATEGY_TRADES,
    TRADES,
    node_ids,
    two_traders,
)

# Authorization: another user's data never shows -----------------------------------------------


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
    assert {edge["node"]["strategyId"] for edge in page["edges"]} == {gid(s) for s in two.mine}
    assert page["totalCount"] == 2


async def test_a_trades_filter_on_another_users_strategy_returns_nothing(client, sources, settings):
    two = await two_traders(sources, settings)

    body = await gql(
        client, TRADES, {"filter": {"strategyId": gid(two.theirs[0])}}, token=two.token
    )

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
    assert node == {"strategyId": gid(theirs), "strategy": None}


async def test_a_strategys_trades_never_include_another_users_rows(client, sources, settings):
    viewer, token = await signed_in(sources, settings)
    other = await make_user(sources)
    mine = await make_strategy(sources, viewer)
    # A stray row: another user's trade that names the viewer's strategy.
    await make_trades(sources, [trade_row(mine), {**trade_row(mine), "user_id": other.id}])

    body = await gql(client, STRATEGY_TRADES, {"id": gid(mine)}, token=token)

    trades = data_of(body)["strategy"]["trades"]
    assert trades["totalCount"] == 1
    assert len(trades["edges"]) == 1
