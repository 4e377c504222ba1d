"""The root Query and Mutation types."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import strawberry

from resolvers import accounts
from resolvers.analytics import analytics_rows
from resolvers.strategies import get_strategy, strategy_page
from resolvers.trades import trade_page
from schema._base import Info, StrategyStatus
from schema.analytics import Analytics
from schema.dashboard import Dashboard, Profile
from schema.strategies import Strategy, StrategyConnection
from schema.trades import Trade, TradeConnection, TradeFilterInput
from schema.users import User


@strawberry.type(description="A signed-in session: an access token for the user.")
class AuthPayload:
    access_token: str
    token_type: str
    expires_at: datetime
    user: User

    @classmethod
    def from_signed_in(cls, signed_in: accounts.SignedIn) -> AuthPayload:
        """The payload for a fresh sign-in."""
        return cls(
            access_token=signed_in.access_token,
            token_type="Bearer",  # noqa: S106 - the scheme name, not a secret
            expires_at=signed_in.expires_at,
            user=User.from_record(signed_in.user),
        )


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in user.")
    async def me(self, info: Info) -> User | None:
        viewer = await info.context.viewer()
        return User.from_record(viewer.user)

    @strawberry.field(description="The signed-in user's profile, from four sources at once.")
    async def profile(self, info: Info) -> Profile:
        viewer = await info.context.viewer()
        return Profile(viewer=viewer.user)

    @strawberry.field(description="The signed-in user's dashboard, from all five sources at once.")
    async def dashboard(self, info: Info) -> Dashboard:
        viewer = await info.context.viewer()
        return Dashboard(viewer=viewer.user)

    @strawberry.field(description="One of the viewer's strategies; NOT_FOUND otherwise.")
    async def strategy(self, info: Info, id: strawberry.ID) -> Strategy:  # noqa: A002
        await info.context.viewer()
        return Strategy.from_record(await get_strategy(info.context, id))

    @strawberry.field(description="The viewer's strategies, newest first.")
    async def strategies(
        self,
        info: Info,
        status: StrategyStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> StrategyConnection:
        viewer = await info.context.viewer()
        page = await strategy_page(
            info.context, user_id=viewer.id, status=status, first=first, after=after
        )
        return StrategyConnection.of(page, Strategy.from_record)

    @strawberry.field(description="The viewer's trades, newest entry first.")
    async def trades(
        self,
        info: Info,
        filter: TradeFilterInput | None = None,  # noqa: A002 - the argument's GraphQL name
        first: int | None = None,
        after: str | None = None,
    ) -> TradeConnection:
        viewer = await info.context.viewer()
        page = await trade_page(
            info.context,
            partition="user",
            owner=viewer.id,
            trade_filter=filter.to_filter() if filter else None,
            first=first,
            after=after,
        )
        return TradeConnection.of(page, Trade.from_record)

    @strawberry.field(description="The viewer's figures between two UTC days (inclusive).")
    async def analytics(
        self,
        info: Info,
        from_: Annotated[date | None, strawberry.argument(name="from")] = None,
        to: date | None = None,
        strategy_id: strawberry.ID | None = None,
    ) -> Analytics:
        viewer = await info.context.viewer()
        rows = await analytics_rows(
            info.context, user_id=viewer.id, from_day=from_, to_day=to, strategy_id=strategy_id
        )
        return Analytics.from_rows(rows, from_day=from_, to_day=to)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create an account and sign in.")
    async def register(
        self,
        info: Info,
        email: str,
        password: str,
        first_name: str,
        last_name: str,
        phone: str | None = None,
    ) -> AuthPayload:
        signed_in = await accounts.register(
            info.context,
            email=email,
            password=password,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
        )
        return AuthPayload.from_signed_in(signed_in)

    @strawberry.mutation(description="Sign in with email and password.")
    async def login(self, info: Info, email: str, password: str) -> AuthPayload:
        signed_in = await accounts.login(info.context, email=email, password=password)
        return AuthPayload.from_signed_in(signed_in)
