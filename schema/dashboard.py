"""The Profile and Dashboard aggregates: one query, every source fetched concurrently.

Each field is its own resolver, so sibling fields (and so sources) are awaited
together; every field fed by a source other than users is nullable, so one
source being down costs only its own fields. Both are `@aggregate` types: each
field's read runs alongside the viewer check and its value is released only
after the check has passed.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated

import strawberry

from resolvers import dashboard as aggregates
from schema._base import Info
from schema._cost import AGGREGATE, ListSize
from schema._permissions import aggregate
from schema.analytics import ActivityEvent
from schema.credentials import Credentials
from schema.strategies import Strategy
from schema.trades import Trade
from schema.users import User


@strawberry.type(description="How many strategies are in each status.")
class StrategyCounts:
    active: int = strawberry.field(description="How many are ACTIVE.")
    paused: int = strawberry.field(description="How many are PAUSED.")
    stopped: int = strawberry.field(description="How many are STOPPED.")
    error: int = strawberry.field(description="How many are in ERROR.")
    total: int = strawberry.field(description="How many there are in all.")


@strawberry.type(description="Net PnL over the last 1 / 7 / 30 UTC days including today.")
class PnlSummary:
    today: Decimal = strawberry.field(description="Net PnL of trades closed today (UTC).")
    seven_days: Decimal = strawberry.field(description="Over the last 7 UTC days.")
    thirty_days: Decimal = strawberry.field(description="Over the last 30 UTC days.")
    all_time: Decimal = strawberry.field(description="Over every closed trade.")


@strawberry.type(description="One day of the equity curve.")
class EquityPoint:
    day: date = strawberry.field(description="The UTC day.")
    net_pnl: Decimal = strawberry.field(description="That day's net PnL.")
    equity: Decimal = strawberry.field(description="Cumulative net PnL at the day's end.")


@strawberry.enum(description="How a source fared for this request.")
class SourceState(Enum):
    OK = strawberry.enum_value("OK", description="Every call answered.")
    DEGRADED = strawberry.enum_value("DEGRADED", description="Some calls failed.")
    UNAVAILABLE = strawberry.enum_value("UNAVAILABLE", description="Every call failed.")


@strawberry.type(description="What one source did for this request.")
class SourceStatus:
    name: str = strawberry.field(
        description="The source: users, strategies, credentials, trades or analytics."
    )
    status: SourceState = strawberry.field(description="How its calls fared.")
    latency_ms: float = strawberry.field(description="Its slowest call, in milliseconds.")
    calls: int = strawberry.field(description="How many calls the request made to it.")


async def _sources(info: Info) -> list[SourceStatus]:
    return [
        SourceStatus(
            name=report.name,
            status=SourceState(report.status),
            latency_ms=report.slowest_ms,
            calls=report.calls,
        )
        for report in await aggregates.source_reports(info.context)
    ]


# A list of `first` items, 10 when omitted.
FIRST_TEN = ListSize(slicing_arguments=["first"], assumed_size=10)
FirstTen = Annotated[int, strawberry.argument(description="How many, newest first.")]
_SOURCES_HELP = (
    "Each source this request read, whether it answered and how fast: resolved once every "
    "other call of the request has ended. A source that failed also has its coded errors."
)


@aggregate
@strawberry.type(description="A user's profile: account, credentials, strategies and trades.")
class Profile:
    user_id: strawberry.Private[str]

    @strawberry.field(description=_SOURCES_HELP, directives=[ListSize(assumed_size=8)])
    async def sources(self, info: Info) -> list[SourceStatus]:
        return await _sources(info)

    @strawberry.field(description="The signed-in user (users source).")
    async def user(self, info: Info) -> User:
        return User.from_record((await info.context.viewer()).user)

    @strawberry.field(description="When the account was created.")
    async def member_since(self, info: Info) -> datetime:
        return (await info.context.viewer()).user.created_at

    @strawberry.field(description="Broker credentials status (credentials source).")
    async def credentials(self, info: Info) -> Credentials | None:
        record = await aggregates.credentials(info.context, self.user_id)
        return Credentials.from_record(record) if record else None

    @strawberry.field(
        description="Number of strategies (strategies source).", directives=[AGGREGATE]
    )
    async def strategy_count(self, info: Info) -> int | None:
        return (await aggregates.strategy_counts(info.context, self.user_id)).count()

    @strawberry.field(
        description="Number of trades, open and closed (trades source).", directives=[AGGREGATE]
    )
    async def trade_count(self, info: Info) -> int | None:
        return (await aggregates.trade_summary(info.context, self.user_id)).trades

    @strawberry.field(
        description="Net PnL of every closed trade (trades source).", directives=[AGGREGATE]
    )
    async def lifetime_pnl(self, info: Info) -> Decimal | None:
        return (await aggregates.trade_summary(info.context, self.user_id)).net_pnl


@aggregate
@strawberry.type(description="Everything the home screen shows, from all five sources.")
class Dashboard:
    user_id: strawberry.Private[str]

    @strawberry.field(description=_SOURCES_HELP, directives=[ListSize(assumed_size=8)])
    async def sources(self, info: Info) -> list[SourceStatus]:
        return await _sources(info)

    @strawberry.field(description="The signed-in user (users source).")
    async def user(self, info: Info) -> User:
        return User.from_record((await info.context.viewer()).user)

    @strawberry.field(
        description="Strategies per status (strategies source).", directives=[AGGREGATE]
    )
    async def strategy_counts(self, info: Info) -> StrategyCounts | None:
        counts = await aggregates.strategy_counts(info.context, self.user_id)
        return StrategyCounts(
            active=counts.count("ACTIVE"),
            paused=counts.count("PAUSED"),
            stopped=counts.count("STOPPED"),
            error=counts.count("ERROR"),
            total=counts.count(),
        )

    @strawberry.field(
        description="The newest ACTIVE strategies (strategies source).", directives=[FIRST_TEN]
    )
    async def active_strategies(self, info: Info, first: FirstTen = 10) -> list[Strategy] | None:
        records = await aggregates.active_strategies(info.context, self.user_id, first)
        return [Strategy.from_record(record) for record in records]

    @strawberry.field(
        description="The newest trades by entry time (trades source).", directives=[FIRST_TEN]
    )
    async def recent_trades(self, info: Info, first: FirstTen = 10) -> list[Trade] | None:
        records = await aggregates.recent_trades(info.context, self.user_id, first)
        return [Trade.from_record(record) for record in records]

    @strawberry.field(
        description="Net PnL today, 7 days, 30 days, all time (trades source).",
        directives=[AGGREGATE],
    )
    async def pnl(self, info: Info) -> PnlSummary | None:
        windows = await aggregates.pnl(info.context, self.user_id)
        return PnlSummary(
            today=windows.today,
            seven_days=windows.seven_days,
            thirty_days=windows.thirty_days,
            all_time=windows.all_time,
        )

    @strawberry.field(
        description="Cumulative net PnL per UTC day (trades source).",
        directives=[AGGREGATE, ListSize(slicing_arguments=["days"], assumed_size=30)],
    )
    async def equity_curve(
        self,
        info: Info,
        days: Annotated[
            int, strawberry.argument(description="How many UTC days, ending today.")
        ] = 30,
    ) -> list[EquityPoint] | None:
        points = await aggregates.equity(info.context, self.user_id, days)
        return [EquityPoint(day=p.day, net_pnl=p.net_pnl, equity=p.equity) for p in points]

    @strawberry.field(description="Whether broker credentials are stored (credentials source).")
    async def credentials_configured(self, info: Info) -> bool | None:
        record = await aggregates.credentials(info.context, self.user_id)
        return bool(record and record.configured_fields)

    @strawberry.field(
        description="The newest activity events (analytics source).", directives=[FIRST_TEN]
    )
    async def recent_activity(self, info: Info, first: FirstTen = 10) -> list[ActivityEvent] | None:
        records = await aggregates.recent_activity(info.context, self.user_id, first)
        return [ActivityEvent.from_record(record) for record in records]
