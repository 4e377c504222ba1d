"""Accounts: signing up and in, refreshing and signing out, profile and password."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from resolvers import accounts
from resolvers.records import USER_EDITABLE
from schema._base import Info, sent_values
from schema._limits import Bucket, limited
from schema._permissions import AllowAnyone, IsSignedIn
from schema.users import User

Email = Annotated[str, strawberry.argument(description="The sign-in email (any case).")]
RefreshToken = Annotated[
    str, strawberry.argument(description="The refresh token of the latest AuthPayload.")
]


@strawberry.type(
    description="A signed-in session: a short-lived access token for the user, and a "
    "single-use refresh token that `refreshToken` exchanges for the next pair."
)
class AuthPayload:
    access_token: str = strawberry.field(
        description="The JWT to send as `Authorization: Bearer <accessToken>`."
    )
    token_type: str = strawberry.field(description='Always "Bearer".')
    expires_at: datetime = strawberry.field(description="When the access token stops working.")
    refresh_token: str = strawberry.field(
        description="Single use: `refreshToken` exchanges it for the next pair."
    )
    refresh_token_expires_at: datetime = strawberry.field(
        description="When the refresh token stops working."
    )
    user: User = strawberry.field(description="The signed-in user.")

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
    first_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new given name, 1 to 100 characters."
    )
    last_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new family name, 1 to 100 characters."
    )
    phone: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new phone number; null clears it."
    )

    def changes(self) -> dict[str, str | None]:
        """The fields given, by record attribute (an explicit null included)."""
        return sent_values(self, USER_EDITABLE)


@strawberry.type(description="Accounts and sessions.")
class AccountMutations:
    @limited(Bucket.AUTH)
    @strawberry.mutation(
        description="Create an account and sign in.",
        permission_classes=[AllowAnyone],
    )
    async def register(
        self,
        info: Info,
        email: Email,
        password: Annotated[
            str, strawberry.argument(description="10 to 256 characters; stored as a hash.")
        ],
        first_name: Annotated[
            str, strawberry.argument(description="Given name, 1 to 100 characters.")
        ],
        last_name: Annotated[
            str, strawberry.argument(description="Family name, 1 to 100 characters.")
        ],
        phone: Annotated[
            str | None, strawberry.argument(description="A phone number, if any.")
        ] = None,
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
    async def login(
        self,
        info: Info,
        email: Email,
        password: Annotated[str, strawberry.argument(description="The account's password.")],
    ) -> AuthPayload:
        signed_in = await accounts.login(info.context, email=email, password=password)
        return AuthPayload.from_signed_in(signed_in)

    @limited(Bucket.AUTH)
    @strawberry.mutation(
        description="Exchange a refresh token (single use) for a new access token and refresh "
        "token. Presenting a used refresh token revokes every token of its sign-in.",
        permission_classes=[AllowAnyone],
    )
    async def refresh_token(self, info: Info, refresh_token: RefreshToken) -> AuthPayload:
        signed_in = await accounts.refresh(info.context, refresh_token=refresh_token)
        return AuthPayload.from_signed_in(signed_in)

    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="Sign out: revoke the refresh token and every token rotated with it. "
        "Idempotent; always true. Access tokens already issued expire on their own.",
        permission_classes=[AllowAnyone],
    )
    async def logout(self, info: Info, refresh_token: RefreshToken) -> bool:
        return await accounts.logout(info.context, refresh_token=refresh_token)

    @limited(Bucket.MUTATION)
    @strawberry.mutation(
        description="Change the signed-in user's names or phone.",
        permission_classes=[IsSignedIn],
    )
    async def update_profile(
        self,
        info: Info,
        input: Annotated[  # noqa: A002 - the argument's GraphQL name
            UpdateProfileInput, strawberry.argument(description="The fields to change.")
        ],
    ) -> User:
        record = await accounts.update_profile(info.context, changes=input.changes())
        return User.from_record(record)

    @limited(Bucket.SENSITIVE)
    @strawberry.mutation(
        description="Change the signed-in user's password. Every other session is signed out; "
        "the payload is a fresh session for the caller.",
        permission_classes=[IsSignedIn],
    )
    async def change_password(
        self,
        info: Info,
        current_password: Annotated[
            str, strawberry.argument(description="The password in use now.")
        ],
        new_password: Annotated[
            str, strawberry.argument(description="The new password, 10 to 256 characters.")
        ],
    ) -> AuthPayload:
        signed_in = await accounts.change_password(
            info.context, current_password=current_password, new_password=new_password
        )
        return AuthPayload.from_signed_in(signed_in)
