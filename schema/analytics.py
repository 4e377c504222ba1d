"""Figures: strategy performance, the analytics report, and activity events."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from gateway.core.settings import MAX_PAGE_SIZE
from resolvers.figures import DayFigures, Figures, daily_series, summarize
from resolvers.records import ActivityEventRecord, DailyMetricRecord
from resolvers.strategies import strategy_by_id
from schema._base import Info
from schema._cost import ListSize
from schema._ids import global_id

if TYPE_CHECKING:
    from schema.strategies import Strategy


@strawberry.type(description="Totals over closed trades; net PnL is pnl - fees.")
class FigureFields:
    trades: int
    wins: int
    losses: int
    win_rate: float | None = strawberry.field(
        description="wins / closed trades; null when there were none."
    )
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
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
    last_trade_day: date | None

    @classmethod
    def from_rows(cls, rows: Sequence[DailyMetricRecord]) -> Performance:
        """Figures over a strategy's daily metrics."""
        return cls(
            **FigureFields.figure_values(summarize(rows)),  # type: ignore[arg-type]
            last_trade_day=max((row.day for row in rows), default=None),
        )


@strawberry.type(description="One UTC day of the figures, summed over strategies.")
class AnalyticsDay:
    day: date
    trades: int
    wins: int
    losses: int
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    volume: Decimal
    cumulative_net_pnl: Decimal

    @classmethod
    def from_figures(cls, day: DayFigures) -> AnalyticsDay:
        """The schema view of one day of a series."""
        return cls(**{field.name: getattr(day, field.name) for field in dataclasses.fields(day)})


@strawberry.type(description="One strategy's share of an analytics report.")
class StrategyBreakdown(FigureFields):
    strategy_id: strawberry.ID
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
    from_: date | None = strawberry.field(name="from")
    to: date | None
    daily: list[AnalyticsDay] = strawberry.field(directives=[ListSize(assumed_size=366)])
    by_strategy: list[StrategyBreakdown] = strawberry.field(
        directives=[ListSize(assumed_size=MAX_PAGE_SIZE)]
    )

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
            by_strategy=breakdown,
        )


@strawberry.type(description="Something that happened to the account or one of its strategies.")
class ActivityEvent(relay.Node):
    id: relay.NodeID[str]
    kind: str
    subject_id: str | None
    at: datetime
    data: JSON

    @classmethod
    def from_record(cls, record: ActivityEventRecord) -> ActivityEvent:
        """The schema view of a stored event."""
        return cls(
            id=record.id,
            kind=record.kind,
            subject_id=_subject_id(record),
            at=record.at,
            data=JSON(dict(record.data)),
        )


def _subject_id(record: ActivityEventRecord) -> str | None:
    # A strategy's events name it by its global id, the one every argument takes.
    if record.subject_id is not None and record.kind.startswith("STRATEGY_"):
        return global_id("Strategy", record.subject_id)
    return record.subject_id
