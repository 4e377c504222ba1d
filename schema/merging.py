"""Merge queries for GraphQL Tools schema stitching: `usersByIds`, `strategiesByIds`,
`tradesByIds`. A stitching gateway that merges one of our types with another schema's
asks for every object of a step in one call, by the ids it holds:

    merge: { Strategy: { selectionSet: '{ id }', fieldName: 'strategiesByIds',
                         key: ({ id }) => id, argsFromKeys: (ids) => ({ ids }) } }

Each answers as `nodes(ids:)` does, restricted to its type (schema/nodes.py `resolve_ids`):
the same loaders (one query per source, whatever the number of ids), the same scope (another
user's object is null, an ADMIN sees all), results in the order of the ids, null for a
missing one, and null with BAD_USER_INPUT at its place for an id that is malformed or of
another type. `MERGE_QUERIES` lists them; tests/schema/test_merging.py checks every one has
that shape.
"""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from gateway.core.settings import MAX_PAGE_SIZE
from schema._base import Info
from schema._cost import ListSize
from schema._ids import GlobalIdInput
from schema._limits import Bucket, limited
from schema._permissions import IsSignedIn
from schema.nodes import check_id_count, resolve_ids
from schema.strategies import Strategy
from schema.trades import Trade
from schema.users import User

# The merge query of each type a stitched schema can merge, by type name.
MERGE_QUERIES: dict[str, str] = {
    "User": "usersByIds",
    "Strategy": "strategiesByIds",
    "Trade": "tradesByIds",
}

# Sized by the ids it is given, like `nodes`: N ids cost N times what is selected.
_BY_IDS = ListSize(slicing_arguments=["ids"], assumed_size=MAX_PAGE_SIZE)


def _description(type_name: str, plural: str) -> str:
    return (
        f"The {plural} with these global ids, in the order given, for merging {type_name} "
        f"in a stitched schema: one query for any number of ids (at most {MAX_PAGE_SIZE}). "
        f"Null at the place of an id with no {type_name} you may see (missing or not "
        "yours, the same answer); "
        "null with a BAD_USER_INPUT error for an id that is malformed or of another type."
    )


async def _by_ids(info: Info, ids: list[GlobalIdInput], type_name: str) -> list[Any]:
    check_id_count(ids, field="ids")
    # An item that failed is returned as its exception: it is null, with its error.
    return await resolve_ids(info, ids, field="ids", of_type=type_name)


@strawberry.type
class MergeQueries:
    @limited(Bucket.QUERY)
    @strawberry.field(
        description=_description("User", "users"),
        permission_classes=[IsSignedIn],
        directives=[_BY_IDS],
    )
    async def users_by_ids(
        self,
        info: Info,
        ids: Annotated[
            list[GlobalIdInput],
            strawberry.argument(description="Global ids of users, as fields returned them."),
        ],
    ) -> list[User | None]:
        users: list[User | None] = await _by_ids(info, ids, "User")
        return users

    @limited(Bucket.QUERY)
    @strawberry.field(
        description=_description("Strategy", "strategies"),
        permission_classes=[IsSignedIn],
        directives=[_BY_IDS],
    )
    async def strategies_by_ids(
        self,
        info: Info,
        ids: Annotated[
            list[GlobalIdInput],
            strawberry.argument(description="Global ids of strategies, as fields returned them."),
        ],
    ) -> list[Strategy | None]:
        strategies: list[Strategy | None] = await _by_ids(info, ids, "Strategy")
        return strategies

    @limited(Bucket.QUERY)
    @strawberry.field(
        description=_description("Trade", "trades"),
        permission_classes=[IsSignedIn],
        directives=[_BY_IDS],
    )
    async def trades_by_ids(
        self,
        info: Info,
        ids: Annotated[
            list[GlobalIdInput],
            strawberry.argument(description="Global ids of trades, as fields returned them."),
        ],
    ) -> list[Trade | None]:
        trades: list[Trade | None] = await _by_ids(info, ids, "Trade")
        return trades
