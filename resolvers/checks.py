"""Input checks shared by the resolvers: text that every source can store, ids and instants.

Each refusal is a BAD_USER_INPUT naming the field, raised before any source is asked: a
value no source could store or match is the caller's mistake, not a failing source.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from datasources import StoredField
from gateway.core.errors import BadUserInput

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
