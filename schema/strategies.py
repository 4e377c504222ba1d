"""The Strategy type and its joins to users, trades and analytics; the strategy mutations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from resolvers import strategies, strategy_lifecycle
from resolvers.analytics import strategy_metrics
from resolvers.records import StrategyRecord
from resolvers.trades import trade_page
from resolvers.users import user_by_id
from schema._base import Connection, Environment, Info, StrategyStatus, enum_value
from schema._permissions import IsSignedIn

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

        record = await user_by_id(info.context, self.user_id)
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

        rows = await strategy_metrics(info.context, self.id)
        return Performance.from_rows(rows)


@strawberry.type(description="A page of strategies.")
class StrategyConnection(Connection[Strategy]):
    pass


_RUNTIME_NOTE = " Changes only while the strategy is STOPPED or ERROR."


@strawberry.input(description="A new strategy. It starts STOPPED.")
class CreateStrategyInput:
    name: str = strawberry.field(
        description="1 to 100 characters (trimmed), unique among your strategies."
    )
    code: str = strawberry.field(description="The strategy's source, at most 256 KiB (UTF-8).")
    instrument: str = strawberry.field(description="The symbol it trades, 1 to 64 characters.")
    broker: str = strawberry.field(description="One of the brokers the gateway is set up for.")
    environment: Environment = strawberry.field(
        default=Environment.TESTNET, description="LIVE trades real money; TESTNET by default."
    )
    config: JSON = strawberry.field(
        default_factory=dict,
        description="Any settings the strategy reads: a JSON object of at most 64 KiB.",
    )
    auto_reconnect: bool = strawberry.field(
        default=False, description="Whether the runner reconnects it after a broker disconnect."
    )
    client_mutation_id: str | None = strawberry.field(
        default=None,
        description="An idempotency key: repeating the request with the same key returns the "
        "strategy the first request created instead of creating another (a different input "
        "under the same key is a CONFLICT). At most 128 characters.",
    )

    def fields(self) -> dict[str, Any]:
        """Every field of the strategy, by record attribute."""
        return {
            "name": self.name,
            "code": self.code,
            "instrument": self.instrument,
            "broker": self.broker,
            "environment": self.environment.value,
            "config": self.config,
            "auto_reconnect": self.auto_reconnect,
        }


@strawberry.input(
    description="Changes to a strategy: a field left out keeps its value; none may be null."
)
class UpdateStrategyInput:
    name: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="1 to 100 characters (trimmed), unique among your strategies.",
    )
    code: str | None = strawberry.field(
        default=strawberry.UNSET, description="At most 256 KiB (UTF-8)." + _RUNTIME_NOTE
    )
    instrument: str | None = strawberry.field(
        default=strawberry.UNSET, description="1 to 64 characters." + _RUNTIME_NOTE
    )
    broker: str | None = strawberry.field(
        default=strawberry.UNSET, description="A configured broker." + _RUNTIME_NOTE
    )
    environment: Environment | None = strawberry.field(
        default=strawberry.UNSET, description="LIVE or TESTNET." + _RUNTIME_NOTE
    )
    config: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Replaces the whole config: a JSON object of at most 64 KiB." + _RUNTIME_NOTE,
    )
    auto_reconnect: bool | None = strawberry.field(default=strawberry.UNSET)

    def fields(self) -> dict[str, Any]:
        """The fields the client sent, by record attribute (a null stays None, to be refused)."""
        sent: dict[str, Any] = {
            "name": self.name,
            "code": self.code,
            "instrument": self.instrument,
            "broker": self.broker,
            "environment": self.environment,
            "config": self.config,
            "auto_reconnect": self.auto_reconnect,
        }
        given = {name: value for name, value in sent.items() if value is not strawberry.UNSET}
        if isinstance(given.get("environment"), Environment):
            given["environment"] = given["environment"].value
        return given


@strawberry.type
class StrategyMutations:
    @strawberry.mutation(
        description="Create a strategy; it starts STOPPED.",
        permission_classes=[IsSignedIn],
    )
    async def create_strategy(self, info: Info, input: CreateStrategyInput) -> Strategy:  # noqa: A002
        record = await strategies.create_strategy(
            info.context, fields=input.fields(), client_mutation_id=input.client_mutation_id
        )
        return Strategy.from_record(record)

    @strawberry.mutation(
        description="Change some fields of a strategy. Code, config, instrument, broker and "
        "environment change only while it is STOPPED or ERROR; name and autoReconnect at any time.",
        permission_classes=[IsSignedIn],
    )
    async def update_strategy(
        self,
        info: Info,
        id: strawberry.ID,  # noqa: A002 - the argument's GraphQL name
        input: UpdateStrategyInput,  # noqa: A002
    ) -> Strategy:
        record = await strategies.update_strategy(
            info.context, strategy_id=id, fields=input.fields()
        )
        return Strategy.from_record(record)

    @strawberry.mutation(
        description="Delete a STOPPED or ERROR strategy (stop a running one first) and return "
        "its id. Its trades stay, under its name.",
        permission_classes=[IsSignedIn],
    )
    async def delete_strategy(self, info: Info, id: strawberry.ID) -> strawberry.ID:  # noqa: A002
        record = await strategies.delete_strategy(info.context, strategy_id=id)
        return strawberry.ID(record.id)

    @strawberry.mutation(
        description="STOPPED → ACTIVE. Needs your credentials for the strategy's broker.",
        permission_classes=[IsSignedIn],
    )
    async def start_strategy(self, info: Info, id: strawberry.ID) -> Strategy:  # noqa: A002
        return await _transition(info, id, "start")

    @strawberry.mutation(
        description="ACTIVE, PAUSED or ERROR → STOPPED.",
        permission_classes=[IsSignedIn],
    )
    async def stop_strategy(self, info: Info, id: strawberry.ID) -> Strategy:  # noqa: A002
        return await _transition(info, id, "stop")

    @strawberry.mutation(
        description="ACTIVE → PAUSED.",
        permission_classes=[IsSignedIn],
    )
    async def pause_strategy(self, info: Info, id: strawberry.ID) -> Strategy:  # noqa: A002
        return await _transition(info, id, "pause")

    @strawberry.mutation(
        description="PAUSED → ACTIVE. Needs your credentials for the strategy's broker.",
        permission_classes=[IsSignedIn],
    )
    async def resume_strategy(self, info: Info, id: strawberry.ID) -> Strategy:  # noqa: A002
        return await _transition(info, id, "resume")


async def _transition(info: Info, strategy_id: str, action: str) -> Strategy:
    record = await strategy_lifecycle.transition_strategy(
        info.context, strategy_id=strategy_id, action=action
    )
    return Strategy.from_record(record)
