"""Shared schema pieces: the resolver `Info` type, enums and connections (scalars in
`schema/_scalars.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import date
from enum import Enum
from typing import Annotated, Any, Generic, Self, TypeVar

import strawberry

from gateway.core.settings import MAX_PAGE_SIZE
from resolvers.context import Context
from resolvers.pagination import DEFAULT_PAGE_SIZE, Slice
from resolvers.records import StoredField
from schema._cost import AGGREGATE
from schema._ids import GlobalIdInput

Info = strawberry.Info[Context, None]

# The arguments several fields share, each described once.
First = Annotated[
    int | None,
    strawberry.argument(
        description=f"How many items: {DEFAULT_PAGE_SIZE} when left out, at most {MAX_PAGE_SIZE}."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="A cursor of this list (`pageInfo.endCursor`): the page starts after it."
    ),
]
FromDay = Annotated[
    date | None,
    strawberry.argument(
        name="from", description="The first UTC day counted; from the first trade when left out."
    ),
]
ToDay = Annotated[
    date | None,
    strawberry.argument(description="The last UTC day counted; to the last trade when left out."),
]
StrategyIdFilter = Annotated[
    GlobalIdInput | None,
    strawberry.argument(description="Only this strategy's figures (its global id)."),
]


@strawberry.enum(description="What a user may do: USER sees its own data, ADMIN manages users.")
class Role(Enum):
    USER = strawberry.enum_value("USER", description="Sees and changes only its own data.")
    ADMIN = strawberry.enum_value("ADMIN", description="Also reads every user (`user`, `users`).")


@strawberry.enum(description="Where a strategy is in its lifecycle.")
class StrategyStatus(Enum):
    ACTIVE = strawberry.enum_value("ACTIVE", description="Running and trading.")
    PAUSED = strawberry.enum_value("PAUSED", description="Running, but placing no orders.")
    STOPPED = strawberry.enum_value("STOPPED", description="Not running; where a strategy starts.")
    ERROR = strawberry.enum_value("ERROR", description="Stopped by a failure (see errorMessage).")


@strawberry.enum(description="Whether a strategy trades real money (LIVE) or on a test network.")
class Environment(Enum):
    LIVE = strawberry.enum_value("LIVE", description="The broker's real market, real money.")
    TESTNET = strawberry.enum_value("TESTNET", description="The broker's test network.")


@strawberry.enum(description="Which way a trade opened.")
class TradeSide(Enum):
    BUY = strawberry.enum_value("BUY", description="Bought first (long).")
    SELL = strawberry.enum_value("SELL", description="Sold first (short).")


@strawberry.enum(description="Whether a trade's position is still open.")
class TradeStatus(Enum):
    OPEN = strawberry.enum_value("OPEN", description="Entered, not yet exited: no PnL yet.")
    CLOSED = strawberry.enum_value("CLOSED", description="Exited; counts in every PnL figure.")


@strawberry.type(description="Where a page of a connection sits in the whole list.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether items follow this page.")
    has_previous_page: bool = strawberry.field(
        description="Whether items come before this page (it was asked for with `after`)."
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the page's first item; null when the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the page's last item, to pass as `after` for the next page; "
        "null when the page is empty."
    )


StatusFilter = Annotated[
    StrategyStatus | None,
    strawberry.argument(description="Only the strategies in this status."),
]

E = TypeVar("E", bound=Enum)


def enum_value(enum: type[E], value: str | None) -> E | None:
    """A stored value as the schema's enum; values unknown to the schema read as None."""
    if value is None:
        return None
    # The members by value, as `enum(value)` looks them up, without its call and exception.
    member: E | None = enum._value2member_map_.get(value)  # type: ignore[assignment]
    return member


def shown_values(record: object, fields: Iterable[StoredField]) -> dict[str, Any]:
    """A stored record's values of every field its table shows, by attribute: what a
    schema type's `from_record` starts from."""
    return {field.attr: getattr(record, field.attr) for field in fields if field.shown}


def sent_values(given: object, fields: Iterable[StoredField]) -> dict[str, Any]:
    """The fields an input holds of `fields`, by attribute: a field left out (UNSET) is not
    there, an explicit null stays None, an enum is given by its value."""
    sent = {field.attr: getattr(given, field.attr) for field in fields}
    return {
        name: value.value if isinstance(value, Enum) else value
        for name, value in sent.items()
        if value is not strawberry.UNSET
    }


NodeT = TypeVar("NodeT")
RecordT = TypeVar("RecordT")


@strawberry.type(description="One item of a page, with its place in the list.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(
        description="Where this item sits: pass it as `after` to get the items that follow."
    )
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type
class Connection(Generic[NodeT]):
    """A page of a list; subclassed per node type (`StrategyConnection`)."""

    edges: list[Edge[NodeT]] = strawberry.field(description="The page's items, in list order.")
    page_info: PageInfo = strawberry.field(description="Where the page sits in the whole list.")
    total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list holds.", directives=[AGGREGATE])
    async def total_count(self) -> int:
        return await self.total()

    @classmethod
    def of(cls, page: Slice[RecordT], node: Callable[[RecordT], NodeT]) -> Self:
        """A connection over one page, each record turned into its schema type by `node`."""
        cursors = list(page.cursors)
        return cls(
            edges=[
                Edge(cursor=cursor, node=node(record))
                for record, cursor in zip(page.items, cursors, strict=True)
            ],
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.after is not None,
                start_cursor=cursors[0] if cursors else None,
                end_cursor=cursors[-1] if cursors else None,
            ),
            total=page.total,
        )
