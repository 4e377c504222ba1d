"""What Tradebaas values become (gateway/imports/tradebaas.py), without a database: money
exact through its shortest decimal, times aware UTC, statuses, the mapping file."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.imports.common import Refusal
from gateway.imports.tradebaas import (
    ImportReport,
    PlannedTrade,
    TradebaasInputError,
    TradePlanner,
    environment_of,
    moment,
    money,
    plan_strategies,
    read_mapping,
    strategy_id_of,
    trade_status,
)


def test_a_float_amount_is_read_as_its_shortest_decimal_not_its_binary_expansion():
    assert money(0.1) == (Decimal("0.1"), False)
    assert money(123.45678901) == (Decimal("123.45678901"), False)
    assert money(7) == (Decimal(7), False)
    assert money(" 12.50 ") == (Decimal("12.50"), False)
    assert money(None) == (None, False)
    assert money("") == (None, False)


def test_an_amount_with_more_than_eight_places_is_rounded_half_even_and_said_so():
    assert money(0.1 + 0.2) == (Decimal("0.30000000"), True)
    assert money("0.000000005") == (Decimal("0E-8"), True)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "abc", True, b"1", 1e21])
def test_what_is_no_finite_number_is_refused(value):
    with pytest.raises((ValueError, TypeError)):
        money(value)


def test_times_in_milliseconds_seconds_or_iso_text_become_aware_utc():
    at = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
    millis = int(at.timestamp() * 1000)
    assert moment(millis) == at
    assert moment(str(millis)) == at
    assert moment(int(at.timestamp())) == at
    assert moment("2025-06-01T12:30:00") == at
    assert moment("2025-06-01T14:30:00+02:00") == at
    assert moment(None) is None
    with pytest.raises(ValueError, match="never"):
        moment("never")


def test_statuses_and_environments_are_ours():
    assert trade_status("CLOSED", exited=False) == "closed"
    assert trade_status("tp_hit", exited=True) == "closed"
    assert trade_status("pending", exited=False) == "open"
    assert trade_status("cancelled", exited=True) == "closed"  # unknown: by its exit
    assert trade_status("cancelled", exited=False) == "open"
    assert environment_of("LIVE") == "live"
    assert environment_of("sandbox") == "testnet"


def test_a_strategy_id_is_the_same_on_every_run_and_sorts_by_creation():
    made = datetime(2025, 6, 1, tzinfo=UTC)
    uuid = "2f1e0a4c-8d1b-4b6e-9f3a-1c2d3e4f5a6b"
    assert strategy_id_of(uuid, made) == strategy_id_of(uuid, made)
    assert strategy_id_of(uuid, made) != strategy_id_of(uuid[::-1], made)
    assert strategy_id_of(uuid, made) < strategy_id_of(uuid, made.replace(year=2026))


def test_a_mapping_file_is_read_and_its_mistakes_named_by_line(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("tradebaas_user_id,email\nabc, Dana@Example.com \n\n")
    assert read_mapping(good) == {"abc": ("email", "dana@example.com")}
    bad = tmp_path / "bad.csv"
    bad.write_text("tradebaas_user_id,email\nabc,dana@example.com\nabc,other@example.com\n")
    with pytest.raises(TradebaasInputError, match="line 3"):
        read_mapping(bad)
    with pytest.raises(TradebaasInputError, match="cannot read"):
        read_mapping(tmp_path / "missing.csv")


def _row(user: str, name: str, instrument: str, environment: str = "live") -> dict[str, object]:
    return {
        "id": f"{user}-{name}-{instrument}-{environment}",
        "user_id": user,
        "strategy_name": name,
        "instrument": instrument,
        "environment": environment,
        "status": "active",
        "created_at": datetime(2025, 6, 1, tzinfo=UTC),
    }


def _trade(user: str | None, name: str, instrument: str) -> dict[str, object]:
    return {
        "id": "t1",
        "user_id": user,
        "strategyName": name,
        "instrument": instrument,
        "side": "BUY",
        "amount": 1.5,
        "entryPrice": 100.25,
        "entryTime": 1_750_000_000_000,
        "status": "closed",
    }


def test_a_trade_takes_its_strategy_and_user_only_when_one_strategy_fits():
    rows = [
        _row("alice", "Razor", "BTC"),
        _row("bob", "Thor", "ETH"),
        _row("carol", "Thor", "ETH"),  # carol has no gateway account
        _row("alice", "Scalper", "SOL", "live"),
        _row("alice", "Scalper", "SOL", "testnet"),
    ]
    users = {"alice": "a" * 24, "bob": "b" * 24}
    report = ImportReport(dry_run=True)
    planned = plan_strategies(rows, users, report)
    planner = TradePlanner(
        users=users, strategies=planned, quantity="amount", duplicates={}, legacy_rows=rows
    )

    razor = planner.plan(_trade(None, "Razor", "BTC"), None)
    thor = planner.plan(_trade(None, "Thor", "ETH"), None)  # bob's or carol's?
    scalper = planner.plan(_trade("alice", "Scalper", "SOL"), None)  # live or testnet?
    retired = planner.plan(_trade("alice", "Retired", "XRP"), None)
    carols = planner.plan(_trade("carol", "Thor", "ETH"), None)

    assert isinstance(razor, PlannedTrade)
    assert razor.user_id == "a" * 24
    assert razor.fields["quantity"] == Decimal("1.5")
    assert razor.fields["strategy_id"] == next(s.id for s in planned if s.name == "Razor")
    assert isinstance(thor, Refusal)
    assert "several strategies" in thor.reason
    assert isinstance(scalper, Refusal)
    assert "2 strategies" in scalper.reason
    assert isinstance(retired, PlannedTrade)
    assert retired.orphan
    assert isinstance(carols, Refusal)
    assert "not mapped" in carols.reason
    assert [r.user_id for r in report.refused_strategies] == ["carol"]
    names = sorted(s.name for s in planned if s.user_id == "a" * 24)
    assert names == ["Razor", "Scalper (SOL, live)", "Scalper (SOL, testnet)"]
