"""Reading trades: pages of a user's or a strategy's trades."""

from __future__ import annotations

from datasources.trades import Partition, TradeCountKey, TradeFilter, TradePageKey, TradeRecord
from gateway.context import Context
from gateway.errors import BadUserInput
from resolvers.pagination import Slice, check_first, parse_trade_cursor, trade_cursor


def check_filter(trade_filter: TradeFilter) -> TradeFilter:
    """The filter, refused when a time has no UTC offset or its time range is empty or reversed."""
    start, end = trade_filter.from_time, trade_filter.to_time
    for name, moment in (("from", start), ("to", end)):
        # A time without an offset names no instant; guessing UTC could silently shift the range.
        if moment is not None and moment.utcoffset() is None:
            raise BadUserInput(
                f"'filter.{name}' must include a UTC offset, such as '+00:00'.",
                field=f"filter.{name}",
            )
    if start is not None and end is not None and start >= end:
        raise BadUserInput("'filter.from' must be before 'filter.to'.", field="filter.from")
    return trade_filter


async def trade_page(
    ctx: Context,
    *,
    partition: Partition,
    owner: str,
    trade_filter: TradeFilter | None,
    first: int | None,
    after: str | None,
) -> Slice[TradeRecord]:
    """One page of trades of a user or a strategy, newest entry first."""
    size = check_first(first)
    conditions = check_filter(trade_filter or TradeFilter())
    key = TradePageKey(
        partition=partition,
        owner=owner,
        first=size,
        filter=conditions,
        after=parse_trade_cursor(after),
    )
    loaders = ctx.loaders
    page = await loaders.trades.page.load(key)

    async def total() -> int:
        return await loaders.trades.count.load(
            TradeCountKey(partition=partition, owner=owner, filter=conditions)
        )

    return Slice(
        items=page.items,
        cursors=[trade_cursor(entry_time=t.entry_time, trade_id=t.id) for t in page.items],
        has_next=page.has_next,
        after=after,
        total=total,
    )
