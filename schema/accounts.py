"""Accounts: signing up and signing in."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers import accounts
from schema._base import Info
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
class AccountMutations:
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
