"""Reading trades: pages of a user's or a strategy's trades."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from datasources.trades import Partition, TradeCountKey, TradeFilter, TradePageKey, TradeRecord
from gateway.core.errors import BadUserInput
from resolvers.checks import check_object_id, check_text, in_utc
from resolvers.context import Context
from resolvers.pagination import Slice, check_first, parse_trade_cursor, trade_cursor
from resolvers.strategy_input import MAX_INSTRUMENT


def _check_time(moment: datetime | None, name: str) -> datetime | None:
    """A bound of the filter's time range, in UTC."""
    if moment is None:
        return None
    # A time without an offset names no instant; guessing UTC could silently shift the range.
    if moment.utcoffset() is None:
        raise BadUserInput(
            f"'filter.{name}' must include a UTC offset, such as '+00:00'.", field=f"filter.{name}"
        )
    utc = in_utc(moment)
    if utc is None:
        raise BadUserInput(
            f"'filter.{name}' must fall between the years 1 and 9999 in UTC.",
            field=f"filter.{name}",
        )
    return utc


def check_filter(trade_filter: TradeFilter) -> TradeFilter:
    """The filter with its times in UTC, or BAD_USER_INPUT naming the first bad condition.

    A strategy id must be an id, an instrument a plain 1 to 64 character symbol, and each
    time must carry a UTC offset and fall within years 1 to 9999 in UTC; the range must not
    be empty or reversed. None of these could match a trade anyway, and the database would
    refuse some of them (a NUL, a year before 1 in UTC) as if it were failing.
    """
    strategy_id, instrument = trade_filter.strategy_id, trade_filter.instrument
    if strategy_id is not None:
        strategy_id = check_object_id(strategy_id, "filter.strategyId")
    if instrument is not None:
        instrument = check_text(instrument, "filter.instrument", MAX_INSTRUMENT)
    start = _check_time(trade_filter.from_time, "from")
    end = _check_time(trade_filter.to_time, "to")
    if start is not None and end is not None and start >= end:
        raise BadUserInput("'filter.from' must be before 'filter.to'.", field="filter.from")
    return replace(
        trade_filter, strategy_id=strategy_id, instrument=instrument, from_time=start, to_time=end
    )


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
