"""The deleteAccount mutation."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.account_deletion import delete_own_account
from schema._base import Info
from schema._limits import Bucket, limited
from schema._permissions import IsSignedIn


@strawberry.type(description="Deleting an account.")
class AccountDeletionMutations:
    @limited(Bucket.SENSITIVE)
    @strawberry.mutation(
        description="Delete the signed-in account and all its data from every database. "
        "Needs the account's password; every token stops working at once.",
        permission_classes=[IsSignedIn],
    )
    async def delete_account(
        self,
        info: Info,
        password: Annotated[
            str, strawberry.argument(description="The account's current password.")
        ],
    ) -> bool:
        return await delete_own_account(info.context, password=password)
