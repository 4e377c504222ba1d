"""The platform's figures, defined once (see DESIGN.md, "Storage shapes").

A closed trade's net PnL is pnl - fees; only closed trades count; a trade
belongs to the UTC day of its exit; a win has net PnL above zero; win rate is
wins / closed trades (None without any); max drawdown is the largest fall from
a running peak of the cumulative daily net PnL curve, starting at 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from datasources.analytics import DailyMetricRecord
from datasources.trades import DailyPnl

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Figures:
    """Totals over a set of daily metrics."""

    trades: int
    wins: int
    losses: int
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    volume: Decimal
    max_drawdown: Decimal

    @property
    def win_rate(self) -> float | None:
        """wins / closed trades, or None when there were none."""
        return self.wins / self.trades if self.trades else None


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One day of a daily series, summed over strategies, with the running total."""

    day: date
    trades: int
    wins: int
    losses: int
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    volume: Decimal
    cumulative_net_pnl: Decimal


@dataclass(frozen=True, slots=True)
class PnlWindows:
    """Net PnL over the last 1 / 7 / 30 UTC days including today, and all time."""

    today: Decimal
    seven_days: Decimal
    thirty_days: Decimal
    all_time: Decimal


@dataclass(frozen=True, slots=True)
class EquityDay:
    """The account's cumulative net PnL at the end of one day."""

    day: date
    net_pnl: Decimal
    equity: Decimal


def max_drawdown(daily_net: Iterable[Decimal]) -> Decimal:
    """The largest fall from a running peak of the cumulative curve, starting at 0."""
    peak = cumulative = worst = ZERO
    for net in daily_net:
        cumulative += net
        peak = max(peak, cumulative)
        worst = max(worst, peak - cumulative)
    return worst


def daily_series(rows: Iterable[DailyMetricRecord]) -> list[DayFigures]:
    """Metrics summed per day (over strategies), oldest first, with cumulative net PnL."""
    days: dict[date, list[DailyMetricRecord]] = {}
    for row in rows:
        days.setdefault(row.day, []).append(row)
    series = []
    cumulative = ZERO
    for day in sorted(days):
        group = days[day]
        net = sum((r.net_pnl for r in group), ZERO)
        cumulative += net
        series.append(
            DayFigures(
                day=day,
                trades=sum(r.trades for r in group),
                wins=sum(r.wins for r in group),
                losses=sum(r.losses for r in group),
                gross_pnl=sum((r.gross_pnl for r in group), ZERO),
                fees=sum((r.fees for r in group), ZERO),
                net_pnl=net,
                volume=sum((r.volume for r in group), ZERO),
                cumulative_net_pnl=cumulative,
            )
        )
    return series


def summarize(rows: Sequence[DailyMetricRecord]) -> Figures:
    """Totals of daily metrics, with the drawdown of their daily net curve."""
    series = daily_series(rows)
    return Figures(
        trades=sum(d.trades for d in series),
        wins=sum(d.wins for d in series),
        losses=sum(d.losses for d in series),
        gross_pnl=sum((d.gross_pnl for d in series), ZERO),
        fees=sum((d.fees for d in series), ZERO),
        net_pnl=sum((d.net_pnl for d in series), ZERO),
        volume=sum((d.volume for d in series), ZERO),
        max_drawdown=max_drawdown(d.net_pnl for d in series),
    )


def pnl_windows(daily: Iterable[DailyPnl], *, today: date) -> PnlWindows:
    """Net PnL today, over 7 and 30 days including today, and all time."""
    week_start = today - timedelta(days=6)
    month_start = today - timedelta(days=29)
    today_net = week = month = total = ZERO
    for point in daily:
        total += point.net_pnl
        if month_start <= point.day <= today:
            month += point.net_pnl
        if week_start <= point.day <= today:
            week += point.net_pnl
        if point.day == today:
            today_net += point.net_pnl
    return PnlWindows(today=today_net, seven_days=week, thirty_days=month, all_time=total)


def equity_curve(daily: Sequence[DailyPnl], *, today: date, days: int = 30) -> list[EquityDay]:
    """One point per day for the last `days` days: that day's net PnL and the running total.

    The running total includes every earlier day, so the curve's level is the
    account's lifetime net PnL, not just the window's.
    """
    start = today - timedelta(days=days - 1)
    by_day = {point.day: point.net_pnl for point in daily}
    equity = sum((net for day, net in by_day.items() if day < start), ZERO)
    curve = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        net = by_day.get(day, ZERO)
        equity += net
        curve.append(EquityDay(day=day, net_pnl=net, equity=equity))
    return curve
