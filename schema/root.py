"""The root Query and Mutation types."""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types
from strawberry.types.base import get_object_definition

from resolvers.analytics import analytics_rows
from resolvers.strategies import get_strategy, strategy_page
from schema._base import (
    After,
    First,
    FromDay,
    Info,
    StatusFilter,
    StrategyIdFilter,
    ToDay,
)
from schema._cost import AGGREGATE, PAGE
from schema._ids import key_of, optional_key_of
from schema._limits import Bucket, limited
from schema._permissions import HasAccessToken, IsSignedIn
from schema.account_deletion import AccountDeletionMutations
from schema.accounts import AccountMutations
from schema.admin import AdminQueries
from schema.analytics import Analytics
from schema.credentials import CredentialMutations
from schema.dashboard import Dashboard, Profile
from schema.merging import MergeQueries
from schema.nodes import NodeQueries
from schema.strategies import Strategy, StrategyConnection, StrategyId, StrategyMutations
from schema.trades import trades_field
from schema.users import User


@strawberry.type(description="What a client can read.")
class ViewerQueries:
    @limited(Bucket.QUERY)
    @strawberry.field(
        description="The signed-in user.",
        permission_classes=[IsSignedIn],
    )
    async def me(self, info: Info) -> User | None:
        return User.from_record(info.context.checked_viewer.user)

    # Only the token is checked before these two; the revocation check runs alongside
    # the aggregate's own reads, and each of its fields waits for it (`@aggregate`).

    @limited(Bucket.QUERY)
    @strawberry.field(
        description="The signed-in user's profile, from four sources at once.",
        permission_classes=[HasAccessToken],
    )
    async def profile(self, info: Info) -> Profile:
        return Profile(user_id=info.context.claims().user_id)

    @limited(Bucket.QUERY)
    @strawberry.field(
        description="The signed-in user's dashboard, from all five sources at once.",
        permission_classes=[HasAccessToken],
    )
    async def dashboard(self, info: Info) -> Dashboard:
        return Dashboard(user_id=info.context.claims().user_id)

    # The fields below are fed by sources other than users: nullable, so that one failing
    # (down, not found, bad input) nulls only itself and the rest of the answer still arrives.

    @limited(Bucket.QUERY)
    @strawberry.field(
        description="One of the viewer's strategies; NOT_FOUND otherwise.",
        permission_classes=[IsSignedIn],
    )
    async def strategy(self, info: Info, id: StrategyId) -> Strategy | None:  # noqa: A002
        record = await get_strategy(info.context, key_of(id, "Strategy", field="id"))
        return Strategy.from_record(record)

    @limited(Bucket.QUERY)
    @strawberry.field(
        description="The viewer's strategies, newest first.",
        permission_classes=[IsSignedIn],
        directives=[PAGE],
    )
    async def strategies(
        self,
        info: Info,
        status: StatusFilter = None,
        first: First = None,
        after: After = None,
    ) -> StrategyConnection | None:
        viewer = info.context.checked_viewer
        page = await strategy_page(
            info.context, user_id=viewer.id, status=status, first=first, after=after
        )
        return StrategyConnection.of(page, Strategy.from_record)

    trades = limited(Bucket.QUERY)(
        trades_field(
            partition="user",
            owner=lambda _root, info: info.context.checked_viewer.id,
            description="The viewer's trades, newest entry first.",
            permission_classes=[IsSignedIn],
        )
    )

    @limited(Bucket.QUERY)
    @strawberry.field(
        description="The viewer's figures between two UTC days (inclusive).",
        permission_classes=[IsSignedIn],
        directives=[AGGREGATE],
    )
    async def analytics(
        self,
        info: Info,
        from_: FromDay = None,
        to: ToDay = None,
        strategy_id: StrategyIdFilter = None,
    ) -> Analytics | None:
        viewer = info.context.checked_viewer
        rows = await analytics_rows(
            info.context,
            user_id=viewer.id,
            from_day=from_,
            to_day=to,
            strategy_id=optional_key_of(strategy_id, "Strategy", field="strategyId"),
        )
        return Analytics.from_rows(rows, from_day=from_, to_day=to)


# Each domain declares its own queries and mutations; the schema shows them as one type each.
def _merged(name: str, description: str, types: tuple[type, ...]) -> type:
    merged = merge_types(name, types)
    get_object_definition(merged, strict=True).description = description
    return merged


Query = _merged(
    "Query",
    "Everything a client reads: the viewer's own data, any object by its global id (one or "
    "many, of any type or of one type for stitching), and for an ADMIN the users.",
    (ViewerQueries, NodeQueries, MergeQueries, AdminQueries),
)
Mutation = _merged(
    "Mutation",
    "Every change: accounts and sessions, credentials, strategies and their lifecycle.",
    (
        AccountMutations,
        AccountDeletionMutations,
        CredentialMutations,
        StrategyMutations,
    ),
)
