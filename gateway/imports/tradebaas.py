"""`gateway import tradebaas`: Tradebaas' strategies (PostgreSQL `user_strategies`) and trade
history (the SQLite `trades` table) moved into the strategies and trades sources.

Tradebaas user ids (uuids) are mapped to users of the gateway, which must exist already:
through a mapping file (CSV `tradebaas_user_id,email` or `tradebaas_user_id,gateway_user_id`)
or, without one, through the `users` table of the Tradebaas PostgreSQL, joined on email.
What belongs to a user who cannot be mapped is reported, not imported.

Passes:

1. strategies: every `user_strategies` row planned at once (names are made unique per
   gateway user, so all of a user's rows are needed), then written a batch at a time, each
   document only where absent, under an id derived from the Tradebaas uuid (the same on
   every run).
2. trades: the SQLite rows in `id` order, a batch at a time; each batch's trades and their
   legacy ids (`imported_trades`, datasources/imported.py) in one transaction of the trades
   database, so a trade is never written twice; a checkpoint (the last legacy id of the last
   batch) lets a killed run continue after it.
3. verify: the legacy side planned again and compared with what is stored, per user:
   strategies by id under their owner, trades by count and by the exact sums of pnl and fees.
4. analytics: the daily metrics of every user with imported trades recomputed.

Money is read as the shortest decimal that gives the stored value back (a REAL column holds
a binary float: 0.1 is read as 0.1, not 0.1000000000000000055...), then held as Decimal at
the trades source's 8 places; times become aware UTC. Reports name users and trades by id:
never the `--strategies` URI.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import aiosqlite
from bson import ObjectId
from sqlalchemy import text
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from datasources import Sources, imported, now
from datasources import strategies as strategies_source
from datasources.analytics import refresh_daily_metrics
from gateway.imports.algo_runner import normalize_status, unique_names
from gateway.imports.common import Progress, Refusal, Tally, add_tally, listed

PLATFORM = "tradebaas"
DEFAULT_BROKER = "deribit"
BATCH_SIZE = 500
LEGACY_TIMEOUT_SECONDS = 30
MONEY_PLACES = Decimal(1).scaleb(-8)  # the trades source keeps 8 places
MONEY_LIMIT = Decimal(10) ** 20  # numeric(28, 8)
MILLISECONDS_FROM = 10**11  # a Unix time this large is in milliseconds (as Tradebaas writes)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The legacy `trades` columns read: one of each tuple is required, the others optional.
REQUIRED_TRADE_COLUMNS = (
    ("id",),
    ("strategyName",),
    ("instrument",),
    ("side",),
    ("entryPrice",),
    ("entryTime",),
    ("quantity", "amount"),
)
OPTIONAL_TRADE_COLUMNS = (
    "user_id",
    "exitPrice",
    "exitTime",
    "pnl",
    "fees",
    "status",
    "environment",
    "entryOrderId",
)
SIDES = {
    **dict.fromkeys(("buy", "long", "b"), "buy"),
    **dict.fromkeys(("sell", "short", "s"), "sell"),
}
TRADE_STATUSES = {
    **dict.fromkeys(
        (
            "closed",
            "close",
            "filled",
            "done",
            "exited",
            "settled",
            "completed",
            "finished",
            "sl_hit",
            "tp_hit",
        ),
        "closed",
    ),
    **dict.fromkeys(
        ("open", "opened", "active", "pending", "partial", "partially_filled", "new"), "open"
    ),
}


class TradebaasInputError(ValueError):
    """Raised before anything is written when the input cannot be imported: a mapping file,
    a legacy table or column that is missing or malformed."""


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What `gateway import tradebaas` was asked to do."""

    strategies_uri: str
    trades_path: Path
    users_path: Path | None = None
    dry_run: bool = False
    batch_size: int = BATCH_SIZE


@dataclass(frozen=True, slots=True)
class PlannedStrategy:
    """One `user_strategies` row as it is to be stored."""

    legacy_id: str
    legacy_user: str
    id: str
    user_id: str
    name: str
    original_name: str
    instrument: str
    environment: str
    broker: str
    document: Mapping[str, Any]
    original_status: str | None


@dataclass(frozen=True, slots=True)
class PlannedTrade:
    """One legacy trade as it is to be stored (`fields` are the trades source's)."""

    legacy_id: str
    user_id: str
    fields: Mapping[str, Any]
    orphan: bool  # of no strategy Tradebaas still has: as the trades of a deleted strategy


