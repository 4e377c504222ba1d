"""The figures (resolvers/figures.py), computed without a database: drawdown, daily series,
totals, PnL windows and the equity curve, as DESIGN.md defines them."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

from graphql import GraphQLObjectType

from datasources.analytics import DailyMetricRecord
from datasources.trades import DailyPnl, net_pnl
from resolvers.figures import (
    DayFigures,
    Figures,
    daily_series,
    equity_curve,
    max_drawdown,
    pnl_windows,
    summarize,
)
from schema import build_schema

D = Decimal
TODAY = date(2026, 11, 28)


def metric(day: date, strategy: str = "s1", **figures: object) -> DailyMetricRecord:
    values: dict[str, object] = {
        "trades": 1,
        "wins": 1,
        "losses": 0,
        "gross_pnl": D(1),
        "fees": D(0),
        "net_pnl": D(1),
        "volume": D(10),
    }
    values.update(figures)
    return DailyMetricRecord(user_id="u", strategy_id=strategy, day=day, **values)  # type: ignore[arg-type]


def test_max_drawdown_is_the_largest_fall_from_a_running_peak_starting_at_zero() -> None:
    assert max_drawdown([D(5), D(-3), D(4), D(-8), D(2)]) == D(8)
    assert max_drawdown([D(-2), D(1)]) == D(2)  # the curve starts at 0: an early loss counts
    assert max_drawdown([D(1), D(2)]) == D(0)
    assert max_drawdown([]) == D(0)


def test_the_daily_series_sums_strategies_per_day_oldest_first_with_a_running_total() -> None:
    day1, day2 = TODAY - timedelta(days=1), TODAY
    series = daily_series(
        [
            metric(day2, net_pnl=D(-1), trades=2, wins=0, losses=2),
            metric(day1, "s1", net_pnl=D(3)),
            metric(day1, "s2", net_pnl=D(2), volume=D(5)),
        ]
    )

    assert [point.day for point in series] == [day1, day2]
    assert series[0].net_pnl == D(5)
    assert series[0].volume == D(15)
    assert series[0].trades == 2
    assert [point.cumulative_net_pnl for point in series] == [D(5), D(4)]
    assert (series[1].wins, series[1].losses) == (0, 2)


def test_totals_count_wins_over_closed_trades_and_have_no_win_rate_without_any() -> None:
    figures = summarize(
        [metric(TODAY, trades=4, wins=3, losses=1), metric(TODAY, "s2", trades=1, wins=0)]
    )

    assert figures.trades == 5
    assert figures.win_rate == 3 / 5
    assert summarize([]).win_rate is None


def test_pnl_windows_cover_one_seven_and_thirty_days_including_today() -> None:
    daily = [
        DailyPnl(day=TODAY - timedelta(days=days_ago), trades=1, net_pnl=D(amount))
        for days_ago, amount in ((0, 1), (6, 10), (7, 100), (29, 1000), (30, 10000))
    ]

    windows = pnl_windows(daily, today=TODAY)

    assert windows.today == D(1)
    assert windows.seven_days == D(11)
    assert windows.thirty_days == D(1111)
    assert windows.all_time == D(11111)


def test_a_day_after_today_counts_only_all_time() -> None:
    windows = pnl_windows(
        [DailyPnl(day=TODAY + timedelta(days=1), trades=1, net_pnl=D(7))], today=TODAY
    )
    assert (windows.today, windows.seven_days, windows.all_time) == (D(0), D(0), D(7))


def test_the_equity_curve_has_one_point_per_day_starting_from_earlier_equity() -> None:
    daily = [
        DailyPnl(day=TODAY - timedelta(days=10), trades=1, net_pnl=D(100)),
        DailyPnl(day=TODAY - timedelta(days=1), trades=1, net_pnl=D(-5)),
    ]

    curve = equity_curve(daily, today=TODAY, days=3)

    assert [point.day for point in curve] == [TODAY - timedelta(days=n) for n in (2, 1, 0)]
    assert [point.net_pnl for point in curve] == [D(0), D(-5), D(0)]
    assert [point.equity for point in curve] == [D(100), D(95), D(95)]
    assert equity_curve(daily, today=TODAY, days=0) == []


def test_a_closed_trade_without_pnl_nets_minus_its_fees() -> None:
    assert net_pnl(None, D("0.5")) == D("-0.5")
    assert net_pnl(D(3), D(1)) == D(2)


def test_the_schema_shows_every_figure_and_every_day_figure() -> None:
    schema = build_schema()._schema

    def fields(name: str) -> set[str]:
        found = schema.get_type(name)
        assert isinstance(found, GraphQLObjectType)
        return set(found.fields)

    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(part.title() for part in rest)

    figures = {camel(field.name) for field in dataclasses.fields(Figures)} | {"winRate"}
    assert figures <= fields("Performance")
    assert figures <= fields("Analytics")
    assert fields("AnalyticsDay") == {camel(field.name) for field in dataclasses.fields(DayFigures)}
