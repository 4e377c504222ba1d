"""`trades`: order, filters, exact amounts and times, cursors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.helpers import (
    data_of,
    error_codes,
    gid,
    gql,
    key,
    make_strategy,
    make_trades,
    signed_in,
    trade_row,
)
from tests.schema.reads import (
    BASE,
    TRADE_FIELDS,
    TRADES,
    bad_input_field,
    node_ids,
    stored_trades,
    walk,
)

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
    tied = [int(key(edge["node"]["id"])) for edge in page["edges"][1:4]]
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
        "strategyId": gid(strategy),
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

    body = await gql(client, TRADES, {"filter": {"strategyId": gid(wanted)}}, token=token)

    page = data_of(body)["trades"]
    assert {edge["node"]["strategyId"] for edge in page["edges"]} == {gid(wanted)}
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
        body = await gql(client, query, {"f": conditions, "id": gid(strategy)}, token=token)
        assert bad_input_field(body) == field, (why, where)

    # Refused before any source was asked: no source is reported as failing.
    assert not [r for r in caplog.records if r.name == "gateway.sources"], why


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