@dataclass(slots=True)
class ImportReport:
    """What a run did (or, with `dry_run`, would do), and what the verification found."""

    dry_run: bool
    mapped_users: int = 0
    legacy_strategies: int = 0
    legacy_trades: int = 0
    resumed_after: str | None = None
    strategies_written: int = 0
    strategies_present: int = 0
    trades_written: int = 0
    trades_present: int = 0
    orphan_trades: int = 0
    unmapped_users: list[str] = field(default_factory=list)
    refused_strategies: list[Refusal] = field(default_factory=list)
    refused_trades: list[Refusal] = field(default_factory=list)
    duplicates: list[Refusal] = field(default_factory=list)
    renamed: list[tuple[str, str, str]] = field(default_factory=list)
    statuses: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    rounded: int = 0
    verified: bool = False
    tallies: dict[str, Tally] = field(default_factory=dict)
    sums: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    failed: list[Refusal] = field(default_factory=list)
    analytics_users: int = 0

    @property
    def ok(self) -> bool:
        """Every legacy row imported (duplicates aside), and (unless a dry run) verified."""
        complete = not (self.refused_strategies or self.refused_trades or self.failed)
        return complete and (self.dry_run or self.verified)


# Converting legacy values: pure functions.


def money(value: Any) -> tuple[Decimal | None, bool]:
    """A legacy amount as Decimal at 8 places (None when absent), and whether it had more
    places than that; a ValueError when it is no finite number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, False
    if isinstance(value, bool):
        raise TypeError("a boolean")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(repr(value))
        amount = Decimal(repr(value))  # the shortest decimal that is this float, not its expansion
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(repr(value)) from exc
        if not amount.is_finite():
            raise ValueError(repr(value))
    else:
        raise TypeError(type(value).__name__)
    if abs(amount) >= MONEY_LIMIT:
        raise ValueError("too large")
    kept = amount.quantize(MONEY_PLACES, rounding=ROUND_HALF_EVEN)
    return kept, kept != amount


def moment(value: Any) -> datetime | None:
    """A legacy time as aware UTC (None when absent): a Unix time in milliseconds (as
    Tradebaas writes them; one below 10^11 is in seconds), or ISO 8601 text (UTC when it
    names no zone); a ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool):
        raise TypeError("a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(repr(value))
        millis = value if abs(value) >= MILLISECONDS_FROM else value * 1000
        try:
            return _EPOCH + timedelta(milliseconds=millis)
        except OverflowError as exc:
            raise ValueError(repr(value)) from exc
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(repr(value)) from exc
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise ValueError(type(value).__name__)


def _word(value: Any) -> str:
    return str(value).strip().lower().replace("-", "_").replace(" ", "_") if value else ""


def trade_status(value: Any, *, exited: bool) -> str:
    """A legacy trade status as ours; an unknown one is closed when the trade has an exit
    time and price, else open."""
    return TRADE_STATUSES.get(_word(value)) or ("closed" if exited else "open")


def environment_of(value: Any) -> str:
    """`live` stays live; anything else (`testnet`, `sandbox`, `paper`, none) is testnet."""
    return "live" if _word(value) == "live" else "testnet"


def strategy_id_of(legacy_id: str, created_at: datetime | None) -> str:
    """The id of the strategy a `user_strategies` row becomes: its creation time first (so
    strategies sort as they were made), then a digest of its uuid; the same on every run."""
    digest = hashlib.sha256(f"{PLATFORM}:strategy:{legacy_id}".encode()).digest()
    seconds = int(created_at.timestamp()) if created_at is not None else 0
    return str(ObjectId(max(0, min(seconds, 2**32 - 1)).to_bytes(4, "big") + digest[:8]))


def orphan_strategy_id(user_id: str, name: str, instrument: str) -> str:
    """The strategy id of trades whose strategy Tradebaas no longer has: derived from their
    user, strategy name and instrument (no strategy document has it)."""
    digest = hashlib.sha256(f"{PLATFORM}:orphan:{user_id}:{name}:{instrument}".encode()).digest()
    return str(ObjectId(ObjectId(user_id).binary[:4] + digest[:8]))


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


# The user mapping.


def read_mapping(path: Path) -> dict[str, tuple[str, str]]:
    """The mapping file: per Tradebaas user id, ("email", address) or ("id", gateway id).

    A TradebaasInputError names the first line that is wrong: an unknown header, a row
    without two fields, a blank Tradebaas id, a malformed email or gateway id, or a
    Tradebaas id given twice.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TradebaasInputError(f"cannot read the mapping file {path}: {exc.strerror}") from exc
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise TradebaasInputError(f"{path}: empty; its header is tradebaas_user_id,email")
    header = [cell.strip().lower() for cell in rows[0]]
    kinds = {"email": "email", "gateway_user_id": "id"}
    if len(header) != 2 or header[0] != "tradebaas_user_id" or header[1] not in kinds:
        raise TradebaasInputError(
            f"{path}, line 1: the header must be tradebaas_user_id,email or "
            "tradebaas_user_id,gateway_user_id"
        )
    kind = kinds[header[1]]
    mapping: dict[str, tuple[str, str]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise TradebaasInputError(f"{path}, line {number}: expected 2 fields, not {len(row)}")
        legacy, target = row[0].strip(), row[1].strip()
        if not legacy:
            raise TradebaasInputError(f"{path}, line {number}: no Tradebaas user id")
        if kind == "email" and ("@" not in target or " " in target):
            raise TradebaasInputError(f"{path}, line {number}: not an email address")
        if kind == "id" and not ObjectId.is_valid(target):
            raise TradebaasInputError(f"{path}, line {number}: not a gateway user id")
        if legacy in mapping:
            raise TradebaasInputError(f"{path}, line {number}: user {legacy} is mapped twice")
        mapping[legacy] = (kind, target.lower() if kind == "email" else target)
    return mapping


# Reading the legacy side.


def _pg_url(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "postgres://", "postgresql+asyncpg://", 1
    )


async def _has_table(conn: AsyncConnection, name: str) -> bool:
    found = await conn.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name})
    return bool(found.scalar())


async def read_legacy_strategies(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every `user_strategies` row, by uuid; a TradebaasInputError when there is no such
    table or it lacks a column of the DDL's identification."""
    if not await _has_table(conn, "user_strategies"):
        raise TradebaasInputError("the --strategies database has no user_strategies table")
    result = await conn.execute(text("SELECT * FROM user_strategies ORDER BY id"))
    rows = [dict(row) for row in result.mappings()]
    needed = {"id", "user_id", "strategy_name", "instrument"}
    if rows and (missing := needed - set(rows[0])):
        raise TradebaasInputError(f"user_strategies lacks the columns {sorted(missing)}")
    for row in rows:
        row["id"], row["user_id"] = str(row["id"]), _text(row["user_id"]) or None
        if isinstance(row.get("config"), str):
            # Left as text when it is no JSON: refused when planned, as no object.
            with contextlib.suppress(json.JSONDecodeError):
                row["config"] = json.loads(row["config"])
    return rows


async def read_legacy_emails(conn: AsyncConnection) -> dict[str, str] | None:
    """Per Tradebaas user id, its email (lower-case); None when there is no users table."""
    if not await _has_table(conn, "users"):
        return None
    result = await conn.execute(text("SELECT id::text AS id, email FROM users"))
    return {row.id: _text(row.email).lower() for row in result if _text(row.email)}


async def read_strategies_database(
    uri: str, *, with_emails: bool
) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    """The `user_strategies` rows and (when asked) the emails of Tradebaas' users."""
    try:
        engine = create_async_engine(
            _pg_url(uri), connect_args={"timeout": LEGACY_TIMEOUT_SECONDS}, pool_size=1
        )
    except ArgumentError as exc:
        raise TradebaasInputError("--strategies is not a PostgreSQL URI") from exc
    try:
        async with engine.connect() as conn:
            rows = await read_legacy_strategies(conn)
            emails = await read_legacy_emails(conn) if with_emails else None
    except (OSError, DBAPIError) as exc:
        # The URI may hold a password: say what failed, not where.
        reason = type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__
        raise TradebaasInputError(f"cannot read the --strategies database ({reason})") from exc
    finally:
        await engine.dispose()
    return rows, emails


@dataclass(frozen=True, slots=True)
class LegacyTrades:
    """The SQLite trades file, opened read-only, and which of the columns read it has."""

    conn: aiosqlite.Connection
    columns: tuple[str, ...]
    quantity: str

    async def count(self) -> int:
        """How many trades the file holds (with an id or not)."""
        async with self.conn.execute("SELECT count(*) FROM trades") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def without_id(self) -> int:
        """How many trades have no id (they cannot be imported: nothing would name them)."""
        async with self.conn.execute("SELECT count(*) FROM trades WHERE id IS NULL") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def batches(self, *, after: Any, size: int) -> AsyncIterator[list[dict[str, Any]]]:
        """The trades with an id above `after` (None: every one), in id order."""
        select = ", ".join(f'"{name}"' for name in self.columns)
        last = after
        while True:
            where, params = ("id IS NOT NULL", [size]) if last is None else ("id > ?", [last, size])
            query = f"SELECT {select} FROM trades WHERE {where} ORDER BY id LIMIT ?"  # noqa: S608 - known names
            async with self.conn.execute(query, params) as cursor:
                batch = [
                    dict(zip(self.columns, row, strict=True)) for row in await cursor.fetchall()
                ]
            if not batch:
                return
            yield batch
            last = batch[-1]["id"]

    async def duplicates(self) -> dict[str, str]:
        """Per trade recorded twice (an `entryOrderId` shared with another), the id of the
        one kept: the first with an exit time, else the first."""
        if "entryOrderId" not in self.columns:
            return {}
        query = (
            'SELECT id, "entryOrderId", "exitTime" FROM trades WHERE id IS NOT NULL AND '
            '"entryOrderId" IN (SELECT "entryOrderId" FROM trades WHERE "entryOrderId" IS NOT '
            'NULL AND trim("entryOrderId") != \'\' GROUP BY "entryOrderId" HAVING count(*) > 1)'
            " ORDER BY id"
        )
        groups: dict[str, list[tuple[str, bool]]] = {}
        async with self.conn.execute(query) as cursor:
            for trade_id, order_id, exit_time in await cursor.fetchall():
                groups.setdefault(str(order_id).strip(), []).append(
                    (str(trade_id), exit_time is not None)
                )
        losers: dict[str, str] = {}
        for group in groups.values():
            kept = next((trade_id for trade_id, exited in group if exited), group[0][0])
            losers.update({trade_id: kept for trade_id, _ in group if trade_id != kept})
        return losers


async def open_legacy_trades(path: Path) -> LegacyTrades:
    """The trades file, read-only; a TradebaasInputError when it is missing, is no SQLite
    database, or lacks a `trades` table or a required column."""
    if not path.is_file():  # noqa: ASYNC240 - one stat of a local file, before any work
        raise TradebaasInputError(f"no trades file at {path}")
    try:
        location = path.resolve()  # noqa: ASYNC240 - as above
        conn = await aiosqlite.connect(f"file:{location}?mode=ro", uri=True)
        async with conn.execute("PRAGMA table_info(trades)") as cursor:
            present = {row[1] for row in await cursor.fetchall()}
    except aiosqlite.Error as exc:
        raise TradebaasInputError(f"{path} is not a readable SQLite database") from exc
    if not present:
        await conn.close()
        raise TradebaasInputError(f"{path} has no trades table")
    missing = [" or ".join(names) for names in REQUIRED_TRADE_COLUMNS if not set(names) & present]
    if missing:
        await conn.close()
        raise TradebaasInputError(f"the trades table of {path} lacks {', '.join(missing)}")
    quantity = "quantity" if "quantity" in present else "amount"
    columns = tuple(
        name
        for names in (*REQUIRED_TRADE_COLUMNS, OPTIONAL_TRADE_COLUMNS)
        for name in names
        if name in present
    )
    return LegacyTrades(conn, columns, quantity)


# Planning: legacy rows to what is stored.


def plan_strategies(
    rows: Sequence[Mapping[str, Any]], users: Mapping[str, str], report: ImportReport
) -> list[PlannedStrategy]:
    """Every row of a mapped user that can be stored, named uniquely per gateway user; the
    others are reported."""
    by_user: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        legacy_user = row.get("user_id")
        gateway_user = users.get(legacy_user) if legacy_user else None
        reason = None
        if gateway_user is None:
            reason = f"its user {legacy_user} is not mapped to a gateway user"
        elif not _text(row.get("strategy_name")):
            reason = "no strategy name"
        elif not _text(row.get("instrument")):
            reason = "no instrument"
        elif len(_text(row.get("instrument"))) > strategies_source.MAX_INSTRUMENT:
            reason = f"an instrument over {strategies_source.MAX_INSTRUMENT} characters"
        elif row.get("config") is not None and not isinstance(row.get("config"), dict):
            reason = "its config is not a JSON object"
        elif len(json.dumps(row.get("config") or {})) > strategies_source.MAX_CONFIG_BYTES:
            reason = "its config is over 64 KiB"
        if reason is not None or gateway_user is None:
            report.refused_strategies.append(
                Refusal(str(legacy_user), f"strategy {row['id']}: {reason}")
            )
            continue
        by_user.setdefault(gateway_user, []).append(row)
    planned = []
    for gateway_user, mine in by_user.items():
        mine.sort(key=lambda row: (moment(row.get("created_at")) or _EPOCH, row["id"]))
        names = [_text(row["strategy_name"]) for row in mine]
        repeated = Counter(names)
        wanted = [
            f"{name} ({_text(row['instrument'])}, {environment_of(row.get('environment'))})"
            if repeated[name] > 1
            else name
            for name, row in zip(names, mine, strict=True)
        ]
        for row, name, original in zip(mine, unique_names(wanted), names, strict=True):
            planned.append(_plan_strategy(row, gateway_user, name, original))
            if name != original:
                report.renamed.append((gateway_user, original, name))
    return planned


def _plan_strategy(
    row: Mapping[str, Any], gateway_user: str, name: str, original: str
) -> PlannedStrategy:
    created = moment(row.get("created_at")) or now()
    strategy_id = strategy_id_of(row["id"], moment(row.get("created_at")))
    instrument = _text(row["instrument"])
    environment = environment_of(row.get("environment"))
    broker = _text(row.get("broker")) or DEFAULT_BROKER
    auto_reconnect = row.get("auto_reconnect")
    document = imported.strategy_document(
        strategy_id=strategy_id,
        user_id=gateway_user,
        created_at=created,
        updated_at=moment(row.get("updated_at")) or created,
        name=name,
        code="",
        status=normalize_status(row.get("status")),
        instrument=instrument,
        broker=broker,
        environment=environment,
        config=row.get("config") or {},
        last_action=_text(row.get("last_action")) or None,
        auto_reconnect=True if auto_reconnect is None else bool(auto_reconnect),
        error_message=_text(row.get("error_message")) or None,
        error_count=int(row.get("error_count") or 0),
        last_heartbeat=moment(row.get("last_heartbeat")),
    )
    status = row.get("status")
    return PlannedStrategy(
        legacy_id=row["id"],
        legacy_user=str(row["user_id"]),
        id=strategy_id,
        user_id=gateway_user,
        name=name,
        original_name=original,
        instrument=instrument,
        environment=environment,
        broker=broker,
        document=document,
        original_status=None if status is None else str(status),
    )


@dataclass(slots=True)
class TradePlanner:
    """Plans legacy trades against the strategies and the user mapping."""

    users: Mapping[str, str]
    strategies: Sequence[PlannedStrategy]
    quantity: str
    duplicates: Mapping[str, str]
    # Every `user_strategies` row, imported or not: who else has a name and instrument.
    legacy_rows: Sequence[Mapping[str, Any]] = ()
    _by_user: dict[tuple[str, str, str], list[PlannedStrategy]] = field(default_factory=dict)
    _by_name: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for strategy in self.strategies:
            key = (strategy.original_name, strategy.instrument)
            self._by_user.setdefault((strategy.legacy_user, *key), []).append(strategy)
        for row in self.legacy_rows:
            key = (_text(row.get("strategy_name")), _text(row.get("instrument")))
            owner = (_text(row.get("user_id")), environment_of(row.get("environment")))
            self._by_name.setdefault(key, []).append(owner)

    def plan(  # noqa: PLR0911 - a return per reason not to import
        self, row: Mapping[str, Any], report: ImportReport | None
    ) -> PlannedTrade | Refusal:
        """What one legacy trade becomes, or why it is not imported (a duplicate's reason
        starts with "a duplicate"). With `report`, its status mapping and roundings count."""
        legacy_id = str(row["id"])
        legacy_user = _text(row.get("user_id")) or None
        refusal = Refusal(legacy_user or "-", "")

        def refuse(reason: str) -> Refusal:
            return Refusal(refusal.user_id, f"trade {legacy_id}: {reason}")

        if legacy_id in self.duplicates:
            return refuse(f"a duplicate of trade {self.duplicates[legacy_id]} (same entryOrderId)")
        name, instrument = _text(row.get("strategyName")), _text(row.get("instrument"))
        if not name or not instrument:
            return refuse("no strategy name or instrument")
        if (
            len(instrument) > strategies_source.MAX_INSTRUMENT
            or len(name) > strategies_source.MAX_NAME
        ):
            return refuse("a strategy name or instrument too long")
        environment = environment_of(row["environment"]) if row.get("environment") else None
        owner, strategy, reason = self._strategy(legacy_user, name, instrument, environment)
        if reason:
            return refuse(reason)
        if legacy_user is None:
            legacy_user, refusal = owner, Refusal(owner, "")
        gateway_user = self.users.get(legacy_user) if legacy_user else None
        if gateway_user is None:
            return refuse(f"its user {legacy_user} is not mapped to a gateway user")
        try:
            fields, rounded = self._fields(row)
        except ValueError as exc:
            return refuse(str(exc))
        side = SIDES.get(_word(row.get("side")))
        if side is None:
            return refuse(f"side {row.get('side')!r} is neither buy nor sell")
        exited = fields["exit_time"] is not None and fields["exit_price"] is not None
        status = trade_status(row.get("status"), exited=exited)
        if report is not None:
            report.rounded += rounded
            original = _text(row.get("status"))
            if original != status:
                report.statuses[("trade", original, status)] += 1
        fields.update(
            user_id=gateway_user,
            strategy_id=strategy.id
            if strategy
            else orphan_strategy_id(gateway_user, name, instrument),
            strategy_name=strategy.name if strategy else name,
            instrument=instrument,
            side=side,
            status=status,
            broker=strategy.broker[:32] if strategy else None,
            environment=strategy.environment if strategy else environment,
        )
        return PlannedTrade(legacy_id, gateway_user, fields, orphan=strategy is None)

    def _strategy(
        self, legacy_user: str | None, name: str, instrument: str, environment: str | None
    ) -> tuple[str, PlannedStrategy | None, str | None]:
        """The trade's Tradebaas user and strategy (None: Tradebaas has it no more, or it was
        not imported), or why they are ambiguous."""
        if legacy_user is None:
            owners = [
                user
                for user, env in self._by_name.get((name, instrument), [])
                if environment in (None, env)
            ]
            if len(owners) != 1:
                many = "several strategies" if owners else "no strategy"
                reason = f"no user id, and {many} of {name} on {instrument} to take it from"
                return "-", None, reason
            legacy_user = owners[0]
        found = self._by_user.get((legacy_user, name, instrument), [])
        if environment is not None:
            found = [s for s in found if s.environment == environment]
        if len(found) == 1:
            return legacy_user, found[0], None
        if found:
            return legacy_user, None, f"its user has {len(found)} strategies {name} on {instrument}"
        return legacy_user, None, None

    def _fields(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        values: dict[str, Any] = {}
        rounded = 0
        for column, attr, required in (
            (self.quantity, "quantity", True),
            ("entryPrice", "entry_price", True),
            ("exitPrice", "exit_price", False),
            ("pnl", "pnl", False),
            ("fees", "fees", False),
        ):
            try:
                amount, cut = money(row.get(column))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{column} is no number ({exc})") from exc
            if amount is None and required:
                raise ValueError(f"no {column}")
            values[attr], rounded = amount, rounded + cut
        values["fees"] = values["fees"] or Decimal(0)
        for column, attr in (("entryTime", "entry_time"), ("exitTime", "exit_time")):
            try:
                values[attr] = moment(row.get(column))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{column} is no time ({exc})") from exc
        if values["entry_time"] is None:
            raise ValueError("no entryTime")
        return values, rounded


# The passes.


class TradebaasImport:
    """One run of the import (see the module docstring)."""

    def __init__(
        self,
        *,
        sources: Sources,
        legacy_strategies: Sequence[Mapping[str, Any]],
        legacy_trades: LegacyTrades,
        users: Mapping[str, str],
        options: ImportOptions,
        on_progress: Progress | None = None,
    ) -> None:
        self.sources = sources
        self.legacy_strategies = legacy_strategies
        self.trades = legacy_trades
        self.users = users
        self.options = options
        self.report = ImportReport(dry_run=options.dry_run, mapped_users=len(users))
        self._on_progress = on_progress
        self._checkpoint = f"{PLATFORM}:{options.trades_path.resolve()}"

    def _progress(self, phase: str, done: int, total: int) -> None:
        if self._on_progress is not None:
            self._on_progress(phase, done, total)

    async def run(self) -> ImportReport:
        """Import the strategies, the trades (resuming from the checkpoint), verify, and
        refresh the analytics of the users with imported trades."""
        report = self.report
        report.legacy_strategies = len(self.legacy_strategies)
        report.legacy_trades = await self.trades.count()
        if not self.options.dry_run:
            await strategies_source.ensure_indexes(db=self.sources.strategies.db)
            async with self.sources.trades.engine.begin() as conn:
                await imported.ensure_imported_trades(conn=conn)
        strategies = plan_strategies(self.legacy_strategies, self.users, report)
        kept = await self._strategies_pass(strategies)
        planner = TradePlanner(
            users=self.users,
            strategies=strategies,
            quantity=self.trades.quantity,
            duplicates=await self.trades.duplicates(),
            legacy_rows=self.legacy_strategies,
        )
        await self._trades_pass(planner)
        if self.options.dry_run:
            return report
        users_with_trades = await self._verify_pass(kept, planner)
        self._progress("analytics", 0, len(users_with_trades))
        await refresh_daily_metrics(
            trades_engine=self.sources.trades.engine,
            analytics_engine=self.sources.analytics.engine,
            user_ids=users_with_trades,
            on_progress=lambda done, total: self._progress("analytics", done, total),
        )
        report.analytics_users = len(users_with_trades)
        return report

    async def _strategies_pass(self, planned: list[PlannedStrategy]) -> list[PlannedStrategy]:
        """Write the planned strategies where absent; the ones stored (or, in a dry run,
        to be) are returned, the ones colliding with another stored strategy reported."""
        report = self.report
        for strategy in planned:
            if strategy.original_status != strategy.document["status"]:
                report.statuses[
                    ("strategy", strategy.original_status or "", strategy.document["status"])
                ] += 1
        kept: list[PlannedStrategy] = []
        size = self.options.batch_size
        self._progress("strategies", 0, len(planned))
        for start in range(0, len(planned), size):
            batch = planned[start : start + size]
            stored = await imported.find_stored_strategies(
                db=self.sources.strategies.db,
                ids=[s.id for s in batch],
                user_ids=sorted({s.user_id for s in batch}),
            )
            owners = {s.id: s.user_id for s in stored}
            names = {(s.user_id, s.name): s.id for s in stored}
            todo = []
            for strategy in batch:
                owner = owners.get(strategy.id, strategy.user_id)
                named = names.get((strategy.user_id, strategy.name), strategy.id)
                if owner != strategy.user_id:
                    reason = f"its id {strategy.id} belongs to user {owner}'s strategy"
                elif named != strategy.id:
                    reason = f"its name {strategy.name!r} is taken by strategy {named}"
                else:
                    kept.append(strategy)
                    if strategy.id in owners:
                        report.strategies_present += 1
                    else:
                        todo.append(dict(strategy.document))
                    continue
                report.refused_strategies.append(
                    Refusal(strategy.legacy_user, f"strategy {strategy.legacy_id}: {reason}")
                )
            if self.options.dry_run:
                report.strategies_written += len(todo)
            else:
                report.strategies_written += await imported.insert_absent(
                    db=self.sources.strategies.db,
                    collection=strategies_source.COLLECTION,
                    documents=todo,
                )
            self._progress("strategies", start + len(batch), len(planned))
        return kept

    async def _trades_pass(self, planner: TradePlanner) -> None:
        report, users_db = self.report, self.sources.users.db
        after: Any = None
        if not self.options.dry_run:
            saved = await imported.read_checkpoint(db=users_db, key=self._checkpoint)
            if saved is not None and saved.get("lastTradeId") is not None:
                after = saved["lastTradeId"]
                report.resumed_after = str(after)
        missing_ids = await self.trades.without_id()
        if missing_ids:
            report.refused_trades.append(Refusal("-", f"{missing_ids} trades have no id"))
        total, done = report.legacy_trades, missing_ids
        async with self.sources.trades.engine.connect() as conn:
            bookkeeping = await imported.has_imported_trades(conn=conn)
        self._progress("trades", done, total)
        async for batch in self.trades.batches(after=after, size=self.options.batch_size):
            planned = self._plan_batch(planner, batch)
            async with self.sources.trades.engine.begin() as conn:
                present = (
                    await imported.find_imported_trades(
                        conn=conn, platform=PLATFORM, legacy_ids=[t.legacy_id for t in planned]
                    )
                    if bookkeeping
                    else {}
                )
                todo = [t for t in planned if t.legacy_id not in present]
                report.trades_present += len(planned) - len(todo)
                report.orphan_trades += sum(t.orphan for t in todo)
                if self.options.dry_run:
                    report.trades_written += len(todo)
                else:
                    report.trades_written += await imported.insert_imported_trades(
                        conn=conn,
                        platform=PLATFORM,
                        rows=[(t.legacy_id, t.fields) for t in todo],
                    )
            done += len(batch)
            if not self.options.dry_run:
                values = {"lastTradeId": batch[-1]["id"]}
                await imported.save_checkpoint(db=users_db, key=self._checkpoint, values=values)
            self._progress("trades", done, max(total, done))
        if not self.options.dry_run:
            await imported.drop_checkpoint(db=users_db, key=self._checkpoint)

    def _plan_batch(
        self, planner: TradePlanner, batch: Sequence[Mapping[str, Any]]
    ) -> list[PlannedTrade]:
        planned = []
        for row in batch:
            plan = planner.plan(row, self.report)
            if isinstance(plan, PlannedTrade):
                planned.append(plan)
            elif plan.reason.split(": ", 1)[1].startswith("a duplicate"):
                self.report.duplicates.append(plan)
            else:
                self.report.refused_trades.append(plan)
        return planned

    async def _verify_pass(
        self, strategies: Sequence[PlannedStrategy], planner: TradePlanner
    ) -> list[str]:
        """Count both sides per user; returns the users with legacy trades to import."""
        report = self.report
        total = len(strategies) + report.legacy_trades
        self._progress("verify", 0, total)
        stored = await imported.find_stored_strategies(
            db=self.sources.strategies.db,
            ids=[s.id for s in strategies],
            user_ids=[],
        )
        owned = {(s.user_id, s.id) for s in stored}
        failures: dict[str, list[str]] = {}
        missing_strategies: Counter[str] = Counter()
        tally = Tally()
        for strategy in strategies:
            found = (strategy.user_id, strategy.id) in owned
            tally = add_tally(tally, 1, int(found))
            if not found:
                missing_strategies[strategy.user_id] += 1
        for user_id, missing in missing_strategies.items():
            failures.setdefault(user_id, []).append(f"{missing} of its strategies are missing")
        report.tallies["strategies"] = tally
        done = len(strategies)
        self._progress("verify", done, total)

        legacy: dict[str, imported.ImportedTotals] = {}
        async for batch in self.trades.batches(after=None, size=self.options.batch_size):
            for row in batch:
                plan = planner.plan(row, None)
                if isinstance(plan, PlannedTrade):
                    before = legacy.get(plan.user_id, imported.ImportedTotals())
                    legacy[plan.user_id] = imported.ImportedTotals(
                        before.trades + 1,
                        before.pnl + (plan.fields["pnl"] or Decimal(0)),
                        before.fees + plan.fields["fees"],
                    )
            done += len(batch)
            self._progress("verify", done, max(total, done))
        async with self.sources.trades.engine.connect() as conn:
            stored_totals = await imported.imported_trade_totals(conn=conn, platform=PLATFORM)
        empty = imported.ImportedTotals()
        trades_tally = Tally()
        pnl = [Decimal(0), Decimal(0)]
        fees = [Decimal(0), Decimal(0)]
        # The users of this run's mapping: an earlier run may have imported others.
        mapped = set(self.users.values())
        for user_id in sorted(set(legacy) | (set(stored_totals) & mapped)):
            mine, theirs = legacy.get(user_id, empty), stored_totals.get(user_id, empty)
            trades_tally = add_tally(trades_tally, mine.trades, theirs.trades)
            pnl = [pnl[0] + mine.pnl, pnl[1] + theirs.pnl]
            fees = [fees[0] + mine.fees, fees[1] + theirs.fees]
            if mine.trades != theirs.trades:
                failures.setdefault(user_id, []).append(
                    f"{theirs.trades} of its {mine.trades} trades are stored"
                )
            if mine.pnl != theirs.pnl or mine.fees != theirs.fees:
                failures.setdefault(user_id, []).append(
                    f"pnl {theirs.pnl} / fees {theirs.fees} stored, "
                    f"{mine.pnl} / {mine.fees} in Tradebaas"
                )
        report.tallies["trades"] = trades_tally
        report.sums = {"pnl": (pnl[0], pnl[1]), "fees": (fees[0], fees[1])}
        report.failed = [Refusal(user, "; ".join(reasons)) for user, reasons in failures.items()]
        report.verified = not report.failed
        return sorted(legacy)


async def map_users(
    *, sources: Sources, mapping: Mapping[str, tuple[str, str]], report: ImportReport
) -> dict[str, str]:
    """Per Tradebaas user id, the id of the gateway user it is mapped to (an email, or an
    id, of a user that exists); the others are listed in `report.unmapped_users`."""
    emails = sorted({target for kind, target in mapping.values() if kind == "email"})
    ids = sorted({target for kind, target in mapping.values() if kind == "id"})
    found: list[imported.StoredUser] = []
    step = 500
    for start in range(0, max(len(emails), len(ids)), step):
        found += await imported.find_stored_users(
            db=sources.users.db, ids=ids[start : start + step], emails=emails[start : start + step]
        )
    by_email = {user.email: user.id for user in found}
    by_id = {user.id for user in found}
    users: dict[str, str] = {}
    for legacy, (kind, target) in sorted(mapping.items()):
        gateway = by_email.get(target) if kind == "email" else (target if target in by_id else None)
        if gateway is None:
            report.unmapped_users.append(legacy)
        else:
            users[legacy] = gateway
    return users


async def import_tradebaas(
    *, sources: Sources, options: ImportOptions, on_progress: Progress | None = None
) -> ImportReport:
    """Run `gateway import tradebaas` (see the module docstring); `on_progress(phase, done,
    total)` follows each pass. Every input is read and checked before anything is written:
    a TradebaasInputError says what is wrong with it."""
    mapping = read_mapping(options.users_path) if options.users_path is not None else None
    legacy_trades = await open_legacy_trades(options.trades_path)
    try:
        rows, emails = await read_strategies_database(
            options.strategies_uri, with_emails=mapping is None
        )
        if mapping is None:
            if emails is None:
                raise TradebaasInputError(
                    "the --strategies database has no users table to join on email: "
                    "give a mapping file with --users"
                )
            mapping = {legacy: ("email", email) for legacy, email in emails.items()}
        report = ImportReport(dry_run=options.dry_run)
        users = await map_users(sources=sources, mapping=mapping, report=report)
        run = TradebaasImport(
            sources=sources,
            legacy_strategies=rows,
            legacy_trades=legacy_trades,
            users=users,
            options=options,
            on_progress=on_progress,
        )
        run.report.unmapped_users = report.unmapped_users
        return await run.run()
    finally:
        await legacy_trades.conn.close()


def report_lines(report: ImportReport) -> list[str]:
    """The report as plain text lines (ids, names, counts and sums)."""
    would = "would write" if report.dry_run else "written"
    lines = [
        f"Tradebaas: {report.legacy_strategies} strategies, {report.legacy_trades} trades; "
        f"{report.mapped_users} users mapped to gateway users"
        + (f" (trades resumed after {report.resumed_after})" if report.resumed_after else ""),
        f"{would}: {report.strategies_written} strategies, {report.trades_written} trades "
        f"({report.orphan_trades} of a strategy Tradebaas no longer has); already present: "
        f"{report.strategies_present} strategies, {report.trades_present} trades",
    ]
    for (kind, old, new), count in sorted(report.statuses.items()):
        lines.append(f"{kind} status {old!r} stored as {new!r}: {count}")
    if report.rounded:
        lines.append(f"{report.rounded} amounts had more than 8 decimal places: rounded half-even")
    lines += listed(
        "Tradebaas users mapped to no gateway user (nothing of them imported)",
        report.unmapped_users,
    )
    lines += listed(
        "strategies renamed (names must be unique per user)",
        [f"user {user}: {old!r} -> {new!r}" for user, old, new in report.renamed],
    )
    lines += listed(
        "strategies not imported",
        [f"Tradebaas user {r.user_id}, {r.reason}" for r in report.refused_strategies],
    )
    lines += listed(
        "trades not imported",
        [f"Tradebaas user {r.user_id}, {r.reason}" for r in report.refused_trades],
    )
    lines += listed("duplicate trades left out", [f"{r.reason}" for r in report.duplicates])
    if report.tallies:
        lines.append("verification (Tradebaas / stored):")
        lines += [f"  {name}: {t.legacy} / {t.stored}" for name, t in report.tallies.items()]
        lines += [f"  {name}: {a} / {b}" for name, (a, b) in report.sums.items()]
    lines += listed(
        "users whose verification failed", [f"user {r.user_id}: {r.reason}" for r in report.failed]
    )
    if report.analytics_users:
        lines.append(f"analytics refreshed for {report.analytics_users} users")
    return lines
