"""Accounts: signing up and in, refreshing and signing out, profile and password."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers import accounts
from resolvers.records import USER_EDITABLE
from schema._base import Info, sent_values
from schema._limits import Bucket, limited
from schema._permissions import AllowAnyone, IsSignedIn
from schema.users import User


@strawberry.type(
    description="A signed-in session: a short-lived access token for the user, and a "
    "single-use refresh token that `refreshToken` exchanges for the next pair."
)
class AuthPayload:
    access_token: str
    token_type: str
    expires_at: datetime
    refresh_token: str
    refresh_token_expires_at: datetime
    user: User

    @classmethod
    def from_signed_in(cls, signed_in: accounts.SignedIn) -> AuthPayload:
        """The payload for a fresh sign-in."""
        return cls(
            access_token=signed_in.access_token,
            token_type="Bearer",  # noqa: S106 - the scheme name, not a secret
            expires_at=signed_in.expires_at,
            refresh_token=signed_in.refresh_token,
            refresh_token_expires_at=signed_in.refresh_expires_at,
            user=User.from_record(signed_in.user),
        )


@strawberry.input(
    description="Profile fields to change; a field left out keeps its value. "
    "Names may not be null or blank; `phone: null` clears the phone."
)
class UpdateProfileInput:
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET

    def changes(self) -> dict[str, str | None]:
        """The fields given, by record attribute (an explicit null included)."""
        return sent_values(self, USER_EDITABLE)


@strawberry.type
class AccountMutations:
    @limited(Bucket.AUTH)
    @strawberry.mutation(
        description="Create an account and sign in.",
        permission_classes=[AllowAnyone],
    )
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

    @limited(Bucket.AUTH)
    @strawberry.mutation(
        description="Sign in with email and password.",
        permission_classes=[AllowAnyone],
    )
    async def login(self, info: Info, email: str, password: str) -> AuthPayload:
        signed_in = await accounts.login(info.context, email=email, password=password)
        return AuthPayload.from_signed_in(signed_in)

    @limited(Bucket.AUTH)
    @strawberry.mutation(
        description="Exchange a refresh token (single use) for a new access token and refresh "
        "token. Presenting a used refresh token revokes every token of its sign-in.",
        permission_classes=[AllowAnyone],
    )
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthPayload:
        signed_in = await accounts.refresh(info.context, refresh_token=refresh_token)
        return AuthPayload.from_signed_in(signed_in)

    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="Sign out: revoke the refresh token and every token rotated with it. "
        "Idempotent; always true. Access tokens already issued expire on their own.",
        permission_classes=[AllowAnyone],
    )
    async def logout(self, info: Info, refresh_token: str) -> bool:
        return await accounts.logout(info.context, refresh_token=refresh_token)

    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="Change the signed-in user's names or phone.",
        permission_classes=[IsSignedIn],
    )
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> User:  # noqa: A002
        record = await accounts.update_profile(info.context, changes=input.changes())
        return User.from_record(record)

    @limited(Bucket.SENSITIVE)
    @strawberry.mutation(
        description="Change the signed-in user's password. Every other session is signed out; "
        "the payload is a fresh session for the caller.",
        permission_classes=[IsSignedIn],
    )
    async def change_password(
        self, info: Info, current_password: str, new_password: str
    ) -> AuthPayload:
        signed_in = await accounts.change_password(
            info.context, current_password=current_password, new_password=new_password
        )
        return AuthPayload.from_signed_in(signed_in)
