"""Generated data in Tradebaas' shapes: `users` and `user_strategies` in a PostgreSQL database
made from Tradebaas' DDL, and a SQLite `trades` file as its trade recorder writes it (REAL
money, Unix-millisecond times, a `user_id` added by a later migration and null on old rows),
with the oddities a long-lived platform collects: duplicates, odd statuses and sides, a
strategy deleted since, users without an account on the gateway.

The generator keeps the truth beside the rows (`LegacyTrade`): what each trade is meant to
be, in Decimal, so that tests compute the expected figures without the importer's code."""

from __future__ import annotations

import random
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

STRATEGIES_DDL = """
CREATE TABLE users (
  id UUID PRIMARY KEY,
  email VARCHAR(255) UNIQUE NOT NULL,
  password_hash VARCHAR(255) NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);
CREATE TABLE user_strategies (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  strategy_name VARCHAR(100) NOT NULL,
  instrument VARCHAR(100) NOT NULL,
  broker VARCHAR(50) NOT NULL DEFAULT 'deribit',
  environment VARCHAR(20) NOT NULL,
  config JSONB NOT NULL DEFAULT '{}',
  status VARCHAR(50) NOT NULL DEFAULT 'stopped',
  last_action VARCHAR(50),
  auto_reconnect BOOLEAN DEFAULT true,
  connected_at TIMESTAMP WITH TIME ZONE,
  disconnected_at TIMESTAMP WITH TIME ZONE,
  last_heartbeat TIMESTAMP WITH TIME ZONE,
  error_message TEXT,
  error_count INTEGER DEFAULT 0,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  CONSTRAINT unique_user_strategy UNIQUE (user_id, strategy_name, instrument, environment),
  CONSTRAINT check_status CHECK (status IN ('active', 'stopped', 'paused', 'error')),
  CONSTRAINT check_environment CHECK (environment IN ('live', 'testnet'))
);
"""

TRADES_DDL = """
CREATE TABLE trades (
  id TEXT PRIMARY KEY,
  strategyName TEXT NOT NULL,
  instrument TEXT NOT NULL,
  side TEXT NOT NULL,
  entryOrderId TEXT NOT NULL,
  slOrderId TEXT,
  tpOrderId TEXT,
  entryPrice REAL NOT NULL,
  exitPrice REAL,
  amount REAL NOT NULL,
  stopLoss REAL NOT NULL,
  takeProfit REAL NOT NULL,
  entryTime INTEGER NOT NULL,
  exitTime INTEGER,
  exitReason TEXT,
  pnl REAL,
  pnlPercentage REAL,
  status TEXT NOT NULL,
  metadata TEXT
);
ALTER TABLE trades ADD COLUMN fees REAL;
ALTER TABLE trades ADD COLUMN user_id TEXT;
"""

NAMES = ["Razor", "Thor", "Scalper"]
INSTRUMENTS = ["BTC-PERPETUAL", "ETH-PERPETUAL", "BTC_USDC-PERPETUAL"]
CLOSED = ["closed", "closed", "closed", "CLOSED", "Closed", "tp_hit", "sl_hit"]
OPEN = ["open", "OPEN", "pending", "cancelled"]  # none has an exit: all open
SIDES = {"buy": ["buy", "buy", "BUY", "long"], "sell": ["sell", "sell", "Sell", "short"]}
START = datetime(2025, 6, 1, tzinfo=UTC)


@dataclass
class LegacyStrategy:
    """A `user_strategies` row."""

    row: dict[str, Any]


@dataclass
class LegacyTrade:
    """A `trades` row and what it is meant to become: its owner (a Tradebaas user id; None
    when the importer must report it instead), and its money in Decimal."""

    row: dict[str, Any]
    owner: str | None
    pnl: Decimal | None
    fees: Decimal
    counted: bool  # closed with an exit time: it counts in PnL
    duplicate: bool = False


@dataclass
class Tradebaas:
    """One generated platform; `mapped` are the users that have a gateway account."""

    users: list[tuple[str, str]]
    mapped: list[str]
    strategies: list[LegacyStrategy]
    trades: list[LegacyTrade] = field(default_factory=list)

    def imported_trades(self) -> list[LegacyTrade]:
        """The trades the import must write: not duplicates, of a mapped owner."""
        mapped = set(self.mapped)
        return [t for t in self.trades if not t.duplicate and t.owner in mapped]

    def email_of(self, user: str) -> str:
        """The email of a Tradebaas user."""
        return dict(self.users)[user]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _amount(rng: random.Random, low: int, high: int, places: int) -> Decimal:
    return Decimal(rng.randrange(low, high)).scaleb(-places)


