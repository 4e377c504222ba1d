"""The User type and its joins to the other four sources."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from resolvers.analytics import analytics_rows
from resolvers.credentials import credentials_of
from resolvers.records import USER_FIELDS, UserRecord
from resolvers.strategies import strategy_page
from schema._base import (
    After,
    First,
    FromDay,
    Info,
    Role,
    StatusFilter,
    StrategyIdFilter,
    ToDay,
    enum_value,
    shown_values,
)
from schema._cost import AGGREGATE, PAGE
from schema._ids import optional_key_of
from schema.trades import trades_field

if TYPE_CHECKING:
    from schema.analytics import Analytics
    from schema.credentials import Credentials
    from schema.strategies import StrategyConnection


@strawberry.type(description="A person with an account on the platform.")
class User(relay.Node):
    id: relay.NodeID[str]
    email: str = strawberry.field(description="The sign-in email, stored lower-case.")
    first_name: str = strawberry.field(description="Given name, 1 to 100 characters.")
    last_name: str = strawberry.field(description="Family name, 1 to 100 characters.")
    phone: str | None = strawberry.field(description="Phone number, if one was given.")
    role: Role = strawberry.field(description="What the user may do.")
    created_at: datetime = strawberry.field(description="When the account was created.")
    updated_at: datetime = strawberry.field(description="When the account last changed.")

    @classmethod
    def from_record(cls, record: UserRecord) -> User:
        """The schema view of a stored user: every shown field of the table (the password
        hash and the token version stay behind), the role as the schema's enum."""
        values = shown_values(record, USER_FIELDS)
        values["role"] = enum_value(Role, record.role) or Role.USER
        return cls(
            id=record.id,
            created_at=record.created_at,
            updated_at=record.updated_at,
            **values,
        )

    @strawberry.field(
        description="The user's strategies, newest first (strategies source).", directives=[PAGE]
    )
    async def strategies(
        self,
        info: Info,
        status: StatusFilter = None,
        first: First = None,
        after: After = None,
    ) -> Annotated[StrategyConnection, strawberry.lazy("schema.strategies")] | None:
        from schema.strategies import (  # noqa: PLC0415 - cyclic types
            Strategy,
            StrategyConnection,
        )

        page = await strategy_page(
            info.context, user_id=self.id, status=status, first=first, after=after
        )
        return StrategyConnection.of(page, Strategy.from_record)

    @strawberry.field(description="The user's broker credentials status, never a secret.")
    async def credentials(
        self, info: Info
    ) -> Annotated[Credentials, strawberry.lazy("schema.credentials")] | None:
        from schema.credentials import Credentials  # noqa: PLC0415 - cyclic types

        record = await credentials_of(info.context, self.id)
        return Credentials.from_record(record) if record else None

    trades = trades_field(
        partition="user",
        owner=lambda user, _info: str(user.id),
        description="The user's trades, newest entry first (trades source).",
    )

    @strawberry.field(
        description="The user's figures between two UTC days (analytics source).",
        directives=[AGGREGATE],
    )
    async def analytics(
        self,
        info: Info,
        from_: FromDay = None,
        to: ToDay = None,
        strategy_id: StrategyIdFilter = None,
    ) -> Annotated[Analytics, strawberry.lazy("schema.analytics")] | None:
        from schema.analytics import Analytics  # noqa: PLC0415 - cyclic types

        rows = await analytics_rows(
            info.context,
            user_id=self.id,
            from_day=from_,
            to_day=to,
            strategy_id=optional_key_of(strategy_id, "Strategy", field="strategyId"),
        )
        return Analytics.from_rows(rows, from_day=from_, to_day=to)
