"""Cursors and page sizes (resolvers/pagination.py), without a database: a cursor reads back
as what wrote it, and anything no list could have written is BAD_USER_INPUT on its field."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from datasources.trades import TradeCursor
from gateway.core.errors import BadUserInput
from resolvers.pagination import (
    DEFAULT_PAGE_SIZE,
    check_first,
    parse_strategy_cursor,
    parse_trade_cursor,
    parse_user_cursor,
    strategy_cursor,
    trade_cursor,
    user_cursor,
)

OID = "0123456789abcdef01234567"


def raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_each_cursor_reads_back_as_what_wrote_it() -> None:
    moment = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    assert parse_strategy_cursor(strategy_cursor(OID)) == OID
    assert parse_user_cursor(user_cursor(OID)) == OID
    assert parse_trade_cursor(trade_cursor(entry_time=moment, trade_id="42")) == TradeCursor(
        entry_time=moment, id=42
    )
    assert parse_trade_cursor(None) is None


def test_a_trade_cursor_time_in_another_offset_is_read_in_utc() -> None:
    moment = datetime(2026, 11, 28, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    parsed = parse_trade_cursor(raw(f"trade:{moment.isoformat()}|7"))
    assert parsed is not None
    assert parsed.entry_time == datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parsed.entry_time.tzinfo == UTC


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        raw("strategy:" + OID),  # another list's cursor
        raw("trade:"),
        raw("trade:2026-11-28T12:00:00|"),  # no offset, no id
        raw("trade:2026-11-28T12:00:00+00:00|0"),
        raw("trade:2026-11-28T12:00:00+00:00|-1"),
        raw("trade:2026-11-28T12:00:00+00:00|9223372036854775808"),
        raw("trade:2026-11-28T12:00:00+00:00|٣"),  # a digit, but not ASCII
        raw("trade:0001-01-01T00:00:00+01:00|1"),  # before year 1 in UTC
    ],
)
def test_a_trade_cursor_no_list_could_write_is_bad_user_input(cursor: str) -> None:
    with pytest.raises(BadUserInput) as raised:
        parse_trade_cursor(cursor, field="after")
    assert raised.value.extensions == {"field": "after"}


@pytest.mark.parametrize("payload", [OID.upper(), OID[:-1], "z" * 24])
def test_an_id_cursor_holds_a_lower_case_24_digit_hex_id(payload: str) -> None:
    with pytest.raises(BadUserInput):
        parse_strategy_cursor(raw(f"strategy:{payload}"))


def test_page_sizes_default_to_twenty_and_stay_within_zero_to_one_hundred() -> None:
    assert check_first(None) == DEFAULT_PAGE_SIZE == 20
    assert check_first(0) == 0
    assert check_first(100) == 100
    for size in (-1, 101):
        with pytest.raises(BadUserInput) as raised:
            check_first(size, field="days")
        assert raised.value.extensions == {"field": "days"}