def generate(users: int, *, seed: int = 12) -> Tradebaas:
    """A platform of `users` users (every 7th without a gateway account), the same for the
    same seed: their strategies, and trades of those (and of a strategy deleted since)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not crypto
    people = [(_uuid(rng), f"trader{index}@example.com") for index in range(users)]
    mapped = [user for index, (user, _) in enumerate(people) if index % 7 != 3]
    strategies: list[LegacyStrategy] = []
    for index, (user, _) in enumerate(people):
        combos = [(n, i, e) for n in NAMES for i in INSTRUMENTS for e in ("live", "testnet")]
        for name, instrument, environment in rng.sample(combos, rng.choice([0, 1, 2, 2, 3, 4])):
            created = START + timedelta(days=rng.randrange(60), seconds=index)
            strategies.append(
                LegacyStrategy(
                    {
                        "id": _uuid(rng),
                        "user_id": user,
                        "strategy_name": name,
                        "instrument": instrument,
                        "broker": rng.choice(["deribit", "deribit", "binance"]),
                        "environment": environment,
                        "config": {"timeframe": rng.choice(["1m", "5m", "1h"]), "risk": 1.5},
                        "status": rng.choice(["active", "stopped", "paused", "error"]),
                        "last_action": rng.choice([None, "manual_start", "auto_resume"]),
                        "auto_reconnect": rng.choice([True, False, None]),
                        "last_heartbeat": created + timedelta(days=1),
                        "error_message": None,
                        "error_count": rng.choice([0, 0, 3]),
                        "created_at": created,
                        "updated_at": created + timedelta(hours=5),
                    }
                )
            )
    platform = Tradebaas(people, mapped, strategies)
    rows = [s.row for s in strategies]
    per_user: dict[tuple[str, str, str], int] = {}
    per_name: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        key = (row["strategy_name"], row["instrument"])
        per_user[(row["user_id"], *key)] = per_user.get((row["user_id"], *key), 0) + 1
        per_name.setdefault(key, set()).add(row["id"])
    number = 0
    for strategy in [*rows, *_deleted_strategies(rng, people)]:
        for _ in range(rng.randrange(0, 30)):
            number += 1
            user = strategy["user_id"]
            key = (strategy["strategy_name"], strategy["instrument"])
            trade = _trade(rng, number, strategy, user)
            old = rng.random() < 0.15 and strategy.get("id") is not None
            if old:  # recorded before user ids: owned through its strategy, if only one has it
                trade.row["user_id"] = None
                trade.owner = user if len(per_name[key]) == 1 else None
            elif per_user.get((user, *key), 0) > 1:  # live and testnet: which one?
                trade.owner = None
            platform.trades.append(trade)
            if rng.random() < 0.03 and trade.counted:  # recorded twice
                number += 1
                copy = dict(trade.row, id=f"trade_{number:06d}")
                platform.trades.append(
                    LegacyTrade(copy, trade.owner, trade.pnl, trade.fees, True, duplicate=True)
                )
    return platform


def _deleted_strategies(rng: random.Random, people: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Strategies Tradebaas no longer has, whose trades it kept."""
    return [
        {"id": None, "user_id": user, "strategy_name": "Retired Bot", "instrument": "SOL-PERP"}
        for user, _ in rng.sample(people, max(1, len(people) // 10))
    ]


def _trade(rng: random.Random, number: int, strategy: dict[str, Any], user: str) -> LegacyTrade:
    side = rng.choice(["buy", "sell"])
    entry = START + timedelta(days=rng.randrange(150), seconds=rng.randrange(86400))
    quantity = _amount(rng, 1, 50000, 4)
    price = _amount(rng, 100000, 9000000, 2)
    closed = rng.random() < 0.85
    pnl = _amount(rng, -300_000_000, 500_000_000, 6) if closed else None
    fees = _amount(rng, 0, 2_000_000, 8)
    row: dict[str, Any] = {
        "id": f"trade_{number:06d}",
        "strategyName": strategy["strategy_name"],
        "instrument": strategy["instrument"],
        "side": rng.choice(SIDES[side]),
        "entryOrderId": f"order-{number}",
        "entryPrice": float(price),
        "amount": float(quantity),
        "stopLoss": float(price * Decimal("0.95")),
        "takeProfit": float(price * Decimal("1.05")),
        "entryTime": int(entry.timestamp() * 1000),
        "status": rng.choice(CLOSED if closed else OPEN),
        "fees": float(fees) if rng.random() < 0.9 else None,
        "user_id": user,
    }
    if closed:
        exit_at = entry + timedelta(minutes=rng.randrange(1, 3000))
        row["exitPrice"] = float(price + _amount(rng, -5000, 5000, 2))
        row["exitTime"] = (
            int(exit_at.timestamp() * 1000) if rng.random() < 0.95 else exit_at.isoformat()
        )
        row["pnl"] = float(pnl) if pnl is not None else None
        row["exitReason"] = rng.choice(["tp_hit", "sl_hit", "manual"])
    return LegacyTrade(row, user, pnl, fees if row["fees"] is not None else Decimal(0), closed)


def write_trades(path: Path, trades: list[LegacyTrade]) -> None:
    """The SQLite trades file, as Tradebaas' recorder leaves it."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(TRADES_DDL)
        for trade in trades:
            row = trade.row
            columns = ", ".join(f'"{name}"' for name in row)
            marks = ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO trades ({columns}) VALUES ({marks})", list(row.values()))  # noqa: S608
        conn.commit()
    finally:
        conn.close()


async def write_strategies(uri: str, platform: Tradebaas) -> None:
    """The users and user_strategies tables, made from Tradebaas' DDL, and their rows."""
    conn = await asyncpg.connect(uri)
    try:
        await conn.execute(STRATEGIES_DDL)
        await conn.executemany(
            "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')",
            [(uuid.UUID(user), email) for user, email in platform.users],
        )
        columns = list(platform.strategies[0].row)
        marks = ", ".join(f"${k + 1}" for k in range(len(columns)))
        await conn.executemany(
            f"INSERT INTO user_strategies ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
            [
                [
                    uuid.UUID(value) if name in ("id", "user_id") else _pg(name, value)
                    for name, value in s.row.items()
                ]
                for s in platform.strategies
            ],
        )
    finally:
        await conn.close()


def _pg(name: str, value: Any) -> Any:
    if name == "config":
        import json  # noqa: PLC0415

        return json.dumps(value)
    return value
