"""What an ADMIN may read: any user by id, and the users list with a search.

The schema's permission class admits only ADMIN viewers; an ADMIN's loaders read
every user's rows (`Scope(user_id=None)`), so the joins under a user work for
anyone. Users being deleted are invisible here.
"""

from __future__ import annotations

from datasources.users import UserPageKey, UserRecord
from gateway.core.errors import BadUserInput, NotFound
from resolvers.context import Context
from resolvers.pagination import Slice, check_first, parse_user_cursor, user_cursor

MAX_SEARCH = 100


def _check_search(search: str | None) -> str | None:
    if search is None or not search.strip():
        return None
    search = search.strip()
    if len(search) > MAX_SEARCH:
        raise BadUserInput(
            f"'search' must be at most {MAX_SEARCH} characters long.", field="search"
        )
    return search


async def get_user(ctx: Context, user_id: str) -> UserRecord:
    """The user with this id; NOT_FOUND when there is none or it is being deleted."""
    record = await ctx.loaders.users.by_id.load(user_id)
    if record is None or record.deleting:
        raise NotFound("No user with this id.")
    return record


async def user_page(
    ctx: Context, *, search: str | None, first: int | None, after: str | None
) -> Slice[UserRecord]:
    """One page of the users, newest first, optionally those whose email or names contain
    `search` (case-insensitive, as plain text)."""
    size = check_first(first)
    text = _check_search(search)
    key = UserPageKey(search=text, first=size, after=parse_user_cursor(after))
    loaders = ctx.loaders
    page = await loaders.users.page.load(key)

    async def total() -> int:
        return await loaders.users.count.load(text or "")

    return Slice(
        items=page.items,
        cursors=[user_cursor(item.id) for item in page.items],
        has_next=page.has_next,
        after=after,
        total=total,
    )
