"""The Strategy type, its and its joins to users, trades and analytics."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from datasources.strategies import StrategyRecord
from resolvers.trades import trade_page
from schema._base import Connection, Environment, Info, StrategyStatus, enum_value

if TYPE_CHECKING:
    from schema.analytics import Performance
    from schema.trades import TradeConnection, TradeFilterInput
    from schema.users import User


@strawberry.type(description="An algorithmic trading strategy and its run state.")
class Strategy:
    id: strawberry.ID
    name: str
    code: str
    status: StrategyStatus
    container_id: str | None
    instrument: str | None
    broker: str | None
    environment: Environment
    config: JSON
    last_action: str | None
    auto_reconnect: bool
    error_message: str | None
    error_count: int
    last_heartbeat: datetime | None
    created_at: datetime
    updated_at: datetime
    user_id: strawberry.Private[str]

    @classmethod
    def from_record(cls, record: StrategyRecord) -> Strategy:
        """The schema view of a stored strategy."""
        return cls(
            id=strawberry.ID(record.id),
            name=record.name,
            code=record.code,
            status=enum_value(StrategyStatus, record.status) or StrategyStatus.ERROR,
            container_id=record.container_id,
            instrument=record.instrument,
            broker=record.broker,
            environment=enum_value(Environment, record.environment) or Environment.TESTNET,
            config=JSON(dict(record.config)),
            last_action=record.last_action,
            auto_reconnect=record.auto_reconnect,
            error_message=record.error_message,
            error_count=record.error_count,
            last_heartbeat=record.last_heartbeat,
            created_at=record.created_at,
            updated_at=record.updated_at,
            user_id=record.user_id,
        )

    @strawberry.field(description="The strategy's owner (users source).")
    async def owner(self, info: Info) -> Annotated[User, strawberry.lazy("schema.users")] | None:
        from schema.users import User  # noqa: PLC0415 - cyclic types

        record = await info.context.loaders.users.by_id.load(self.user_id)
        return User.from_record(record) if record else None

    @strawberry.field(description="The strategy's trades, newest entry first (trades source).")
    async def trades(
        self,
        info: Info,
        filter: Annotated[  # noqa: A002 - the argument's GraphQL name
            TradeFilterInput, strawberry.lazy("schema.trades")
        ]
        | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Annotated[TradeConnection, strawberry.lazy("schema.trades")] | None:
        from schema.trades import Trade, TradeConnection  # noqa: PLC0415 - cyclic types

        page = await trade_page(
            info.context,
            partition="strategy",
            owner=self.id,
            trade_filter=filter.to_filter() if filter else None,
            first=first,
            after=after,
        )
        return TradeConnection.of(page, Trade.from_record)

    @strawberry.field(description="Lifetime figures from the daily metrics (analytics source).")
    async def performance(
        self, info: Info
    ) -> Annotated[Performance, strawberry.lazy("schema.analytics")] | None:
        from schema.analytics import Performance  # noqa: PLC0415 - cyclic types

        rows = await info.context.loaders.analytics.by_strategy.load(self.id)
        return Performance.from_rows(rows)


@strawberry.type(description="A page of strategies.")
class StrategyConnection(Connection[Strategy]):
    pass
