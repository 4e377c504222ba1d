"""Page sizes and opaque cursors for the Relay connections."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from datasources.trades import TradeCursor
from gateway.core.errors import BadUserInput
from gateway.core.settings import MAX_PAGE_SIZE
from resolvers.checks import INT64_MAX, in_utc

DEFAULT_PAGE_SIZE = 20

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Slice(Generic[T]):
    """A page ready to become a connection: items with their cursors, and a lazy total."""

    items: Sequence[T]
    cursors: Sequence[str]
    has_next: bool
    after: str | None
    total: Callable[[], Awaitable[int]]


def check_first(first: int | None, *, field: str = "first") -> int:
    """The page size asked for, refused outside 0..MAX_PAGE_SIZE."""
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise BadUserInput(f"'{field}' must be between 0 and {MAX_PAGE_SIZE}.", field=field)
    return first


def _encode(kind: str, payload: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{payload}".encode()).decode().rstrip("=")


def _decode(kind: str, cursor: str, field: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (UnicodeError, ValueError, binascii.Error) as exc:
        raise BadUserInput(f"'{field}' is not a valid cursor.", field=field) from exc
    prefix, _, payload = raw.partition(":")
    if prefix != kind or not payload:
        raise _invalid(field)
    return payload


def _invalid(field: str) -> BadUserInput:
    return BadUserInput(f"'{field}' is not a valid cursor for this list.", field=field)


def _parse_id_cursor(kind: str, cursor: str | None, field: str) -> str | None:
    """The id inside a cursor of a list ordered by id, as `_encode` wrote it (lower-case hex)."""
    if cursor is None:
        return None
    payload = _decode(kind, cursor, field)
    if len(payload) != 24 or any(c not in "0123456789abcdef" for c in payload):
        raise _invalid(field)
    return payload


def strategy_cursor(strategy_id: str) -> str:
    """The cursor of a strategy in a strategies list."""
    return _encode("strategy", strategy_id)


def parse_strategy_cursor(cursor: str | None, *, field: str = "after") -> str | None:
    """The strategy id inside a strategies cursor."""
    return _parse_id_cursor("strategy", cursor, field)


def user_cursor(user_id: str) -> str:
    """The cursor of a user in a users list."""
    return _encode("user", user_id)


def parse_user_cursor(cursor: str | None, *, field: str = "after") -> str | None:
    """The user id inside a users cursor."""
    return _parse_id_cursor("user", cursor, field)


def trade_cursor(*, entry_time: datetime, trade_id: str) -> str:
    """The cursor of a trade in a trades list."""
    return _encode("trade", f"{entry_time.isoformat()}|{trade_id}")


def parse_trade_cursor(cursor: str | None, *, field: str = "after") -> TradeCursor | None:
    """The (entry time, id) position inside a trades cursor.

    The id must be a positive 64-bit integer in plain digits, and the time must carry an
    offset and fall within years 1 to 9999 in UTC: anything else no list could have written,
    and the database would refuse it as if it were failing.
    """
    if cursor is None:
        return None
    payload = _decode("trade", cursor, field)
    when, _, trade_id = payload.partition("|")
    digits = trade_id.isascii() and trade_id.isdigit() and len(trade_id) <= len(str(INT64_MAX))
    if not digits or not 1 <= int(trade_id) <= INT64_MAX:
        raise _invalid(field)
    try:
        entry_time = in_utc(datetime.fromisoformat(when))
    except ValueError as exc:
        raise _invalid(field) from exc
    if entry_time is None:
        raise _invalid(field)
    return TradeCursor(entry_time=entry_time, id=int(trade_id))
