"""`strategy(id)` and `strategies`: every field, status filters and Relay pagination."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from bson import ObjectId

from schema._ids import global_id
from tests.helpers import (
    data_of,
    error_codes,
    gid,
    gql,
    make_strategy,
    make_trades,
    make_user,
    signed_in,
    trade_row,
)
from tests.schema.reads import (
    BASE,
    STRATEGIES,
    STRATEGY,
    TRADES,
    bad_input_field,
    node_ids,
    walk,
)

# strategy(id) ----------------------------------------------------------------------------

MISSING = str(global_id("Strategy", "0" * 24))


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

    body = await gql(client, STRATEGY, {"id": gid(strategy)}, token=token)

    assert data_of(body)["strategy"] == {
        "id": gid(strategy),
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


async def test_a_strategy_stored_without_instrument_or_broker_reads_them_as_empty(
    client, sources, settings
):
    # Written by an older platform version: no instrument, a null broker.
    user, token = await signed_in(sources, settings)
    inserted = await sources.strategies.db["strategies"].insert_one(
        {
            "userId": ObjectId(user.id),
            "name": "legacy",
            "code": "",
            "status": "stopped",
            "broker": None,
        }
    )

    body = await gql(
        client, "{ strategies { edges { node { id instrument broker } } } }", token=token
    )

    assert "errors" not in body, body
    assert data_of(body)["strategies"]["edges"] == [
        {
            "node": {
                "id": global_id("Strategy", str(inserted.inserted_id)),
                "instrument": "",
                "broker": "",
            }
        }
    ]


async def test_a_user_never_sees_another_users_strategy_by_id(client, sources, settings):
    owner = await make_user(sources)
    theirs = await make_strategy(sources, owner, name="not yours")
    _, token = await signed_in(sources, settings)

    body = await gql(client, STRATEGY, {"id": gid(theirs)}, token=token)

    assert error_codes(body) == ["NOT_FOUND"]
    assert body["data"] == {"strategy": None}
    assert "not yours" not in str(body)


async def test_an_unknown_strategy_id_is_not_found(client, sources, settings):
    _, token = await signed_in(sources, settings)

    body = await gql(client, STRATEGY, {"id": MISSING}, token=token)

    assert error_codes(body) == ["NOT_FOUND"]
    assert body["data"] == {"strategy": None}


async def test_an_id_that_is_not_a_strategys_is_bad_user_input(client, sources, settings):
    user, token = await signed_in(sources, settings)

    # A raw ObjectId, not base64 at all, empty, the viewer's own (User) id.
    for strategy_id in ("0123456789abcdef01234567", "not-an-object-id", "", gid(user)):
        body = await gql(client, STRATEGY, {"id": strategy_id}, token=token)
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"}
        assert body["data"] == {"strategy": None}, strategy_id


@pytest.mark.parametrize(
    ("field", "code"),
    [
        (f'strategy(id: "{MISSING}") {{ id }}', "NOT_FOUND"),
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

    assert body["data"] == {"me": {"id": gid(user)}, name: None}
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
