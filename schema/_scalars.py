"""The custom scalars, each with the specification it follows (`@specifiedBy`).

    Date      RFC 3339 full-date           "2026-02-01"
    DateTime  RFC 3339 date-time, in UTC   "2026-02-01T09:30:00+00:00"
    Decimal   a decimal numeric string     "1234.5"
    JSON      ECMA-404 (Strawberry's own scalar, which already says so)

`SCALAR_MAP` replaces Strawberry's Date, DateTime and Decimal (which name no
specification, and accept more than they say) for every field of the schema.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import strawberry

from gateway.core.errors import BadUserInput

RFC3339_DATE = "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6"
RFC3339_DATE_TIME = "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6"
# The General Decimal Arithmetic Specification's numeric string, which Python's Decimal
# reads; the gateway writes it without an exponent and accepts finite values only.
DECIMAL_STRING = "https://speleotrove.com/decimal/daconvs.html#refnumsyn"

_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# RFC 3339's date-time; the offset may be left out here only so that the field that takes
# the time can refuse it by name ("must include a UTC offset").
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?")


def _parse_date(value: Any) -> date:
    if not isinstance(value, str) or not _FULL_DATE.fullmatch(value):
        raise BadUserInput(
            f'A Date must be an RFC 3339 full-date, such as "2026-02-01": {value!r}.'
        )
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadUserInput(f"{value!r} is not a calendar date.") from exc


def _serialize_date(value: date) -> str:
    return value.isoformat()


def _parse_date_time(value: Any) -> datetime:
    if not isinstance(value, str) or not _DATE_TIME.fullmatch(value):
        raise BadUserInput(
            f'A DateTime must be an RFC 3339 date-time, such as "2026-02-01T09:30:00Z": {value!r}.'
        )
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise BadUserInput(f"{value!r} is not a valid date and time.") from exc


def _serialize_date_time(value: datetime) -> str:
    # Every source hands out aware UTC times; a naive one is a bug, not a guess to make.
    if value.tzinfo is None:
        raise ValueError("a DateTime without a time zone reached the schema")
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).isoformat()


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


DATE_SCALAR = strawberry.scalar(
    name="Date",
    description='A calendar day, an RFC 3339 full-date ("2026-02-01"); days are UTC days.',
    specified_by_url=RFC3339_DATE,
    serialize=_serialize_date,
    parse_value=_parse_date,
)

DATETIME_SCALAR = strawberry.scalar(
    name="DateTime",
    description="An instant, an RFC 3339 date-time. Answers are in UTC "
    '("2026-02-01T09:30:00+00:00"); a time sent must carry its offset ("Z" or "+01:00").',
    specified_by_url=RFC3339_DATE_TIME,
    serialize=_serialize_date_time,
    parse_value=_parse_date_time,
)

DECIMAL_SCALAR = strawberry.scalar(
    name="Decimal",
    description='An exact decimal number, serialized as a string ("1234.5", no exponent); '
    'sent as a string (or an Int), never a Float: "12.50".',
    specified_by_url=DECIMAL_STRING,
    serialize=_serialize_decimal,
    parse_value=_parse_decimal,
)

SCALAR_MAP: dict[object, Any] = {
    date: DATE_SCALAR,
    datetime: DATETIME_SCALAR,
    Decimal: DECIMAL_SCALAR,
}
