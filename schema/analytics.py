"""Figures: strategy performance, the analytics report, and activity events."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from gateway.core.settings import MAX_PAGE_SIZE
from resolvers.figures import DayFigures, Figures, daily_series, summarize
from resolvers.pagination import check_first
from resolvers.records import ActivityEventRecord, DailyMetricRecord
from resolvers.strategies import strategy_by_id
from schema._base import Info, enum_value
from schema._cost import ListSize
from schema._ids import global_id

if TYPE_CHECKING:
    from schema.strategies import Strategy


@strawberry.type(description="Totals over closed trades; net PnL is pnl - fees.")
class FigureFields:
    trades: int = strawberry.field(description="How many trades closed.")
    wins: int = strawberry.field(description="Closed trades with net PnL above zero.")
    losses: int = strawberry.field(description="Closed trades with net PnL at or below zero.")
    win_rate: float | None = strawberry.field(
        description="Wins / closed trades; null when there were none."
    )
    gross_pnl: Decimal = strawberry.field(description="Sum of pnl, before fees.")
    fees: Decimal = strawberry.field(description="Sum of fees.")
    net_pnl: Decimal = strawberry.field(description="Sum of pnl - fees.")
    volume: Decimal = strawberry.field(description="Notional traded: quantity x entry price.")
    max_drawdown: Decimal = strawberry.field(
        description="Largest fall from a running peak of the cumulative daily net PnL."
    )

    @staticmethod
    def figure_values(figures: Figures) -> dict[str, object]:
        """The figure fields' values, to pass to a subclass constructor: every field of
        `Figures` and its win rate."""
        values: dict[str, object] = {
            field.name: getattr(figures, field.name) for field in dataclasses.fields(Figures)
        }
        values["win_rate"] = figures.win_rate
        return values


@strawberry.type(description="A strategy's lifetime figures.")
class Performance(FigureFields):
    last_trade_day: date | None = strawberry.field(
        description="The last UTC day it closed a trade; null before the first."
    )

    @classmethod
    def from_rows(cls, rows: Sequence[DailyMetricRecord]) -> Performance:
        """Figures over a strategy's daily metrics."""
        return cls(
            **FigureFields.figure_values(summarize(rows)),  # type: ignore[arg-type]
            last_trade_day=max((row.day for row in rows), default=None),
        )


@strawberry.type(description="One UTC day of the figures, summed over strategies.")
class AnalyticsDay:
    day: date = strawberry.field(description="The UTC day.")
    trades: int = strawberry.field(description="How many trades closed that day.")
    wins: int = strawberry.field(description="Of them, with net PnL above zero.")
    losses: int = strawberry.field(description="Of them, with net PnL at or below zero.")
    gross_pnl: Decimal = strawberry.field(description="That day's pnl, before fees.")
    fees: Decimal = strawberry.field(description="That day's fees.")
    net_pnl: Decimal = strawberry.field(description="That day's pnl - fees.")
    volume: Decimal = strawberry.field(description="That day's notional traded.")
    cumulative_net_pnl: Decimal = strawberry.field(
        description="Net PnL from the report's first day to this one."
    )

    @classmethod
    def from_figures(cls, day: DayFigures) -> AnalyticsDay:
        """The schema view of one day of a series."""
        return cls(**{field.name: getattr(day, field.name) for field in dataclasses.fields(day)})


@strawberry.type(description="One strategy's share of an analytics report.")
class StrategyBreakdown(FigureFields):
    strategy_id: strawberry.ID = strawberry.field(description="The strategy's id.")
    strategy_key: strawberry.Private[str]

    @strawberry.field(description="The strategy itself (strategies source).")
    async def strategy(
        self, info: Info
    ) -> Annotated[Strategy, strawberry.lazy("schema.strategies")] | None:
        from schema.strategies import Strategy  # noqa: PLC0415 - cyclic types

        record = await strategy_by_id(info.context, self.strategy_key)
        return Strategy.from_record(record) if record else None


