"""The deleteAccount mutation."""

from __future__ import annotations

import strawberry

from resolvers.account_deletion import delete_own_account
from schema._base import Info
from schema._limits import Bucket, limited
from schema._permissions import IsSignedIn


@strawberry.type
class AccountDeletionMutations:
    @limited(Bucket.SENSITIVE)
    @strawberry.mutation(
        description="Delete the signed-in account and all its data from every database. "
        "Needs the account's password; every token stops working at once.",
        permission_classes=[IsSignedIn],
    )
    async def delete_account(self, info: Info, password: str) -> bool:
        return await delete_own_account(info.context, password=password)
