"""CPU per SQL read: each loader of the trades and analytics sources, called alone, many times.

    .venv/bin/python -m bench.sql_reads [--calls N] [--rounds R] [--json out.json]

Makes two PostgreSQL databases on BENCH_POSTGRES_URL (dropped at the end), fills them
like the demo user (24 strategies, 180 trades each over 90 days, 40 activity events,
the daily metrics rolled up), then, on uvloop as uvicorn runs it, makes one fresh set
of loaders per call (as a request does) and awaits one key: CPU time (this process,
the database server not counted) per call, the best of the rounds. Only the public
source API is used, so the same script measures any tree (see bench/README.md,
"Hot SQL reads as prepared statements on asyncpg").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.dashboard import postgres_databases
from datasources import Shared, SourceLimits
from datasources._batch import Scope
from datasources._sql import create_engine
from datasources.analytics import (
    ActivityKey,
    AnalyticsSource,
    MetricsKey,
    record_activity,
    refresh_daily_metrics,
)
from datasources.trades import TradeCountKey, TradePageKey, TradesSource, insert_trades

USER = "5f0c0ffee0000000000000aa"
STRATEGIES = [f"5f0c0ffee0000000000001{i:02x}" for i in range(24)]


async def fill(trades: TradesSource, analytics: AnalyticsSource) -> list[str]:
    """The demo-sized data of one user; a few of its trade ids."""
    rng = random.Random(11)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for n, strategy in enumerate(STRATEGIES):
        for i in range(180):
            entry = now - timedelta(minutes=rng.randrange(90 * 24 * 60))
            closed = i % 7 != 0
            price = Decimal(rng.randrange(100_00, 200_00)) / 100
            exit_price = price + Decimal(rng.randrange(-500, 500)) / 100 if closed else None
            quantity = Decimal(rng.randrange(1, 100)) / 10
            rows.append(
                {
                    "user_id": USER,
                    "strategy_id": strategy,
                    "strategy_name": f"strategy {n}",
                    "instrument": rng.choice(["BTC-USD", "ETH-USD", "NIFTY"]),
                    "side": rng.choice(["BUY", "SELL"]),
                    "quantity": quantity,
                    "entry_price": price,
                    "exit_price": exit_price,
                    "entry_time": entry,
                    "exit_time": entry + timedelta(minutes=30) if closed else None,
                    "pnl": (exit_price - price) * quantity if exit_price else None,
                    "fees": Decimal("0.25"),
                    "status": "CLOSED" if closed else "OPEN",
                    "broker": "bench",
                    "environment": "TESTNET",
                }
            )
    async with trades.engine.begin() as conn:
        await insert_trades(conn=conn, rows=rows)
    async with analytics.engine.begin() as conn:
        for i in range(40):
            await record_activity(
                conn=conn,
                user_id=USER,
                kind="STRATEGY_STARTED",
                subject_id=STRATEGIES[i % 24],
                data={"n": i},
                at=now - timedelta(minutes=i),
            )
    await refresh_daily_metrics(trades_engine=trades.engine, analytics_engine=analytics.engine)
    page = await trades.loaders(Scope(USER)).page.load(
        TradePageKey(partition="user", owner=USER, first=20)
    )
    return [trade.id for trade in page.items]


def calls(
    trades: TradesSource, analytics: AnalyticsSource, trade_ids: list[str]
) -> dict[str, Callable[[], Awaitable[Any]]]:
    """One loader call per hot read, each on fresh loaders (a request's)."""
    scope = Scope(USER)
    today = datetime.now(UTC).date()

    async def many(loader: Any, keys: list[Any]) -> Any:
        return await loader.load_many(keys)

    return {
        "trades.page (recent trades, 10)": lambda: trades.loaders(scope).page.load(
            TradePageKey(partition="user", owner=USER, first=10)
        ),
        "trades.page (24 strategies x 10)": lambda: many(
            trades.loaders(scope).page,
            [TradePageKey(partition="strategy", owner=s, first=10) for s in STRATEGIES],
        ),
        "trades.count": lambda: trades.loaders(scope).count.load(
            TradeCountKey(partition="user", owner=USER)
        ),
        "trades.daily (daily PnL)": lambda: trades.loaders(scope).daily.load(USER),
        "trades.summary": lambda: trades.loaders(scope).summary.load(USER),
        "trades.by_id (10)": lambda: many(trades.loaders(scope).by_id, trade_ids[:10]),
        "analytics.activity (10)": lambda: analytics.loaders(scope).activity.load(
            ActivityKey(user_id=USER, limit=10)
        ),
        "analytics.metrics (30 days)": lambda: analytics.loaders(scope).metrics.load(
            MetricsKey(user_id=USER, from_day=today - timedelta(days=29), to_day=today)
        ),
        "analytics.by_strategy": lambda: analytics.loaders(scope).by_strategy.load(STRATEGIES[0]),
    }


async def measure(
    runs: dict[str, Callable[[], Awaitable[Any]]], n: int, rounds: int
) -> dict[str, float]:
    """CPU ms per call of each, the best of `rounds` rounds, the reads interleaved by round."""
    for call in runs.values():
        for _ in range(20):
            await call()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, call in runs.items():
            started = time.process_time()
            for _ in range(n):
                await call()
            best[name] = min(best[name], (time.process_time() - started) * 1000 / n)
    return best


async def dispose(engine: AsyncEngine) -> None:
    await engine.dispose()


async def run(args: argparse.Namespace) -> dict[str, float]:
    async with postgres_databases(uuid.uuid4().hex[:8]) as (trades_url, analytics_url):
        limits = SourceLimits()
        engines = [
            Shared(create_engine(url), lambda e: e.dispose()) for url in (trades_url, analytics_url)
        ]
        trades = TradesSource(engines[0], limits=limits)
        analytics = AnalyticsSource(engines[1], limits=limits)
        try:
            await trades.migrate()
            await analytics.migrate()
            trade_ids = await fill(trades, analytics)
            return await measure(calls(trades, analytics, trade_ids), args.calls, args.rounds)
        finally:
            await trades.close()
            await analytics.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sql_reads", description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        found = runner.run(run(args))
    for name, ms in found.items():
        print(f"{name:36} {ms:6.3f} ms CPU per call")
    if args.json:
        args.json.write_text(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
