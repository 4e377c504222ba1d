"""Input checks shared by the resolvers: text that every source can store, ids and instants.

Each refusal is a BAD_USER_INPUT naming the field, raised before any source is asked: a
value no source could store or match is the caller's mistake, not a failing source.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from datasources import StoredField
from gateway.core.errors import BadUserInput, InvalidFields

T = TypeVar("T")
INT64_MAX = 2**63 - 1
_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")


def utf8_length(value: str, field: str) -> int:
    """The UTF-8 length of `value`; refused when it holds a lone surrogate (no Unicode text)."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate, allowed by JSON escapes
        raise BadUserInput(f"'{field}' is not valid Unicode text.", field=field) from exc


def check_text(value: str, field: str, maximum: int) -> str:
    """A name or a symbol: trimmed, valid Unicode, 1 to `maximum` characters, no control
    characters (NUL among them, which PostgreSQL cannot store)."""
    value = value.strip()
    utf8_length(value, field)
    if not 1 <= len(value) <= maximum:
        raise BadUserInput(f"'{field}' must be 1 to {maximum} characters long.", field=field)
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise BadUserInput(f"'{field}' must not contain control characters.", field=field)
    return value


def check_text_field(value: str | None, field: StoredField) -> str:
    """A text field of a field table (`check_text` within the field's `limit`), named as
    the API names it; null is refused."""
    if value is None:
        raise BadUserInput(f"'{field.api}' cannot be null.", field=field.api)
    if field.limit is None:
        raise ValueError(f"the text field {field.attr!r} has no limit")
    return check_text(value, field.api, field.limit)


def check_object_id(value: str, field: str) -> str:
    """A strategy or user id: 24 hexadecimal digits, in the lower case they are stored in."""
    if not _OBJECT_ID.fullmatch(value):
        raise BadUserInput(f"'{field}' is not a valid id.", field=field)
    return value.lower()


def in_utc(moment: datetime) -> datetime | None:
    """`moment` in UTC; None when it has no offset or falls outside years 1 to 9999 in UTC."""
    if moment.utcoffset() is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


class Refusals:
    """The refusals of several input checks, collected so that one answer names every bad
    field, not just the first: run each check through `check`, then `raise_any`."""

    def __init__(self) -> None:
        self.errors: list[BadUserInput] = []

    def check(self, check: Callable[[], T], *, refused: T) -> T:
        """`check()`'s value; `refused` when it refused (its refusal is kept, and
        `raise_any` raises it before the value can be used)."""
        try:
            return check()
        except InvalidFields as exc:
            self.errors.extend(exc.errors)
        except BadUserInput as exc:
            self.errors.append(exc)
        return refused

    def refuse(self, error: BadUserInput) -> None:
        """Keep a refusal found without a check function."""
        self.errors.append(error)

    def raise_any(self) -> None:
        """Raise what was refused: the one error, or every one together (InvalidFields)."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise InvalidFields(self.errors)
