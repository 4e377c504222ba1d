"""Queries for ADMIN viewers: any user by id, and the users list."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.admin import get_user, user_page
from schema._base import After, Connection, First, Info
from schema._cost import PAGE
from schema._ids import GlobalIdInput, key_of
from schema._limits import Bucket, limited
from schema._permissions import IsAdmin
from schema.users import User


@strawberry.type(description="A page of users.")
class UserConnection(Connection[User]):
    pass


@strawberry.type(description="What an ADMIN can read.")
class AdminQueries:
    @limited(Bucket.QUERY)
    @strawberry.field(
        description="Any user by id (ADMIN only); NOT_FOUND when there is none.",
        permission_classes=[IsAdmin],
    )
    async def user(
        self,
        info: Info,
        id: Annotated[  # noqa: A002 - the argument's GraphQL name
            GlobalIdInput, strawberry.argument(description="The user's id.")
        ],
    ) -> User | None:
        return User.from_record(await get_user(info.context, key_of(id, "User", field="id")))

    @limited(Bucket.QUERY)
    @strawberry.field(
        description="Every user, newest first (ADMIN only). `search` matches a substring "
        "of the email or either name, case-insensitively.",
        permission_classes=[IsAdmin],
        directives=[PAGE],
    )
    async def users(
        self,
        info: Info,
        search: Annotated[
            str | None,
            strawberry.argument(description="Only users whose email or name contains this."),
        ] = None,
        first: First = None,
        after: After = None,
    ) -> UserConnection:
        page = await user_page(info.context, search=search, first=first, after=after)
        return UserConnection.of(page, User.from_record)
