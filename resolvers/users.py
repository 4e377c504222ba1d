"""Reading users for the joins that lead to one (a strategy's owner)."""

from __future__ import annotations

from datasources.users import UserRecord
from resolvers.context import Context


async def user_by_id(ctx: Context, user_id: str) -> UserRecord | None:
    """The user with this id, batched with the request's other lookups; None when there is
    none or it is outside the viewer's scope."""
    return await ctx.loaders.users.by_id.load(user_id)
