"""Reading a user's daily metrics for the analytics report."""

from __future__ import annotations

from datetime import date

from datasources.analytics import DailyMetricRecord, MetricsKey
from gateway.core.errors import BadUserInput
from resolvers.checks import check_object_id
from resolvers.context import Context


def check_range(from_day: date | None, to_day: date | None) -> None:
    """Refuse a reversed day range."""
    if from_day is not None and to_day is not None and from_day > to_day:
        raise BadUserInput("'from' must not be after 'to'.", field="from")


async def strategy_metrics(ctx: Context, strategy_id: str) -> list[DailyMetricRecord]:
    """Every daily metric of one strategy (its lifetime performance), oldest day first."""
    return await ctx.loaders.analytics.by_strategy.load(strategy_id)


async def analytics_rows(
    ctx: Context,
    *,
    user_id: str,
    from_day: date | None,
    to_day: date | None,
    strategy_id: str | None,
) -> list[DailyMetricRecord]:
    """A user's daily metrics between two days (inclusive), optionally of one strategy.

    A strategy id that is not an id is BAD_USER_INPUT: it could match nothing, and the
    database would refuse some of them (a NUL) as if it were failing.
    """
    check_range(from_day, to_day)
    if strategy_id is not None:
        strategy_id = check_object_id(strategy_id, "strategyId")
    key = MetricsKey(user_id=user_id, from_day=from_day, to_day=to_day, strategy_id=strategy_id)
    return await ctx.loaders.analytics.metrics.load(key)
