"""The Trade type, its filter, its join back to the strategy, and the one `trades` field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.permission import BasePermission

from resolvers.records import TRADE_FIELDS, Partition, TradeFilter, TradeRecord, net_pnl
from resolvers.strategies import strategy_by_id
from resolvers.trades import trade_page
from schema._base import (
    After,
    Connection,
    Environment,
    First,
    Info,
    TradeSide,
    TradeStatus,
    enum_value,
    shown_values,
)
from schema._cost import PAGE
from schema._ids import GlobalIdInput, global_id, optional_key_of

if TYPE_CHECKING:
    from schema.strategies import Strategy


@strawberry.input(description="Conditions on a trades list; times bound the entry time.")
class TradeFilterInput:
    strategy_id: GlobalIdInput | None = strawberry.field(
        default=None, description="Only this strategy's trades (its global id)."
    )
    instrument: str | None = strawberry.field(
        default=None, description="Only trades of this symbol (exact match)."
    )
    status: TradeStatus | None = strawberry.field(
        default=None, description="Only OPEN or only CLOSED trades."
    )
    from_: datetime | None = strawberry.field(
        name="from", default=None, description="Only trades entered at or after this instant."
    )
    to: datetime | None = strawberry.field(
        default=None, description="Only trades entered before this instant."
    )

    def to_filter(self) -> TradeFilter:
        """The datasource's filter for these conditions."""
        return TradeFilter(
            strategy_id=optional_key_of(self.strategy_id, "Strategy", field="filter.strategyId"),
            instrument=self.instrument,
            status=self.status.name if self.status else None,  # its name is its value
            from_time=self.from_,
            to_time=self.to,
        )


@strawberry.type(description="One trade made by a strategy.")
class Trade(relay.Node):
    id: relay.NodeID[str]
    strategy_id: strawberry.ID = strawberry.field(
        description="The global id of the strategy that made it (it may since have been deleted)."
    )
    strategy_name: str = strawberry.field(
        description="The strategy's name when it traded; kept after the strategy is deleted."
    )
    instrument: str = strawberry.field(description="The symbol traded.")
    side: TradeSide = strawberry.field(description="Which way the position opened.")
    quantity: Decimal = strawberry.field(description="How much was traded.")
    entry_price: Decimal = strawberry.field(description="The price the position opened at.")
    exit_price: Decimal | None = strawberry.field(
        description="The price it closed at; null while open."
    )
    entry_time: datetime = strawberry.field(description="When the position opened.")
    exit_time: datetime | None = strawberry.field(
        description="When it closed (its UTC day is the trade's day); null while open."
    )
    pnl: Decimal | None = strawberry.field(
        description="Gross profit or loss, before fees; null while open."
    )
    fees: Decimal = strawberry.field(description="What the broker charged.")
    status: TradeStatus = strawberry.field(description="Whether the position is still open.")
    broker: str | None = strawberry.field(
        description="The broker it was placed with, as the trade recorder stored it."
    )
    environment: Environment | None = strawberry.field(
        description="Real money or test network; null when the recorder did not say."
    )
    strategy_key: strawberry.Private[str]

    @classmethod
    def from_record(cls, record: TradeRecord) -> Trade:
        """The schema view of a stored trade: every shown field of the table, the codes as
        the schema's enums."""
        values = shown_values(record, TRADE_FIELDS)
        values["side"] = enum_value(TradeSide, record.side) or TradeSide.BUY
        values["status"] = enum_value(TradeStatus, record.status) or TradeStatus.OPEN
        values["environment"] = enum_value(Environment, record.environment)
        values["strategy_id"] = global_id("Strategy", record.strategy_id)
        return cls(id=record.id, strategy_key=record.strategy_id, **values)

    @strawberry.field(description="Net PnL, pnl - fees, of a closed trade; null while open.")
    def net_pnl(self) -> Decimal | None:
        # The same figure the totals count (a closed trade without pnl nets -fees).
        if self.status is not TradeStatus.CLOSED or self.exit_time is None:
            return None
        return net_pnl(self.pnl, self.fees)

    @strawberry.field(description="The strategy that made the trade (strategies source).")
    async def strategy(
        self, info: Info
    ) -> Annotated[Strategy, strawberry.lazy("schema.strategies")] | None:
        from schema.strategies import Strategy  # noqa: PLC0415 - cyclic types

        record = await strategy_by_id(info.context, self.strategy_key)
        return Strategy.from_record(record) if record else None


@strawberry.type(description="A page of trades.")
class TradeConnection(Connection[Trade]):
    pass


def trades_field(
    *,
    partition: Partition,
    owner: Callable[[Any, Info], str],
    description: str,
    permission_classes: list[type[BasePermission]] | None = None,
) -> Any:
    """The one `trades(filter, first, after)` field, for a user's or a strategy's trades:
    `owner(source, info)` names whose (the viewer, the user, the strategy)."""

    async def trades(
        self: Any,
        info: Info,
        filter: Annotated[  # noqa: A002 - the argument's GraphQL name
            TradeFilterInput | None,
            strawberry.argument(description="Only the trades that meet every condition given."),
        ] = None,
        first: First = None,
        after: After = None,
    ) -> TradeConnection | None:
        page = await trade_page(
            info.context,
            partition=partition,
            owner=owner(self, info),
            trade_filter=filter.to_filter() if filter else None,
            first=first,
            after=after,
        )
        return TradeConnection.of(page, Trade.from_record)

    return strawberry.field(
        resolver=trades,
        description=description,
        permission_classes=permission_classes,
        directives=[PAGE],
    )
