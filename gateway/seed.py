"""The demo dataset: a few users, one of them with a full trading history.

Deterministic (a fixed random seed), and anchored on "now" so the dashboard's
today / 7-day / 30-day figures are never empty.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from datasources import Sources
from datasources import analytics as analytics_source
from datasources import credentials as credentials_source
from datasources import strategies as strategies_source
from datasources import trades as trades_source
from datasources import users as users_source
from gateway.core.auth import hash_password
from gateway.core.crypto import SecretBox
from gateway.core.settings import Settings

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - the published demo sign-in
# An ADMIN (same password) to try `user(id)` and `users(search)` with.
ADMIN_EMAIL = "admin@example.com"
OTHER_USERS = (
    ("alice@example.com", "Alice", "Nguyen"),
    ("bob@example.com", "Bob", "Okafor"),
)
INSTRUMENTS = {
    "BTCUSDT": Decimal(64000),
    "ETHUSDT": Decimal(3200),
    "SOLUSDT": Decimal(150),
    "NIFTY": Decimal(22500),
    "BANKNIFTY": Decimal(48000),
}
BROKERS = {"BTCUSDT": "binance", "ETHUSDT": "binance", "SOLUSDT": "binance"}
STATUSES = ["ACTIVE"] * 8 + ["PAUSED"] * 5 + ["STOPPED"] * 7 + ["ERROR"] * 4
STYLES = ("momentum", "mean-revert", "breakout")
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class SeedSummary:
    """What the seed wrote."""

    users: int
    strategies: int
    trades: int


async def is_seeded(sources: Sources) -> bool:
    """Whether the demo user already exists (the seed is written once per data folder)."""
    found = await users_source.find_user_by_email(db=sources.users.db, email=DEMO_EMAIL)
    return found is not None


async def seed_demo(
    sources: Sources,
    *,
    trades_per_strategy: int = 180,
    now: datetime | None = None,
    box: SecretBox | None = None,
) -> SeedSummary:
    """Write the demo dataset; the heavy user gets 24 strategies and their trades over 90 days.

    Broker secrets are sealed with `box` (default: the keys of the environment's settings),
    through the same write the `saveCredentials` mutation uses.
    """
    rng = random.Random(20261121)  # noqa: S311 - demo data, not secrets
    moment = now or datetime.now(UTC)
    demo = await users_source.insert_user(
        db=sources.users.db,
        email=DEMO_EMAIL,
        password_hash=await hash_password(DEMO_PASSWORD),
        first_name="Dana",
        last_name="Demo",
        phone="+1 555 0100",
    )
    owners = [(demo.id, len(STATUSES), trades_per_strategy)]
    for email, first, last in OTHER_USERS:
        other = await users_source.insert_user(
            db=sources.users.db,
            email=email,
            password_hash=await hash_password(DEMO_PASSWORD),
            first_name=first,
            last_name=last,
            phone=None,
        )
        owners.append((other.id, 3, 20))
    await users_source.insert_user(
        db=sources.users.db,
        email=ADMIN_EMAIL,
        password_hash=await hash_password(DEMO_PASSWORD),
        first_name="Ada",
        last_name="Admin",
        phone=None,
        role="ADMIN",
    )
    await credentials_source.upsert_credentials(
        db=sources.credentials.db,
        box=box or SecretBox.from_settings(Settings()),
        user_id=demo.id,
        broker="binance",
        changes={
            "clientId": "demo-client",
            # Placeholders: the demo never talks to a broker.
            "apiKey": "demo-api-key-not-real-7f3a",
            "apiSecret": "demo-api-secret-not-real",
        },
    )
    strategy_count = trade_count = 0
    for user_id, how_many, per_strategy in owners:
        statuses = STATUSES if how_many == len(STATUSES) else ["ACTIVE", "PAUSED", "STOPPED"]
        rows: list[dict[str, Any]] = []
        for index, status in enumerate(statuses[:how_many]):
            instrument = rng.choice(list(INSTRUMENTS))
            strategy = await strategies_source.insert_strategy(
                db=sources.strategies.db,
                user_id=user_id,
                name=f"{instrument} {STYLES[index % 3]} #{index + 1}",
                code="def on_tick(ctx, tick):\n    ...\n",
                status=status,
                instrument=instrument,
                broker=BROKERS.get(instrument, "zerodha"),
                environment="LIVE" if index % 4 == 0 else "TESTNET",
                config={
                    "timeframe": rng.choice(["1m", "5m", "15m"]),
                    "risk": 0.01 * (1 + index % 3),
                },
                created_at=moment - timedelta(days=95 - index),
                error_message="Broker rejected order: insufficient margin"
                if status == "ERROR"
                else None,
            )
            strategy_count += 1
            rows.extend(trades_for(rng, strategy, per_strategy, moment))
        async with sources.trades.engine.begin() as conn:
            for start in range(0, len(rows), 2000):
                await trades_source.insert_trades(conn=conn, rows=rows[start : start + 2000])
        trade_count += len(rows)
        async with sources.analytics.engine.begin() as conn:
            for days_ago, kind in (
                (30, "STRATEGY_STARTED"),
                (2, "STRATEGY_PAUSED"),
                (0, "SIGNED_IN"),
            ):
                await analytics_source.record_activity(
                    conn=conn, user_id=user_id, kind=kind, at=moment - timedelta(days=days_ago)
                )
    return SeedSummary(users=len(owners) + 1, strategies=strategy_count, trades=trade_count)


def trades_for(
    rng: random.Random,
    strategy: strategies_source.StrategyRecord,
    count: int,
    moment: datetime,
) -> list[dict[str, Any]]:
    """`count` trades of `strategy` over the 90 days before `moment` (3% of them left open),
    as rows of the trades table."""
    instrument = strategy.instrument or "BTCUSDT"
    base = INSTRUMENTS[instrument]
    rows = []
    for _ in range(count):
        entry = moment - timedelta(seconds=rng.randint(3600, 90 * 86400))
        held = timedelta(minutes=rng.randint(1, 600))
        closed = entry + held < moment and rng.random() > 0.03
        side = rng.choice(["BUY", "SELL"])
        quantity = (Decimal(rng.randint(1, 200)) / 100).quantize(CENT)
        entry_price = (base * Decimal(1 + rng.uniform(-0.05, 0.05))).quantize(CENT)
        direction = 1 if side == "BUY" else -1
        # A small edge in the trade's own direction, so the demo account makes money overall.
        move = direction * rng.gauss(0.0015, 0.01)
        exit_price = (entry_price * Decimal(1 + move)).quantize(CENT)
        pnl = ((exit_price - entry_price) * quantity * direction).quantize(CENT)
        fees = (entry_price * quantity * Decimal("0.0004")).quantize(CENT)
        rows.append(
            {
                "user_id": strategy.user_id,
                "strategy_id": strategy.id,
                "strategy_name": strategy.name,
                "instrument": instrument,
                "side": side,
                "quantity": quantity,
                "entry_price": entry_price,
                "exit_price": exit_price if closed else None,
                "entry_time": entry,
                "exit_time": entry + held if closed else None,
                "pnl": pnl if closed else None,
                "fees": fees,
                "status": "CLOSED" if closed else "OPEN",
                "broker": strategy.broker,
                "environment": strategy.environment,
            }
        )
    return rows
