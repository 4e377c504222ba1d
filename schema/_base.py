"""Shared schema pieces: the resolver `Info` type, scalars, enums and connections."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Generic, Self, TypeVar

import strawberry

from gateway.core.errors import BadUserInput
from resolvers.context import Context
from resolvers.pagination import Slice
from resolvers.records import StoredField
from schema._cost import AGGREGATE

Info = strawberry.Info[Context, None]


def _serialize_decimal(value: Decimal) -> str:
    # One spelling per amount ("2", never "2.0" or "2E+1"), whether it was read from a
    # database or summed in Python; trimmed as text so no digit is ever rounded away.
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _parse_decimal(value: Any) -> Decimal:
    # Floats are refused: a binary float has already lost the amount's exact value.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadUserInput('A Decimal must be given as a string, such as "12.50".')
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise BadUserInput(f"{value!r} is not a decimal number.") from exc
    if not amount.is_finite():
        raise BadUserInput("A Decimal must be a finite number.")
    return amount


# Registered for `decimal.Decimal` through the schema's `scalar_map`.
DECIMAL_SCALAR = strawberry.scalar(
    name="Decimal",
    description='An exact decimal number, serialized as a string ("1234.5").',
    serialize=_serialize_decimal,
    parse_value=_parse_decimal,
)


@strawberry.enum(description="What a user may do: USER sees its own data, ADMIN manages users.")
class Role(Enum):
    USER = "USER"
    ADMIN = "ADMIN"


@strawberry.enum(description="Where a strategy is in its lifecycle.")
class StrategyStatus(Enum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    ERROR = "ERROR"


@strawberry.enum(description="Whether a strategy trades real money (LIVE) or on a test network.")
class Environment(Enum):
    LIVE = "LIVE"
    TESTNET = "TESTNET"


@strawberry.enum
class TradeSide(Enum):
    BUY = "BUY"
    SELL = "SELL"


@strawberry.enum
class TradeStatus(Enum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


@strawberry.type(description="Where a page of a connection sits in the whole list.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


E = TypeVar("E", bound=Enum)


def enum_value(enum: type[E], value: str | None) -> E | None:
    """A stored value as the schema's enum; values unknown to the schema read as None."""
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        return None


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


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Connection(Generic[NodeT]):
    """A page of a list; subclassed per node type (`StrategyConnection`)."""

    edges: list[Edge[NodeT]]
    page_info: PageInfo
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
