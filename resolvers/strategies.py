"""Reading strategies: single lookups and a user's strategies page."""

from __future__ import annotations

from enum import Enum

from datasources.strategies import StrategyPageKey, StrategyRecord
from gateway.context import Context
from gateway.errors import NotFound
from resolvers.pagination import Slice, check_first, parse_strategy_cursor, strategy_cursor


async def strategy_page(
    ctx: Context,
    *,
    user_id: str,
    status: Enum | None,
    first: int | None,
    after: str | None,
) -> Slice[StrategyRecord]:
    """One page of a user's strategies, newest first, optionally of one status."""
    size = check_first(first)
    status_value = str(status.value) if status is not None else None
    key = StrategyPageKey(
        user_id=user_id, status=status_value, first=size, after=parse_strategy_cursor(after)
    )
    loaders = ctx.loaders
    page = await loaders.strategies.page.load(key)

    async def total() -> int:
        counts = await loaders.strategies.counts.load(user_id)
        return counts.count(status_value)

    return Slice(
        items=page.items,
        cursors=[strategy_cursor(item.id) for item in page.items],
        has_next=page.has_next,
        after=after,
        total=total,
    )


async def get_strategy(ctx: Context, strategy_id: str) -> StrategyRecord:
    """The viewer's strategy with this id; NOT_FOUND for another user's or a missing one."""
    record = await ctx.loaders.strategies.by_id.load(strategy_id)
    if record is None:
        raise NotFound("No strategy with this id.")
    return record