@strawberry.type(description="A user's figures between two UTC days, from the daily metrics.")
class Analytics(FigureFields):
    from_: date | None = strawberry.field(
        name="from", description="The first day asked for; null when left out."
    )
    to: date | None = strawberry.field(description="The last day asked for; null when left out.")
    daily: list[AnalyticsDay] = strawberry.field(
        description="Each UTC day with closed trades, oldest first.",
        directives=[ListSize(assumed_size=366)],
    )
    breakdown: strawberry.Private[list[StrategyBreakdown]]

    @strawberry.field(
        description="The same figures per strategy that traded in the range (deleted ones "
        "too), oldest strategy first.",
        directives=[ListSize(slicing_arguments=["first"], assumed_size=MAX_PAGE_SIZE)],
    )
    def by_strategy(
        self,
        first: Annotated[
            int | None,
            strawberry.argument(
                description=f"How many strategies: at most {MAX_PAGE_SIZE}, all of them up "
                "to that when left out."
            ),
        ] = None,
    ) -> list[StrategyBreakdown]:
        size = MAX_PAGE_SIZE if first is None else check_first(first)
        return self.breakdown[:size]

    @classmethod
    def from_rows(
        cls, rows: Sequence[DailyMetricRecord], *, from_day: date | None, to_day: date | None
    ) -> Analytics:
        """The report over a user's daily metrics in the range."""
        per_strategy: dict[str, list[DailyMetricRecord]] = {}
        for row in rows:
            per_strategy.setdefault(row.strategy_id, []).append(row)
        breakdown = [
            StrategyBreakdown(
                strategy_id=global_id("Strategy", strategy_id),
                strategy_key=strategy_id,
                **FigureFields.figure_values(summarize(strategy_rows)),  # type: ignore[arg-type]
            )
            for strategy_id, strategy_rows in sorted(per_strategy.items())
        ]
        return cls(
            **FigureFields.figure_values(summarize(rows)),  # type: ignore[arg-type]
            from_=from_day,
            to=to_day,
            daily=[AnalyticsDay.from_figures(day) for day in daily_series(rows)],
            breakdown=breakdown,
        )


@strawberry.enum(description="What an activity event records.")
class ActivityKind(Enum):
    ACCOUNT_CREATED = strawberry.enum_value("ACCOUNT_CREATED", description="Signed up.")
    SIGNED_IN = strawberry.enum_value("SIGNED_IN", description="Signed in with a password.")
    PROFILE_UPDATED = strawberry.enum_value(
        "PROFILE_UPDATED", description="Names or phone changed (`data.fields`)."
    )
    PASSWORD_CHANGED = strawberry.enum_value("PASSWORD_CHANGED", description="Password changed.")
    CREDENTIALS_SAVED = strawberry.enum_value(
        "CREDENTIALS_SAVED", description="Broker credentials stored or changed."
    )
    CREDENTIALS_DELETED = strawberry.enum_value(
        "CREDENTIALS_DELETED", description="Broker credentials removed."
    )
    STRATEGY_CREATED = strawberry.enum_value("STRATEGY_CREATED", description="Strategy created.")
    STRATEGY_UPDATED = strawberry.enum_value(
        "STRATEGY_UPDATED", description="Strategy fields changed (`data.fields`)."
    )
    STRATEGY_DELETED = strawberry.enum_value(
        "STRATEGY_DELETED", description="Strategy deleted (`data.name`)."
    )
    STRATEGY_STARTED = strawberry.enum_value("STRATEGY_STARTED", description="STOPPED to ACTIVE.")
    STRATEGY_PAUSED = strawberry.enum_value("STRATEGY_PAUSED", description="ACTIVE to PAUSED.")
    STRATEGY_RESUMED = strawberry.enum_value("STRATEGY_RESUMED", description="PAUSED to ACTIVE.")
    STRATEGY_STOPPED = strawberry.enum_value("STRATEGY_STOPPED", description="Stopped.")
    OTHER = strawberry.enum_value(
        "OTHER", description="A kind this version of the gateway does not know (an old event)."
    )


@strawberry.type(description="Something that happened to the account or one of its strategies.")
class ActivityEvent(relay.Node):
    id: relay.NodeID[str]
    kind: ActivityKind = strawberry.field(description="What happened.")
    subject_id: str | None = strawberry.field(
        description="The id of what it concerns (a strategy's global id, credentials); null "
        "for the account."
    )
    at: datetime = strawberry.field(description="When it happened.")
    data: JSON = strawberry.field(
        description="Details, a JSON object: a transition's `from` and `to`, the `fields` an "
        "update changed, a deleted strategy's `name`."
    )

    @classmethod
    def from_record(cls, record: ActivityEventRecord) -> ActivityEvent:
        """The schema view of a stored event."""
        return cls(
            id=record.id,
            kind=enum_value(ActivityKind, record.kind) or ActivityKind.OTHER,
            subject_id=_subject_id(record),
            at=record.at,
            data=JSON(dict(record.data)),
        )


def _subject_id(record: ActivityEventRecord) -> str | None:
    # A strategy's events name it by its global id, the one every argument takes.
    if record.subject_id is not None and record.kind.startswith("STRATEGY_"):
        return global_id("Strategy", record.subject_id)
    return record.subject_id
