"""The cross-source aggregates over HTTP: `profile`, `dashboard`, `analytics`, and the
credentials status view.

Net PnL is pnl - fees over CLOSED trades only, and a trade belongs to the UTC day of its
exit. The analytics report reads the rolled-up daily metrics, so tests that query it
call `refresh_analytics` after inserting trades.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from datasources import Sources
from datasources import credentials as credentials_source
from datasources.analytics import record_activity
from datasources.strategies import StrategyRecord
from datasources.users import UserRecord
from tests.helpers import (
    data_of,
    error_codes,
    gid,
    gql,
    key,
    make_credentials,
    make_strategy,
    make_trades,
    make_user,
    refresh_analytics,
    signed_in,
    suite_box,
    token_for,
    trade_row,
)

PROFILE = """
{
  profile {
    user { id email }
    memberSince
    credentials { broker configured }
    strategyCount
    tradeCount
    lifetimePnl
  }
}
"""
PNL = "{ dashboard { pnl { today sevenDays thirtyDays allTime } } }"
ANALYTICS = """
query Analytics($from: Date, $to: Date, $strategyId: ID) {
  analytics(from: $from, to: $to, strategyId: $strategyId) {
    from to
    trades wins losses winRate grossPnl fees netPnl volume maxDrawdown
    daily { day trades wins losses grossPnl fees netPnl volume cumulativeNetPnl }
    byStrategy { strategyId trades netPnl winRate strategy { id name } }
  }
}
"""
CREDENTIALS_FIELDS = "broker clientId configuredFields apiKeyHint updatedAt configured"
ALL_SIX_SECRETS = {
    "accessToken": "ACCESS-plain-0001",
    "brokerUsername": "BROKERUSER-plain-0002",
    "brokerPassword": "BROKERPASS-plain-0003",
    "totpSecret": "TOTPSECRET-plain-0004",
    "apiKey": "APIKEY-plain-0005-abcd",
    "apiSecret": "APISECRET-plain-0006",
}


# Helpers -------------------------------------------------------------------------------


def utc_today() -> date:
    return datetime.now(UTC).date()


def on_day(days_ago: int, hour: int = 12, minute: int = 0) -> datetime:
    """A moment on the UTC day `days_ago` days before today."""
    return datetime.combine(utc_today() - timedelta(days=days_ago), time(hour, minute), UTC)


def closed(strategy: StrategyRecord, exit_time: datetime, **overrides: Any) -> dict[str, Any]:
    """A closed trade of `strategy` that exits at `exit_time` (entered an hour before)."""
    return trade_row(
        strategy, entry_time=exit_time - timedelta(hours=1), exit_time=exit_time, **overrides
    )


def opened(strategy: StrategyRecord, entry_time: datetime, **overrides: Any) -> dict[str, Any]:
    """An open trade of `strategy`."""
    values: dict[str, Any] = {"status": "OPEN", "exit_price": None, "exit_time": None, "pnl": None}
    return trade_row(strategy, entry_time=entry_time, **{**values, **overrides})


async def make_activity(
    sources: Sources, user: UserRecord, kind: str, at: datetime, **values: Any
) -> None:
    async with sources.analytics.engine.begin() as conn:
        await record_activity(conn=conn, user_id=user.id, kind=kind, at=at, **values)


async def another_trader(sources: Sources) -> UserRecord:
    """A second user with strategies in every status, credentials, trades on every recent
    day, rolled-up metrics and activity: none of it may ever reach the viewer."""
    other = await make_user(sources)
    await make_credentials(sources, other, secrets={"apiKey": "OTHER-USERS-KEY-zzzz"})
    strategies = [
        await make_strategy(sources, other, status=status)
        for status in ("ACTIVE", "PAUSED", "STOPPED", "ERROR")
    ]
    await make_trades(
        sources,
        [
            closed(strategy, on_day(days, hour=15), pnl=Decimal(1000), fees=Decimal(1))
            for strategy in strategies
            for days in range(0, 40, 3)
        ]
        + [opened(strategies[0], on_day(0, hour=1, minute=1))],
    )
    await make_activity(sources, other, "STRATEGY_STARTED", on_day(0, hour=0, minute=1))
    return other


# profile -------------------------------------------------------------------------------


async def test_profile_counts_strategies_and_trades_and_sums_the_net_pnl_of_closed_trades(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    first = await make_strategy(sources, user, status="ACTIVE")
    second = await make_strategy(sources, user, status="STOPPED")
    await make_strategy(sources, user, status="ERROR")
    await make_trades(
        sources,
        [
            closed(first, on_day(40), pnl=Decimal("12.50"), fees=Decimal("0.25")),
            closed(first, on_day(2), pnl=Decimal("-4"), fees=Decimal("0.25")),
            closed(second, on_day(0), pnl=Decimal("0.1"), fees=Decimal("0")),
            opened(second, on_day(0), fees=Decimal("7")),
            # The recorder may keep an open trade's running (unrealized) PnL.
            opened(second, on_day(0), pnl=Decimal("1000"), fees=Decimal("1")),
        ],
    )

    profile = data_of(await gql(client, PROFILE, token=token))["profile"]

    assert profile["strategyCount"] == 3
    assert profile["tradeCount"] == 5
    # (12.5 - 0.25) + (-4 - 0.25) + 0.1; the open trades do not count.
    assert profile["lifetimePnl"] == "8.1"


async def test_profile_shows_the_account_and_when_it_was_created(client, sources, settings):
    user, token = await signed_in(sources, settings)
    await make_credentials(sources, user, broker="zerodha")

    profile = data_of(await gql(client, PROFILE, token=token))["profile"]

    assert profile["user"] == {"id": gid(user), "email": user.email}
    assert profile["memberSince"] == user.created_at.isoformat()
    assert profile["memberSince"].endswith("+00:00")
    assert profile["credentials"] == {"broker": "zerodha", "configured": True}


async def test_the_profile_of_a_new_user_has_zero_counts_and_no_credentials(
    client, sources, settings
):
    _, token = await signed_in(sources, settings)

    profile = data_of(await gql(client, PROFILE, token=token))["profile"]

    assert profile["credentials"] is None
    assert [profile["strategyCount"], profile["tradeCount"], profile["lifetimePnl"]] == [0, 0, "0"]


async def test_a_profile_never_counts_another_users_strategies_trades_or_credentials(
    client, sources, settings
):
    await another_trader(sources)
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [closed(strategy, on_day(1), pnl=Decimal(3), fees=Decimal(1))])

    profile = data_of(await gql(client, PROFILE, token=token))["profile"]

    assert profile["strategyCount"] == 1
    assert profile["tradeCount"] == 1
    assert profile["lifetimePnl"] == "2"
    assert profile["credentials"] is None


# dashboard: strategies ---------------------------------------------------------------------


async def test_the_dashboard_counts_strategies_by_status(client, sources, settings):
    await another_trader(sources)
    user, token = await signed_in(sources, settings)
    for status, how_many in (("ACTIVE", 3), ("PAUSED", 1), ("ERROR", 2)):
        for _ in range(how_many):
            await make_strategy(sources, user, status=status)

    body = await gql(
        client,
        "{ dashboard { strategyCounts { active paused stopped error total } } }",
        token=token,
    )

    assert data_of(body)["dashboard"]["strategyCounts"] == {
        "active": 3,
        "paused": 1,
        "stopped": 0,
        "error": 2,
        "total": 6,
    }


async def test_the_dashboard_lists_the_newest_active_strategies_only(client, sources, settings):
    await another_trader(sources)
    user, token = await signed_in(sources, settings)
    active = []
    for index in range(4):
        active.append(await make_strategy(sources, user, status="ACTIVE", name=f"a{index}"))
        await make_strategy(sources, user, status="PAUSED")

    body = await gql(
        client,
        "{ dashboard { all: activeStrategies { id status } "
        "two: activeStrategies(first: 2) { id } } }",
        token=token,
    )

    dashboard = data_of(body)["dashboard"]
    assert [s["id"] for s in dashboard["all"]] == [gid(s) for s in reversed(active)]
    assert {s["status"] for s in dashboard["all"]} == {"ACTIVE"}
    assert [s["id"] for s in dashboard["two"]] == [gid(active[3]), gid(active[2])]


# dashboard: trades and PnL -------------------------------------------------------------------


async def test_the_dashboard_lists_recent_trades_newest_entry_first(client, sources, settings):
    await another_trader(sources)
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    entries = [on_day(days, hour=hour) for days, hour in ((3, 9), (0, 1), (1, 23), (0, 0), (2, 5))]
    await make_trades(sources, [opened(strategy, entry) for entry in entries])

    body = await gql(
        client,
        "{ dashboard { recentTrades { entryTime strategyId } "
        "three: recentTrades(first: 3) { entryTime } } }",
        token=token,
    )

    dashboard = data_of(body)["dashboard"]
    newest_first = sorted(entries, reverse=True)
    assert [t["entryTime"] for t in dashboard["recentTrades"]] == [
        entry.isoformat() for entry in newest_first
    ]
    assert {t["strategyId"] for t in dashboard["recentTrades"]} == {gid(strategy)}
    assert [t["entryTime"] for t in dashboard["three"]] == [
        entry.isoformat() for entry in newest_first[:3]
    ]


async def test_the_dashboard_sums_net_pnl_over_today_seven_thirty_days_and_all_time(
    client, sources, settings
):
    await another_trader(sources)
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [
            closed(strategy, on_day(0, hour=0, minute=5), pnl=Decimal(1), fees=Decimal(0)),
            closed(strategy, on_day(6), pnl=Decimal(20), fees=Decimal(0)),  # last day of 7
            closed(strategy, on_day(7), pnl=Decimal(300), fees=Decimal(0)),  # first day outside
            closed(strategy, on_day(29), pnl=Decimal(4000), fees=Decimal(0)),  # last day of 30
            closed(strategy, on_day(30), pnl=Decimal(50000), fees=Decimal(0)),
            closed(strategy, on_day(400), pnl=Decimal(600000), fees=Decimal(0)),
            opened(strategy, on_day(0, hour=0, minute=1), fees=Decimal(7000000)),
        ],
    )

    body = await gql(client, PNL, token=token)

    assert data_of(body)["dashboard"]["pnl"] == {
        "today": "1",
        "sevenDays": "21",
        "thirtyDays": "4321",
        "allTime": "654321",
    }


async def test_the_dashboard_pnl_is_net_of_fees(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [
            closed(strategy, on_day(0, hour=0), pnl=Decimal("5.00"), fees=Decimal("0.10")),
            closed(strategy, on_day(0, hour=0), pnl=Decimal("-2.00"), fees=Decimal("0.15")),
        ],
    )

    body = await gql(client, PNL, token=token)

    assert data_of(body)["dashboard"]["pnl"]["today"] == "2.75"


async def test_decimal_sums_are_exact(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [
            closed(strategy, on_day(0, hour=0), pnl=Decimal("0.1"), fees=Decimal(0)),
            closed(strategy, on_day(1), pnl=Decimal("0.2"), fees=Decimal(0)),
        ],
    )
    await refresh_analytics(sources)

    dashboard = data_of(await gql(client, PNL, token=token))["dashboard"]
    profile = data_of(await gql(client, PROFILE, token=token))["profile"]
    analytics = data_of(await gql(client, ANALYTICS, token=token))["analytics"]

    assert dashboard["pnl"]["sevenDays"] == "0.3"
    assert dashboard["pnl"]["allTime"] == "0.3"
    assert profile["lifetimePnl"] == "0.3"
    assert analytics["netPnl"] == "0.3"
    assert [day["cumulativeNetPnl"] for day in analytics["daily"]] == ["0.2", "0.3"]


async def test_a_trade_counts_on_the_utc_day_of_its_exit_not_of_its_entry(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    exits_today = on_day(0, hour=0, minute=10)
    exits_yesterday = on_day(1, hour=23, minute=59)
    await make_trades(
        sources,
        [
            trade_row(
                strategy,
                entry_time=exits_today - timedelta(hours=3),
                exit_time=exits_today,
                pnl=Decimal(5),
                fees=Decimal(0),
            ),
            # Written with a +05:00 offset: 04:59 there is 23:59 UTC yesterday.
            trade_row(
                strategy,
                entry_time=exits_yesterday - timedelta(days=2),
                exit_time=exits_yesterday.astimezone(timezone(timedelta(hours=5))),
                pnl=Decimal(7),
                fees=Decimal(0),
            ),
        ],
    )

    body = await gql(client, PNL, token=token)

    assert data_of(body)["dashboard"]["pnl"]["today"] == "5"
    assert data_of(body)["dashboard"]["pnl"]["sevenDays"] == "12"


async def test_the_equity_curve_has_one_point_per_day_with_the_running_total(
    client, sources, settings
):
    await another_trader(sources)
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_trades(
        sources,
        [
            closed(strategy, on_day(10), pnl=Decimal(100), fees=Decimal(0)),  # before the window
            closed(strategy, on_day(3), pnl=Decimal("-30.5"), fees=Decimal("0.5")),
            closed(strategy, on_day(1), pnl=Decimal(12), fees=Decimal(2)),
            closed(strategy, on_day(1, hour=18), pnl=Decimal(5), fees=Decimal(0)),
            opened(strategy, on_day(0)),
        ],
    )

    body = await gql(
        client, "{ dashboard { equityCurve(days: 5) { day netPnl equity } } }", token=token
    )

    today = utc_today()
    assert data_of(body)["dashboard"]["equityCurve"] == [
        {"day": (today - timedelta(days=4)).isoformat(), "netPnl": "0", "equity": "100"},
        {"day": (today - timedelta(days=3)).isoformat(), "netPnl": "-31", "equity": "69"},
        {"day": (today - timedelta(days=2)).isoformat(), "netPnl": "0", "equity": "69"},
        {"day": (today - timedelta(days=1)).isoformat(), "netPnl": "15", "equity": "84"},
        {"day": today.isoformat(), "netPnl": "0", "equity": "84"},
    ]


async def test_the_equity_curve_covers_thirty_days_by_default(client, sources, settings):
    _, token = await signed_in(sources, settings)

    body = await gql(client, "{ dashboard { equityCurve { day equity } } }", token=token)

    curve = data_of(body)["dashboard"]["equityCurve"]
    assert len(curve) == 30
    assert curve[0]["day"] == (utc_today() - timedelta(days=29)).isoformat()
    assert curve[-1]["day"] == utc_today().isoformat()
    assert {point["equity"] for point in curve} == {"0"}


@pytest.mark.parametrize("days", [-1, 101])
async def test_an_equity_curve_length_outside_zero_to_one_hundred_is_bad_user_input(
    client, sources, settings, days
):
    _, token = await signed_in(sources, settings)

    body = await gql(
        client,
        "query($days: Int!) { dashboard { pnl { allTime } equityCurve(days: $days) { day } } }",
        {"days": days},
        token=token,
    )

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "days"
    assert body["data"]["dashboard"] == {"pnl": {"allTime": "0"}, "equityCurve": None}


# dashboard: credentials and activity -------------------------------------------------------


async def test_the_dashboard_says_whether_credentials_are_configured(client, sources, settings):
    await another_trader(sources)
    user, token = await signed_in(sources, settings)
    query = "{ dashboard { credentialsConfigured } }"

    before = data_of(await gql(client, query, token=token))["dashboard"]
    await make_credentials(sources, user)
    after = data_of(await gql(client, query, token=token))["dashboard"]

    assert before == {"credentialsConfigured": False}
    assert after == {"credentialsConfigured": True}


async def test_credentials_stored_without_any_secret_are_not_configured(client, sources, settings):
    user, token = await signed_in(sources, settings)
    await credentials_source.upsert_credentials(
        db=sources.credentials.db,
        box=suite_box(),
        user_id=user.id,
        broker="binance",
        changes={"clientId": "c-1"},
    )

    body = await gql(
        client,
        "{ dashboard { credentialsConfigured } "
        "me { credentials { broker configuredFields apiKeyHint configured } } }",
        token=token,
    )

    assert data_of(body) == {
        "dashboard": {"credentialsConfigured": False},
        "me": {
            "credentials": {
                "broker": "binance",
                "configuredFields": [],
                "apiKeyHint": None,
                "configured": False,
            }
        },
    }


async def test_the_dashboard_lists_recent_activity_newest_first(client, sources, settings):
    await another_trader(sources)
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await make_activity(sources, user, "SIGNED_IN", on_day(3))
    await make_activity(
        sources,
        user,
        "STRATEGY_STARTED",
        on_day(0, hour=0, minute=2),
        subject_id=strategy.id,
        data={"from": "STOPPED", "to": "ACTIVE"},
    )
    await make_activity(sources, user, "STRATEGY_PAUSED", on_day(1))

    body = await gql(
        client,
        "{ dashboard { recentActivity { kind subjectId at data } "
        "latest: recentActivity(first: 1) { kind } } }",
        token=token,
    )

    dashboard = data_of(body)["dashboard"]
    assert dashboard["recentActivity"] == [
        {
            "kind": "STRATEGY_STARTED",
            "subjectId": gid(strategy),
            "at": on_day(0, hour=0, minute=2).isoformat(),
            "data": {"from": "STOPPED", "to": "ACTIVE"},
        },
        {"kind": "STRATEGY_PAUSED", "subjectId": None, "at": on_day(1).isoformat(), "data": {}},
        {"kind": "SIGNED_IN", "subjectId": None, "at": on_day(3).isoformat(), "data": {}},
    ]
    assert dashboard["latest"] == [{"kind": "STRATEGY_STARTED"}]


async def test_an_activity_kind_this_version_does_not_know_reads_as_other(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    await make_activity(sources, user, "STRATEGY_ARCHIVED", on_day(0))

    body = await gql(client, "{ dashboard { recentActivity { kind } } }", token=token)

    assert data_of(body)["dashboard"]["recentActivity"] == [{"kind": "OTHER"}]


async def test_the_whole_dashboard_answers_from_all_five_sources_in_one_query(
    client, sources, settings
):
    await another_trader(sources)
    user, token = await signed_in(sources, settings, first_name="Dana")
    active = await make_strategy(sources, user, status="ACTIVE")
    await make_strategy(sources, user, status="PAUSED")
    await make_credentials(sources, user)
    await make_trades(
        sources, [closed(active, on_day(0, hour=0, minute=30), pnl=Decimal(9), fees=Decimal(1))]
    )
    await make_activity(sources, user, "SIGNED_IN", on_day(0, hour=0))

    body = await gql(
        client,
        """
        {
          dashboard {
            user { id firstName }
            strategyCounts { active paused total }
            activeStrategies { id }
            recentTrades { strategyId netPnl }
            pnl { today allTime }
            equityCurve(days: 1) { netPnl equity }
            credentialsConfigured
            recentActivity { kind }
          }
        }
        """,
        token=token,
    )

    assert data_of(body)["dashboard"] == {
        "user": {"id": gid(user), "firstName": "Dana"},
        "strategyCounts": {"active": 1, "paused": 1, "total": 2},
        "activeStrategies": [{"id": gid(active)}],
        "recentTrades": [{"strategyId": gid(active), "netPnl": "8"}],
        "pnl": {"today": "8", "allTime": "8"},
        "equityCurve": [{"netPnl": "8", "equity": "8"}],
        "credentialsConfigured": True,
        "recentActivity": [{"kind": "SIGNED_IN"}],
    }


async def test_a_new_users_dashboard_is_empty_but_complete(client, sources, settings):
    await another_trader(sources)
    _, token = await signed_in(sources, settings)

    body = await gql(
        client,
        """
        {
          dashboard {
            strategyCounts { total }
            activeStrategies { id }
            recentTrades { id }
            pnl { today sevenDays thirtyDays allTime }
            credentialsConfigured
            recentActivity { kind }
          }
        }
        """,
        token=token,
    )

    assert data_of(body)["dashboard"] == {
        "strategyCounts": {"total": 0},
        "activeStrategies": [],
        "recentTrades": [],
        "pnl": {"today": "0", "sevenDays": "0", "thirtyDays": "0", "allTime": "0"},
        "credentialsConfigured": False,
        "recentActivity": [],
    }


# analytics -----------------------------------------------------------------------------------


async def analytics_history(sources: Sources, user: UserRecord):
    """Two strategies with closed trades on three days, an open trade, and metrics rolled up.

    alpha: 2026-01-05 +10 -1 fee (win), 2026-01-06 -4 -1 fee (loss)
    beta:  2026-01-05 +3 -0 fee (win), 2026-01-08 -2.5 -0.5 fee (loss)
    """
    alpha = await make_strategy(sources, user, name="alpha")
    beta = await make_strategy(sources, user, name="beta")

    def at(day: int) -> datetime:
        return datetime(2026, 1, day, 12, tzinfo=UTC)

    await make_trades(
        sources,
        [
            closed(alpha, at(5), pnl=Decimal(10), fees=Decimal(1), quantity=Decimal(2)),
            closed(alpha, at(6), pnl=Decimal(-4), fees=Decimal(1)),
            closed(beta, at(5), pnl=Decimal(3), fees=Decimal(0)),
            closed(beta, at(8), pnl=Decimal("-2.5"), fees=Decimal("0.5")),
            opened(beta, at(8)),
        ],
    )
    await refresh_analytics(sources)
    return alpha, beta


async def test_analytics_totals_the_viewers_closed_trades_by_day_and_by_strategy(
    client, sources, settings
):
    await another_trader(sources)
    user, token = await signed_in(sources, settings)
    alpha, beta = await analytics_history(sources, user)

    report = data_of(await gql(client, ANALYTICS, token=token))["analytics"]

    assert {key: report[key] for key in report if key not in ("daily", "byStrategy")} == {
        "from": None,
        "to": None,
        "trades": 4,
        "wins": 2,
        "losses": 2,
        "winRate": 0.5,
        "grossPnl": "6.5",
        "fees": "2.5",
        "netPnl": "4",
        "volume": "350",
        # Cumulative: 12, 7, 4: the largest fall from the peak of 12 is 8.
        "maxDrawdown": "8",
    }
    assert report["daily"] == [
        {
            "day": "2026-01-05",
            "trades": 2,
            "wins": 2,
            "losses": 0,
            "grossPnl": "13",
            "fees": "1",
            "netPnl": "12",
            "volume": "250",
            "cumulativeNetPnl": "12",
        },
        {
            "day": "2026-01-06",
            "trades": 1,
            "wins": 0,
            "losses": 1,
            "grossPnl": "-4",
            "fees": "1",
            "netPnl": "-5",
            "volume": "50",
            "cumulativeNetPnl": "7",
        },
        {
            "day": "2026-01-08",
            "trades": 1,
            "wins": 0,
            "losses": 1,
            "grossPnl": "-2.5",
            "fees": "0.5",
            "netPnl": "-3",
            "volume": "50",
            "cumulativeNetPnl": "4",
        },
    ]
    by_strategy = {row["strategyId"]: row for row in report["byStrategy"]}
    assert by_strategy == {
        gid(alpha): {
            "strategyId": gid(alpha),
            "trades": 2,
            "netPnl": "4",
            "winRate": 0.5,
            "strategy": {"id": gid(alpha), "name": "alpha"},
        },
        gid(beta): {
            "strategyId": gid(beta),
            "trades": 2,
            "netPnl": "0",
            "winRate": 0.5,
            "strategy": {"id": gid(beta), "name": "beta"},
        },
    }


async def test_analytics_between_two_days_includes_both_days(client, sources, settings):
    user, token = await signed_in(sources, settings)
    await analytics_history(sources, user)

    body = await gql(client, ANALYTICS, {"from": "2026-01-06", "to": "2026-01-08"}, token=token)

    report = data_of(body)["analytics"]
    assert report["from"] == "2026-01-06"
    assert report["to"] == "2026-01-08"
    assert [day["day"] for day in report["daily"]] == ["2026-01-06", "2026-01-08"]
    assert [report["trades"], report["netPnl"]] == [2, "-8"]
    assert [day["cumulativeNetPnl"] for day in report["daily"]] == ["-5", "-8"]


async def test_analytics_from_a_single_day_to_itself_covers_that_day(client, sources, settings):
    user, token = await signed_in(sources, settings)
    await analytics_history(sources, user)

    body = await gql(client, ANALYTICS, {"from": "2026-01-05", "to": "2026-01-05"}, token=token)

    report = data_of(body)["analytics"]
    assert [report["trades"], report["netPnl"], report["maxDrawdown"]] == [2, "12", "0"]


async def test_analytics_of_one_strategy_counts_only_its_trades(client, sources, settings):
    user, token = await signed_in(sources, settings)
    _alpha, beta = await analytics_history(sources, user)

    body = await gql(client, ANALYTICS, {"strategyId": gid(beta)}, token=token)

    report = data_of(body)["analytics"]
    assert [report["trades"], report["wins"], report["netPnl"]] == [2, 1, "0"]
    assert [row["strategyId"] for row in report["byStrategy"]] == [gid(beta)]
    assert [day["day"] for day in report["daily"]] == ["2026-01-05", "2026-01-08"]


@pytest.mark.parametrize("strategy_id", ["x\u0000", "\u0000", "not-an-id", ""])
async def test_analytics_of_a_strategy_id_that_is_no_id_is_bad_user_input(
    client, sources, settings, caplog, strategy_id
):
    _, token = await signed_in(sources, settings)

    for query, path in (
        ("query($s: ID) { analytics(strategyId: $s) { netPnl } }", "analytics"),
        ("query($s: ID) { me { analytics(strategyId: $s) { netPnl } } }", "me"),
    ):
        body = await gql(client, query, {"s": strategy_id}, token=token)
        assert error_codes(body) == ["BAD_USER_INPUT"], (query, strategy_id)
        assert body["errors"][0]["extensions"]["field"] == "strategyId", query
        assert list(body["data"]) == [path], query

    assert not [r for r in caplog.records if r.name == "gateway.sources"], strategy_id


async def test_analytics_with_from_after_to_is_bad_user_input(client, sources, settings):
    _, token = await signed_in(sources, settings)

    body = await gql(client, ANALYTICS, {"from": "2026-01-09", "to": "2026-01-08"}, token=token)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "from"
    assert body["data"] == {"analytics": None}


async def test_analytics_of_another_users_strategy_is_empty(client, sources, settings):
    other = await make_user(sources)
    theirs, _ = await analytics_history(sources, other)
    _, token = await signed_in(sources, settings)

    body = await gql(client, ANALYTICS, {"strategyId": gid(theirs)}, token=token)

    report = data_of(body)["analytics"]
    assert [report["trades"], report["netPnl"], report["winRate"]] == [0, "0", None]
    assert report["daily"] == []
    assert report["byStrategy"] == []


async def test_analytics_never_includes_another_users_metrics(client, sources, settings):
    await another_trader(sources)
    user, token = await signed_in(sources, settings)
    alpha, beta = await analytics_history(sources, user)

    body = await gql(
        client, "{ me { analytics { trades netPnl byStrategy { strategyId } } } }", token=token
    )

    report = data_of(body)["me"]["analytics"]
    assert [report["trades"], report["netPnl"]] == [4, "4"]
    assert {row["strategyId"] for row in report["byStrategy"]} == {gid(alpha), gid(beta)}


async def test_by_strategy_takes_a_page_size_and_refuses_one_beyond_the_maximum(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    alpha, beta = await analytics_history(sources, user)

    def page(first: int) -> str:
        return f"{{ analytics {{ byStrategy(first: {first}) {{ strategyId }} }} }}"

    one = data_of(await gql(client, page(1), token=token))["analytics"]["byStrategy"]
    both = data_of(await gql(client, page(100), token=token))["analytics"]["byStrategy"]
    beyond = await gql(client, page(101), token=token)

    assert [row["strategyId"] for row in both] == sorted([gid(alpha), gid(beta)], key=key)
    assert one == both[:1]
    assert beyond["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "first"}


async def test_analytics_without_trades_has_zero_totals_and_no_win_rate(client, sources, settings):
    _, token = await signed_in(sources, settings)

    report = data_of(await gql(client, ANALYTICS, token=token))["analytics"]

    assert report == {
        "from": None,
        "to": None,
        "trades": 0,
        "wins": 0,
        "losses": 0,
        "winRate": None,
        "grossPnl": "0",
        "fees": "0",
        "netPnl": "0",
        "volume": "0",
        "maxDrawdown": "0",
        "daily": [],
        "byStrategy": [],
    }


async def test_a_breakdowns_strategy_is_null_once_the_strategy_is_deleted(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    alpha, _beta = await analytics_history(sources, user)
    await sources.strategies.db["strategies"].delete_one({"name": "beta"})

    body = await gql(
        client, "{ analytics { byStrategy { strategyId strategy { name } } } }", token=token
    )

    rows = data_of(body)["analytics"]["byStrategy"]
    by_id = {row["strategyId"]: row["strategy"] for row in rows}
    assert by_id[gid(alpha)] == {"name": "alpha"}
    assert [strategy for strategy in by_id.values() if strategy is None] == [None]


# credentials -----------------------------------------------------------------------------------


async def test_credentials_show_the_broker_the_configured_fields_and_a_masked_hint(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    before = datetime.now(UTC) - timedelta(seconds=1)
    await make_credentials(sources, user, secrets_spy, broker="zerodha", client_id="ZR1234")

    body = await gql(client, f"{{ me {{ credentials {{ {CREDENTIALS_FIELDS} }} }} }}", token=token)

    credentials = data_of(body)["me"]["credentials"]
    updated_at = credentials.pop("updatedAt")
    assert credentials == {
        "broker": "zerodha",
        "clientId": "ZR1234",
        "configuredFields": ["ACCESS_TOKEN", "API_KEY", "API_SECRET"],
        "apiKeyHint": "••••9f1c",
        "configured": True,
    }
    assert updated_at.endswith("+00:00")
    assert before <= datetime.fromisoformat(updated_at) <= datetime.now(UTC)


async def test_credentials_without_an_api_key_have_no_hint(client, sources, settings, secrets_spy):
    user, token = await signed_in(sources, settings)
    secrets_spy.add("TOTP-only-plaintext-secret")
    await credentials_source.upsert_credentials(
        db=sources.credentials.db,
        box=suite_box(),
        user_id=user.id,
        broker="zerodha",
        changes={"totpSecret": "TOTP-only-plaintext-secret"},
    )

    body = await gql(
        client, "{ profile { credentials { " + CREDENTIALS_FIELDS + " } } }", token=token
    )

    credentials = data_of(body)["profile"]["credentials"]
    assert credentials["configuredFields"] == ["TOTP_SECRET"]
    assert credentials["apiKeyHint"] is None
    assert credentials["clientId"] is None
    assert credentials["configured"] is True


async def test_no_plaintext_secret_appears_in_a_response_that_selects_every_credentials_field(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    secrets = await make_credentials(sources, user, secrets_spy, secrets=ALL_SIX_SECRETS)
    query = f"""
    {{
      me {{ credentials {{ {CREDENTIALS_FIELDS} }} }}
      profile {{ credentials {{ {CREDENTIALS_FIELDS} }} }}
      dashboard {{ credentialsConfigured user {{ credentials {{ {CREDENTIALS_FIELDS} }} }} }}
    }}
    """

    response = await client.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200
    body = response.json()
    assert data_of(body)["me"]["credentials"]["configuredFields"] == [
        "ACCESS_TOKEN",
        "BROKER_USERNAME",
        "BROKER_PASSWORD",
        "TOTP_SECRET",
        "API_KEY",
        "API_SECRET",
    ]
    assert body["data"]["me"]["credentials"]["apiKeyHint"] == "••••abcd"
    for secret in secrets.values():
        assert secret not in response.text
        # Nor any long piece of one (the hint's last four characters are the only part shown).
        assert secret[:8] not in response.text


async def test_a_user_never_sees_another_users_credentials(client, sources, settings):
    await another_trader(sources)
    _, token = await signed_in(sources, settings)

    body = await gql(
        client,
        "{ me { credentials { broker } } profile { credentials { broker } } "
        "dashboard { credentialsConfigured } }",
        token=token,
    )

    assert data_of(body) == {
        "me": {"credentials": None},
        "profile": {"credentials": None},
        "dashboard": {"credentialsConfigured": False},
    }


async def test_a_whole_dashboard_reports_every_source_it_read_as_ok(client, sources, settings):
    user = await make_user(sources)
    await make_credentials(sources, user)
    token = token_for(settings, user)
    query = """{ dashboard { strategyCounts { total } recentTrades { id } credentialsConfigured
                 recentActivity { kind } sources { name status calls } }
                 profile { sources { name status } } }"""

    body = await gql(client, query, token=token)

    assert "errors" not in body, body
    dashboard = body["data"]["dashboard"]["sources"]
    assert [entry["name"] for entry in dashboard] == [
        "users",
        "strategies",
        "credentials",
        "trades",
        "analytics",
    ]
    assert {entry["status"] for entry in dashboard} == {"OK"}
    assert all(entry["calls"] >= 1 for entry in dashboard)
    # One request: the profile's block sees the same calls (what the request asked).
    assert {entry["name"] for entry in body["data"]["profile"]["sources"]} == {
        entry["name"] for entry in dashboard
    }


async def test_the_sources_block_counts_the_reads_of_nested_fields_too(client, sources, settings):
    user = await make_user(sources)
    await make_strategy(sources, user, status="ACTIVE")
    token = token_for(settings, user)
    query = """{ dashboard { activeStrategies { performance { trades } owner { id } }
                 sources { name } } }"""

    body = await gql(client, query, token=token)

    assert "errors" not in body, body
    # Only the strategies' nested performance reads analytics.
    names = [entry["name"] for entry in body["data"]["dashboard"]["sources"]]
    assert names == ["users", "strategies", "analytics"]
