"""The Strategy type and its joins to users, trades and analytics; the strategy mutations."""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types.base import get_object_definition

from resolvers import strategies, strategy_lifecycle
from resolvers.analytics import strategy_metrics
from resolvers.records import STRATEGY_EDITABLE as EDITABLE
from resolvers.records import STRATEGY_FIELDS as FIELDS
from resolvers.records import StrategyRecord
from resolvers.users import user_by_id
from schema._base import (
    Connection,
    Environment,
    Info,
    StrategyStatus,
    enum_value,
    sent_values,
    shown_values,
)
from schema._cost import AGGREGATE, Cost
from schema._ids import GlobalIdInput, global_id, key_of
from schema._limits import Bucket, limited
from schema._permissions import IsSignedIn
from schema.trades import trades_field

T = TypeVar("T")

StrategyId = Annotated[GlobalIdInput, strawberry.argument(description="The strategy's global id.")]

if TYPE_CHECKING:
    from schema.analytics import Performance
    from schema.root import Query
    from schema.users import User


@strawberry.type(description="An algorithmic trading strategy and its run state.")
class Strategy(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Its name, unique among its owner's strategies.")
    # Up to 256 KiB each: a page of them is a large answer.
    code: str = strawberry.field(
        description="The source the runner executes.", directives=[Cost(weight=25)]
    )
    status: StrategyStatus = strawberry.field(description="Where it is in its lifecycle.")
    container_id: str | None = strawberry.field(
        description="The runner's container for it, while the runner has one."
    )
    instrument: str = strawberry.field(
        description="The symbol it trades (empty for a strategy stored before it was required)."
    )
    broker: str = strawberry.field(
        description="The broker it trades through (empty for a strategy stored before it was "
        "required)."
    )
    environment: Environment = strawberry.field(description="Real money or test network.")
    config: JSON = strawberry.field(  # up to 64 KiB
        description="The settings the strategy reads: a JSON object.", directives=[Cost(weight=5)]
    )
    last_action: str | None = strawberry.field(
        description="The last lifecycle action applied (start, pause, resume, stop, or one the "
        "runner records)."
    )
    auto_reconnect: bool = strawberry.field(
        description="Whether the runner reconnects it after a broker disconnect."
    )
    error_message: str | None = strawberry.field(
        description="Why it is in ERROR; cleared when it is stopped."
    )
    error_count: int = strawberry.field(description="How many errors the runner has recorded.")
    last_heartbeat: datetime | None = strawberry.field(
        description="When the runner last reported it alive."
    )
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    user_id: strawberry.Private[str]

    @classmethod
    def from_record(cls, record: StrategyRecord) -> Strategy:
        """The schema view of a stored strategy: every field of the table as stored, the
        enums and the config turned into their schema types."""
        values = shown_values(record, FIELDS)
        values["status"] = enum_value(StrategyStatus, record.status) or StrategyStatus.ERROR
        values["environment"] = enum_value(Environment, record.environment) or Environment.TESTNET
        values["config"] = JSON(dict(record.config))
        return cls(
            id=record.id,
            created_at=record.created_at,
            updated_at=record.updated_at,
            user_id=record.user_id,
            **values,
        )

    @strawberry.field(description="The strategy's owner (users source).")
    async def owner(self, info: Info) -> Annotated[User, strawberry.lazy("schema.users")] | None:
        from schema.users import User  # noqa: PLC0415 - cyclic types

        record = await user_by_id(info.context, self.user_id)
        return User.from_record(record) if record else None

    trades = trades_field(
        partition="strategy",
        owner=lambda strategy, _info: strategy.id,
        description="The strategy's trades, newest entry first (trades source).",
    )

    @strawberry.field(
        description="Lifetime figures from the daily metrics (analytics source).",
        directives=[AGGREGATE],
    )
    async def performance(
        self, info: Info
    ) -> Annotated[Performance, strawberry.lazy("schema.analytics")] | None:
        from schema.analytics import Performance  # noqa: PLC0415 - cyclic types

        rows = await strategy_metrics(info.context, self.id)
        return Performance.from_rows(rows)


@strawberry.type(description="A page of strategies.")
class StrategyConnection(Connection[Strategy]):
    pass


_QUERY_DESCRIPTION = (
    "The root Query, read after the change: select the lists the change affects (say "
    "`strategies(first: 20)`) and a client cache writes them as if it had queried them "
    "(Apollo Client into ROOT_QUERY), with no cache code. Each field under it is the root "
    "field itself: the same permission, rate limit and cost. Null when a non-null field "
    "under it fails (an ADMIN field for a user, say): the change stands all the same."
)


# `Query` is built by merge_types (schema/root.py), which mypy sees as a plain `type`.
RootQuery = Annotated["Query", strawberry.lazy("schema.root")]  # type: ignore[valid-type]


def _root_query() -> RootQuery:
    from schema.root import Query  # noqa: PLC0415 - the root types import this module

    root: RootQuery = Query()
    return root


@strawberry.type(description="What createStrategy created.")
class CreateStrategyPayload:
    strategy: Strategy = strawberry.field(
        description="The new strategy (Relay: `@prependNode` on it adds it to a connection)."
    )

    @strawberry.field(description=_QUERY_DESCRIPTION)
    def query(self) -> RootQuery | None:
        # Nullable: a failure under it must not hide the change, which is already made.
        return _root_query()


@strawberry.type(description="What deleteStrategy deleted.")
class DeleteStrategyPayload:
    deleted_id: strawberry.ID = strawberry.field(
        description="The deleted strategy's global id: what a client cache drops (Relay: "
        "`deletedId @deleteEdge` or `@deleteRecord`)."
    )
    strategy: Strategy = strawberry.field(
        description="The strategy as it was when it was deleted; it can no longer be read."
    )

    @strawberry.field(description=_QUERY_DESCRIPTION)
    def query(self) -> RootQuery | None:
        # Nullable: a failure under it must not hide the change, which is already made.
        return _root_query()


class StrategyFieldsInput:
    """What the strategy inputs share: the editable fields the client sent, by record
    attribute (`datasources.strategies.EDITABLE`)."""

    def fields(self) -> dict[str, Any]:
        """The fields the client sent, by record attribute (a null stays None, to be refused;
        a field left out of an update is not there)."""
        return sent_values(self, EDITABLE)


@strawberry.input(description="A new strategy. It starts STOPPED.")
class CreateStrategyInput(StrategyFieldsInput):
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


_RUNTIME_NOTE = " Changes only while the strategy is STOPPED or ERROR."
# How updateStrategy describes a field where it differs from createStrategy (a runtime
# field's description also gets _RUNTIME_NOTE); None shows none.
_UPDATE_DESCRIPTIONS: dict[str, str | None] = {
    "code": "At most 256 KiB (UTF-8).",
    "instrument": "1 to 64 characters.",
    "broker": "A configured broker.",
    "environment": "LIVE or TESTNET.",
    "config": "Replaces the whole config: a JSON object of at most 64 KiB.",
    "auto_reconnect": "Whether the runner reconnects it after a broker disconnect.",
}


def _optional_editable_fields(cls: type[T]) -> type[T]:
    """Give an input every editable field of CreateStrategyInput, optional and left out
    (UNSET) by default, so the update input never needs a field list of its own."""
    definition = get_object_definition(CreateStrategyInput, strict=True)
    declared = {field.python_name: field for field in definition.fields}
    annotations: dict[str, object] = {}
    for editable in EDITABLE:
        field = declared[editable.attr]
        description = _UPDATE_DESCRIPTIONS.get(editable.attr, field.description)
        if description is not None and editable.runtime:
            description += _RUNTIME_NOTE
        if field.type_annotation is None:
            raise TypeError(f"CreateStrategyInput.{editable.attr} has no annotation")
        annotations[editable.attr] = Optional[field.type_annotation.evaluate()]  # noqa: UP045
        setattr(
            cls,
            editable.attr,
            strawberry.field(default=strawberry.UNSET, description=description),
        )
    cls.__annotations__ = {**annotations, **inspect.get_annotations(cls)}
    return cls


@strawberry.input(
    description="Changes to a strategy: a field left out keeps its value; none may be null."
)
@_optional_editable_fields
class UpdateStrategyInput(StrategyFieldsInput):
    pass


@strawberry.type(description="The strategy mutations.")
class StrategyMutations:
    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="Create a strategy; it starts STOPPED. The payload carries it and the root "
        "Query, so the same answer can carry the lists it joins.",
        permission_classes=[IsSignedIn],
    )
    async def create_strategy(
        self,
        info: Info,
        input: Annotated[  # noqa: A002 - the argument's GraphQL name
            CreateStrategyInput, strawberry.argument(description="The new strategy.")
        ],
    ) -> CreateStrategyPayload:
        record = await strategies.create_strategy(
            info.context, fields=input.fields(), client_mutation_id=input.client_mutation_id
        )
        return CreateStrategyPayload(strategy=Strategy.from_record(record))

    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="Change some fields of a strategy. Code, config, instrument, broker and "
        "environment change only while it is STOPPED or ERROR; name and autoReconnect at any time.",
        permission_classes=[IsSignedIn],
    )
    async def update_strategy(
        self,
        info: Info,
        id: StrategyId,  # noqa: A002 - the argument's GraphQL name
        input: Annotated[  # noqa: A002
            UpdateStrategyInput, strawberry.argument(description="The fields to change.")
        ],
    ) -> Strategy:
        record = await strategies.update_strategy(
            info.context, strategy_id=_key(id), fields=input.fields()
        )
        return Strategy.from_record(record)

    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="Delete a STOPPED or ERROR strategy (stop a running one first). Its trades "
        "stay, under its name. The payload names the deleted strategy, so a client cache can "
        "drop it: `deletedId` (Relay's @deleteEdge or @deleteRecord), `strategy` as it was, and "
        "the root Query to re-read the lists it left.",
        permission_classes=[IsSignedIn],
    )
    async def delete_strategy(self, info: Info, id: StrategyId) -> DeleteStrategyPayload:  # noqa: A002
        record = await strategies.delete_strategy(info.context, strategy_id=_key(id))
        return DeleteStrategyPayload(
            deleted_id=global_id("Strategy", record.id), strategy=Strategy.from_record(record)
        )

    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="STOPPED → ACTIVE. Needs your credentials for the strategy's broker.",
        permission_classes=[IsSignedIn],
    )
    async def start_strategy(self, info: Info, id: StrategyId) -> Strategy:  # noqa: A002
        return await _transition(info, id, "start")

    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="ACTIVE, PAUSED or ERROR → STOPPED.",
        permission_classes=[IsSignedIn],
    )
    async def stop_strategy(self, info: Info, id: StrategyId) -> Strategy:  # noqa: A002
        return await _transition(info, id, "stop")

    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="ACTIVE → PAUSED.",
        permission_classes=[IsSignedIn],
    )
    async def pause_strategy(self, info: Info, id: StrategyId) -> Strategy:  # noqa: A002
        return await _transition(info, id, "pause")

    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="PAUSED → ACTIVE. Needs your credentials for the strategy's broker.",
        permission_classes=[IsSignedIn],
    )
    async def resume_strategy(self, info: Info, id: StrategyId) -> Strategy:  # noqa: A002
        return await _transition(info, id, "resume")


async def _transition(info: Info, strategy_id: GlobalIdInput, action: str) -> Strategy:
    record = await strategy_lifecycle.transition_strategy(
        info.context, strategy_id=_key(strategy_id), action=action
    )
    return Strategy.from_record(record)


def _key(strategy_id: GlobalIdInput) -> str:
    return key_of(strategy_id, "Strategy", field="id")
