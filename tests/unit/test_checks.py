"""Input checks (resolvers/checks.py, resolvers/strategy_input.py, the trades filter),
without a database: each refusal is BAD_USER_INPUT naming its field, before any source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from datasources.trades import TradeFilter
from gateway.core.errors import BadUserInput, InvalidFields
from resolvers.checks import check_object_id, check_text, in_utc, utf8_length
from resolvers.strategy_input import check_config, check_fields
from resolvers.trades import check_filter

BROKERS = ("binance", "Interactive-Brokers")
VALID = {
    "name": "  BTC breakout ",
    "code": "def on_tick(ctx, tick): ...",
    "instrument": "BTCUSDT",
    "broker": "BINANCE",
    "environment": "LIVE",
    "config": {"risk": {"max": 2}},
    "auto_reconnect": 1,
}


def field_of(call: Any, *args: Any, **kwargs: Any) -> str | None:
    with pytest.raises(BadUserInput) as raised:
        call(*args, **kwargs)
    return raised.value.extensions.get("field")


def test_text_is_trimmed_and_bounded_and_holds_no_control_character() -> None:
    assert check_text("  Dana ", "firstName", 100) == "Dana"
    assert field_of(check_text, "   ", "firstName", 100) == "firstName"
    assert field_of(check_text, "x" * 101, "firstName", 100) == "firstName"
    assert field_of(check_text, "a\x00b", "name", 100) == "name"
    assert field_of(check_text, "a\u0007b", "name", 100) == "name"
    assert field_of(utf8_length, "\ud800", "code") == "code"


def test_ids_are_24_hex_digits_stored_lower_case() -> None:
    assert check_object_id("ABCDEF0123456789abcdef01", "id") == "abcdef0123456789abcdef01"
    assert field_of(check_object_id, "abc", "strategyId") == "strategyId"
    assert field_of(check_object_id, "g" * 24, "strategyId") == "strategyId"


def test_instants_need_an_offset_and_a_year_from_1_to_9999_in_utc() -> None:
    assert in_utc(datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    assert in_utc(datetime(2026, 1, 1)) is None  # noqa: DTZ001 - the point of the test
    assert in_utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) is None


def test_valid_strategy_fields_come_back_normalized() -> None:
    checked = check_fields(VALID, brokers=BROKERS)
    assert checked["name"] == "BTC breakout"
    assert checked["broker"] == "binance"
    assert checked["auto_reconnect"] is True


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("name", "", "name"),
        ("name", "x" * 101, "name"),
        ("instrument", "x" * 65, "instrument"),
        ("code", "x" * (256 * 1024 + 1), "code"),
        ("broker", "nasdaq", "broker"),
        ("environment", "PAPER", "environment"),
        ("config", [], "config"),
        ("auto_reconnect", None, "autoReconnect"),
    ],
)
def test_a_bad_strategy_field_is_named_as_the_api_names_it(
    field: str, value: Any, named: str
) -> None:
    assert field_of(check_fields, {**VALID, field: value}, brokers=BROKERS) == named


def test_every_bad_field_is_named_in_the_tables_order() -> None:
    given = {**VALID, "config": [], "name": "", "broker": "nasdaq"}

    with pytest.raises(InvalidFields) as raised:
        check_fields(given, brokers=BROKERS)

    assert [error.extensions["field"] for error in raised.value.errors] == [
        "name",
        "broker",
        "config",
    ]
    assert all(error.code == "BAD_USER_INPUT" for error in raised.value.errors)


@pytest.mark.parametrize(
    "config",
    [
        {"$where": 1},
        {"a.b": 1},
        {"n": float("inf")},
        {"n": 2**63},
        {"x": object()},
        {"big": "x" * (64 * 1024)},
    ],
)
def test_a_config_the_storage_could_not_hold_is_refused(config: dict[str, Any]) -> None:
    assert field_of(check_config, config) == "config"


def test_a_config_nested_past_the_limit_is_refused_without_exhausting_the_stack() -> None:
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(10_000):
        inner["a"] = {}
        inner = inner["a"]
    assert field_of(check_config, nested) == "config"


def test_a_trades_filter_is_checked_and_its_times_moved_to_utc() -> None:
    start = datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    checked = check_filter(
        TradeFilter(strategy_id="ABCDEF0123456789ABCDEF01", instrument=" NIFTY ", from_time=start)
    )
    assert checked.strategy_id == "abcdef0123456789abcdef01"
    assert checked.instrument == "NIFTY"
    assert checked.from_time == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("trade_filter", "named"),
    [
        (TradeFilter(strategy_id="nope"), "filter.strategyId"),
        (TradeFilter(instrument="a\x00"), "filter.instrument"),
        (TradeFilter(from_time=datetime(2026, 1, 1)), "filter.from"),  # noqa: DTZ001
        (
            TradeFilter(
                from_time=datetime(2026, 1, 2, tzinfo=UTC), to_time=datetime(2026, 1, 1, tzinfo=UTC)
            ),
            "filter.from",
        ),
    ],
)
def test_a_trades_filter_no_trade_could_match_is_bad_user_input(
    trade_filter: TradeFilter, named: str
) -> None:
    assert field_of(check_filter, trade_filter) == named
