"""The cross-source aggregates: the profile (four sources) and the dashboard (all five).

Each read starts at once, side by side with the viewer check (is the token
revoked?); the schema declares both types `@aggregate`, so every field releases
its value only after that check has passed (schema/_permissions.py): the check
costs no extra wait, and a revoked token still sees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from datasources import current_calls
from datasources.analytics import ActivityEventRecord, ActivityKey
from datasources.credentials import CredentialsRecord
from datasources.strategies import StatusCounts, StrategyPageKey, StrategyRecord
from datasources.trades import TradePageKey, TradeRecord, TradeSummary
from resolvers.context import Context
from resolvers.figures import EquityDay, PnlWindows, equity_curve, pnl_windows
from resolvers.pagination import check_first


def today() -> datetime:
    """Now, in UTC (one place, so the day boundary is computed the same everywhere)."""
    return datetime.now(UTC)


async def strategy_counts(ctx: Context, user_id: str) -> StatusCounts:
    """How many strategies the user has in each status."""
    return await ctx.loaders.strategies.counts.load(user_id)


async def active_strategies(ctx: Context, user_id: str, first: int) -> list[StrategyRecord]:
    """The user's newest ACTIVE strategies."""
    key = StrategyPageKey(user_id=user_id, status="ACTIVE", first=check_first(first))
    page = await ctx.loaders.strategies.page.load(key)
    return list(page.items)


async def recent_trades(ctx: Context, user_id: str, first: int) -> list[TradeRecord]:
    """The user's newest trades by entry time."""
    key = TradePageKey(partition="user", owner=user_id, first=check_first(first))
    page = await ctx.loaders.trades.page.load(key)
    return list(page.items)


async def pnl(ctx: Context, user_id: str) -> PnlWindows:
    """Net PnL today, over 7 and 30 days, and all time, from the trades themselves."""
    daily = await ctx.loaders.trades.daily.load(user_id)
    return pnl_windows(daily, today=today().date())


async def equity(ctx: Context, user_id: str, days: int) -> list[EquityDay]:
    """The account's equity curve over the last `days` UTC days."""
    daily = await ctx.loaders.trades.daily.load(user_id)
    return equity_curve(daily, today=today().date(), days=check_first(days, field="days"))


async def credentials(ctx: Context, user_id: str) -> CredentialsRecord | None:
    """The user's credentials status, if any are stored."""
    return await ctx.loaders.credentials.by_user.load(user_id)


async def recent_activity(ctx: Context, user_id: str, first: int) -> list[ActivityEventRecord]:
    """The user's newest activity events."""
    key = ActivityKey(user_id=user_id, limit=check_first(first))
    return await ctx.loaders.analytics.activity.load(key)


async def trade_summary(ctx: Context, user_id: str) -> TradeSummary:
    """The user's lifetime trade count and PnL."""
    return await ctx.loaders.trades.summary.load(user_id)


@dataclass(frozen=True, slots=True)
class SourceReport:
    """How one source fared for this request: OK (every call answered), DEGRADED (some
    failed), UNAVAILABLE (every call failed); its slowest call and how many there were."""

    name: str
    status: str
    slowest_ms: float
    calls: int


async def source_reports(ctx: Context) -> list[SourceReport]:
    """What every source this request asked did, in the registry's order, once no call of
    the request is running any more."""
    log = current_calls()
    calls = await log.settled() if log is not None else {}
    reports = []
    for source in ctx.sources:
        found = calls.get(source.name)
        if found is None:
            continue
        status = "OK" if not found.failed else "UNAVAILABLE" if not found.answered else "DEGRADED"
        reports.append(
            SourceReport(
                name=source.name,
                status=status,
                slowest_ms=round(found.slowest * 1000, 2),
                calls=found.answered + found.failed,
            )
        )
    return reports
