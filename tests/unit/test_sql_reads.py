"""The raw SQL reads without a database: only `RawConnection` touches the driver (so no read
escapes the statement hook the round trips are counted at), and a row becomes the record
SQLAlchemy's column types would have made of it."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Enum, Float, MetaData, Table, select
from sqlalchemy.dialects.postgresql import asyncpg

from datasources import analytics as analytics_source
from datasources import trades as trades_source
from datasources._fields import read_fields
from datasources._sql import Money, UtcDateTime, canonical
from datasources._sql_reads import Read, as_tuple
from datasources.trades import FIELDS, TradeRecord
from tests.unit.test_layers import our_modules

# The one module that may reach the driver under SQLAlchemy's pool.
RAW_MODULE = "datasources._sql_reads"
DRIVER_ATTRIBUTES = {
    "driver_connection",
    "dbapi_connection",
    "raw_connection",
    "get_raw_connection",
}
DIALECT = asyncpg.dialect()


def driver_uses(module: str, source: str) -> list[str]:
    """Where `module` imports the driver or takes a pooled connection's driver, if not allowed."""
    if module == RAW_MODULE:
        return []
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Attribute) and node.attr in DRIVER_ATTRIBUTES:
            found.append(f"{module}:{node.lineno}: .{node.attr}")
            continue
        else:
            continue
        found += [f"{module}:{node.lineno}: imports {n}" for n in names if n.startswith("asyncpg")]
    return found


def test_only_the_raw_connection_reaches_the_driver() -> None:
    uses = [
        use
        for module, path in our_modules().items()
        for use in driver_uses(module, path.read_text())
    ]
    assert uses == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncpg",
        "from asyncpg import Record",
        "conn = await engine.raw_connection()",
        "driver = pooled.driver_connection",
        "raw = await conn.get_raw_connection()",
    ],
)
def test_the_check_catches_a_read_around_the_hook(source: str) -> None:
    assert driver_uses("datasources.trades", source) != []
    assert driver_uses(RAW_MODULE, source) == []


def as_stored(value: Any, type_: Any) -> Any:
    """What SQLAlchemy's result processing makes of a value asyncpg returned (the old path)."""
    if isinstance(type_, Money | UtcDateTime):
        return type_.process_result_value(value, DIALECT)
    return value


amounts = st.decimals(
    min_value=Decimal(-(10**19)), max_value=Decimal(10**19), places=8, allow_nan=False
)
# Naive bounds, as hypothesis wants them; the values it makes are aware (UTC).
times = st.datetimes(
    min_value=datetime(1970, 1, 2),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(
    quantity=amounts,
    prices=st.tuples(amounts, st.none() | amounts, st.none() | amounts, amounts),
    entry=times,
    exit_offset=st.none() | st.integers(min_value=0, max_value=10**6),
    zone=st.integers(min_value=-12, max_value=12),
    side=st.sampled_from(["buy", "sell"]),
    environment=st.sampled_from([None, "", "live", "testnet"]),
)
def test_a_trade_row_becomes_the_record_sqlalchemy_made_of_it(
    quantity, prices, entry, exit_offset, zone, side, environment
) -> None:
    entry_price, exit_price, pnl, fees = prices
    # asyncpg returns numeric(28, 8) with its 8 places, timestamptz as an aware datetime.
    stored_entry = entry.astimezone(timezone(timedelta(hours=zone)))
    row = (
        42, "u" * 24, "s" * 24, "name", "BTCUSDT", side,
        quantity.quantize(Decimal("1E-8")), entry_price, exit_price, stored_entry,
        None if exit_offset is None else stored_entry + timedelta(seconds=exit_offset),
        pnl, fees, "closed", None, environment,
    )  # fmt: skip
    # Uncached: the source's own reads keep the form their engine's dialect compiles.
    read = trades_source._by_id_read.__wrapped__("postgresql", "one", "one")
    columns = [column.name for column in read.query.selected_columns]
    types = [column.type for column in read.query.selected_columns]
    mapping = {
        name: as_stored(value, t) for name, value, t in zip(columns, row, types, strict=True)
    }
    expected = TradeRecord(id=str(mapping["id"]), **read_fields(FIELDS, mapping))

    made = read.prepared(DIALECT).make(row)

    assert made == expected
    assert repr(made) == repr(expected)  # the same Decimal spellings and time zones


def test_an_event_without_data_reads_as_an_empty_mapping() -> None:
    read = analytics_source._recent_read.__wrapped__("postgresql", "one")  # uncached
    at = datetime(2026, 3, 1, tzinfo=UTC)

    event = read.prepared(DIALECT).make((7, "u" * 24, "SIGNED_IN", None, at, None))

    assert (event.id, event.data, event.at) == ("7", {}, at)


def test_a_read_names_its_record_fields_in_order() -> None:
    table = trades_source.trades
    with pytest.raises(ValueError, match="TradeRecord has fields"):
        Read(select(table.c.user_id, table.c.id), TradeRecord)
    with pytest.raises(ValueError, match="loads name no selected column"):
        Read(select(table.c.id), as_tuple, {"nope": str})


@pytest.mark.parametrize("type_", [Float(), Enum("a", "b", name="ab")])
def test_a_column_type_without_a_raw_reading_is_refused_when_compiled(type_: Any) -> None:
    table = Table("things", MetaData(), Column("x", type_))
    read = Read(select(table.c.x), as_tuple)

    with pytest.raises(TypeError, match="no raw PostgreSQL reading"):
        read.prepared(DIALECT)


def canonical_as_first_written(amount: Decimal) -> Decimal:
    """`canonical` as it read before it was made faster: the definition it must keep."""
    amount = amount.quantize(Decimal("1E-8")).normalize()
    return amount.quantize(Decimal(1)) if amount.as_tuple().exponent > 0 else amount  # type: ignore[operator]


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: abs(d) < Decimal("1E19")
    )
    | st.builds(Decimal, st.integers(min_value=-(10**27), max_value=10**27)).map(
        lambda d: d.scaleb(-8)
    )
    | st.sampled_from([Decimal("-0"), Decimal("0E-8"), Decimal("1E+2"), Decimal("100.00000000")])
)
def test_canonical_keeps_its_first_definition(amount: Decimal) -> None:
    assert repr(canonical(amount)) == repr(canonical_as_first_written(amount))


def test_canonical_refuses_nan_as_it_always_did() -> None:
    with pytest.raises(TypeError):
        canonical_as_first_written(Decimal("NaN"))
    with pytest.raises(TypeError):
        canonical(Decimal("NaN"))
