"""Deleting one's own account."""

from __future__ import annotations

from gateway.core.errors import Unauthenticated
from resolvers.accounts import password_matches
from resolvers.context import Context
from resolvers.deletion import delete_account


async def delete_own_account(ctx: Context, *, password: str) -> bool:
    """Delete the viewer's account everywhere, after checking its password.

    Irrevocable once it returns: every token of the account is revoked at
    once, and its data is gone from all five databases now, or as soon as an
    unavailable source answers again.
    """
    viewer = ctx.checked_viewer
    if not await password_matches(ctx, viewer.user, password):
        raise Unauthenticated("The password is not correct.")
    deleted = await delete_account(
        ctx.sources, viewer.id, settle_seconds=ctx.settings.deletion_settle_seconds
    )
    # Later fields of this same request act as no one: the account is gone.
    ctx.sign_out(Unauthenticated("This account has been deleted."))
    return deleted
