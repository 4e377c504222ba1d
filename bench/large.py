"""A large answer through the gateway, against the same rows encoded by hand with orjson.

    .venv/bin/python -m bench.large [--runs N] [--without-served]

Issue 11's large answer: one user with 100 strategies and 10 or more trades each, and

    strategies(first: 100) { edges { node { id name
      trades(first: 10) { edges { node { <10 scalar fields> } } } } } }

about 10,200 fields in a 256 KB answer. The variants, interleaved:

- gateway:      POST /graphql through the real app (httpx over ASGI), as bench.dashboard's;
- json-floor:   the same rows fetched with the same drivers and clients (PyMongo async for
                the strategies, hand-written SQL on the asyncpg driver of the gateway's
                pool for the trades, the token's user alongside: the same round trips),
                the same dict built by hand
                (global ids, Decimal strings, times as the API prints them) and encoded
                with orjson;
- gateway-http: `gateway serve` (uvicorn, one worker) over real HTTP on the loopback;
- gateway-standard (with --standard-executor): a second app like gateway's, executing with
                the standard executor instead of the fast path (schema/_fast.py): what
                the fast path saves, measured in the same run.

The gateway is a black box here: only its answers over HTTP or ASGI are read. Both
answers must be the same JSON before anything is timed. Databases, seeding, the served
gateway and the CPU clocks are bench.dashboard's and bench.served's. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from bson import ObjectId
from pymongo import DESCENDING, monitoring

from bench.dashboard import (
    SOURCES,
    Bench,
    Call,
    Latency,
    _iso,
    _money,
    _ratio,
    _raw,
    _utc,
    check_token_user,
    describe,
    drop_mongo_databases,
    postgres_databases,
    run_with_mongo,
    running,
    same_answers,
    served_call,
    served_env,
    time_variants,
)
from bench.served import Served, process_cpu, start_gateway, stop, wait_until_answering
from datasources import Sources
from datasources import strategies as strategies_source
from datasources import users as users_source
from datasources.trades import trades
from gateway.app import create_app
from gateway.core.auth import TokenService, hash_password
from gateway.core.settings import Settings
from gateway.seed import trades_for
from schema._ids import global_id
from tests.helpers import RoundTrips

STRATEGIES = 100
TRADES_PER_PAGE = 10
LARGE_EMAIL = "large@example.com"
LARGE_QUERY = """
query Large {
  strategies(first: 100) {
    edges {
      node {
        id
        name
        trades(first: 10) {
          edges {
            node { id side quantity entryPrice exitPrice entryTime exitTime pnl fees status }
          }
        }
      }
    }
  }
}
"""
VARIANTS = ("gateway", "json-floor", "gateway-http", "gateway-standard")


# --- the data -------------------------------------------------------------------------


async def seed_large(sources: Sources, *, strategies: int, trades_per_strategy: int) -> str:
    """Migrate, then one user with `strategies` strategies of `trades_per_strategy` trades
    each (the demo seed's trades: a few open); the user's id."""
    started = time.perf_counter()
    await sources.migrate()
    user = await users_source.insert_user(
        db=sources.users.db,
        email=LARGE_EMAIL,
        password_hash=await hash_password("large-bench-password"),
        first_name="Lara",
        last_name="Large",
        phone=None,
    )
    rng = random.Random(11)
    moment = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for index in range(strategies):
        strategy = await strategies_source.insert_strategy(
            db=sources.strategies.db,
            user_id=user.id,
            name=f"BTCUSDT large #{index + 1}",
            code="def on_tick(ctx, tick):\n    ...\n",
            status="ACTIVE",
            instrument="BTCUSDT",
            broker="binance",
            environment="TESTNET",
            config={},
            created_at=moment - timedelta(days=strategies - index),
        )
        rows.extend(trades_for(rng, strategy, trades_per_strategy, moment))
    async with sources.trades.engine.begin() as conn:
        await conn.execute(trades.insert(), rows)
    print(
        f"seeded 1 user, {strategies} strategies, {len(rows)} trades "
        f"in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return user.id


# --- the JSON floor -------------------------------------------------------------------


async def floor_large(sources: Sources, tokens: TokenService, token: str) -> bytes:
    """The large answer fetched straight from the drivers, built by hand, encoded by orjson.

    The token's user is read alongside the strategies (users 1, strategies 1), then the
    trades of every strategy of the page in one statement (trades 1), and nothing is
    returned before the user passed the token check.
    """
    claims = tokens.verify(token)
    owner = ObjectId(claims.user_id)
    cursor = (
        sources.strategies.db["strategies"]
        .find({"userId": owner})
        .sort("_id", DESCENDING)
        .limit(STRATEGIES + 1)  # one more tells whether there is a next page, as the gateway
    )
    user, docs = await asyncio.gather(
        sources.users.db["users"].find_one({"_id": owner}), cursor.to_list()
    )
    check_token_user(user, claims)
    page = docs[:STRATEGIES]
    ids = [str(doc["_id"]) for doc in page]
    pages = await _trade_pages(sources, claims.user_id, ids)
    edges = [
        {
            "node": {
                "id": global_id("Strategy", key),
                "name": doc.get("name", ""),
                "trades": {"edges": [{"node": node} for node in pages.get(key, [])]},
            }
        }
        for key, doc in zip(ids, page, strict=True)
    ]
    return orjson.dumps({"data": {"strategies": {"edges": edges}}})


async def _trade_pages(
    sources: Sources, user_id: str, strategy_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """The newest TRADES_PER_PAGE trades of each strategy, as the API shows them."""
    rows = await _raw(
        sources.trades,
        "SELECT id, strategy_id, side, quantity, entry_price, exit_price, entry_time,"
        " exit_time, pnl, fees, status FROM (SELECT *, row_number() OVER (PARTITION BY"
        " strategy_id ORDER BY entry_time DESC, id DESC) AS rank FROM trades"
        " WHERE strategy_id = ANY($1) AND user_id = $2) AS ranked"
        " WHERE rank <= $3 ORDER BY strategy_id, rank",
        strategy_ids,
        user_id,
        TRADES_PER_PAGE,
    )
    pages: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        pages.setdefault(row["strategy_id"], []).append(
            {
                "id": global_id("Trade", str(row["id"])),
                "side": row["side"].upper(),
                "quantity": _money(row["quantity"]),
                "entryPrice": _money(row["entry_price"]),
                "exitPrice": _money(row["exit_price"]),
                "entryTime": _iso(_utc(row["entry_time"])),
                "exitTime": _iso(_utc(row["exit_time"])),
                "pnl": _money(row["pnl"]),
                "fees": _money(row["fees"]),
                "status": row["status"].upper(),
            }
        )
    return pages


# --- measuring ------------------------------------------------------------------------


async def count_round_trips(
    settings: Settings, tokens: TokenService, token: str
) -> dict[str, Counter[str]]:
    """Round trips per source of one request, gateway and floor, on an app whose clients
    carry the counting listeners (tests/helpers.py); the timed app carries none."""
    spy = RoundTrips(enabled=False)
    monitoring.register(spy.mongo_listener)  # before the clients exist: PyMongo's rule
    app = create_app(settings)
    counts: dict[str, Counter[str]] = {}
    async with (
        running(app) as sources,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.bench"
        ) as client,
    ):
        spy.watch(sources)
        calls: dict[str, Call] = {
            "gateway": served_call(
                client, "/graphql", token, operation_name=True, query=LARGE_QUERY, operation="Large"
            ),
            "json-floor": functools.partial(floor_large, sources, tokens, token),
        }
        for name, call in calls.items():
            await call()  # open the pools first
            spy.reset()
            spy.enabled = True
            await call()
            spy.enabled = False
            counts[name] = spy.counts
    return counts


def table(latency: dict[str, Latency], sizes: dict[str, int]) -> list[str]:
    """Per variant: p50, p95, mean, CPU per request, requests per CPU-second; the ratios."""
    rows = {name: latency[name].row() for name in VARIANTS if name in latency}
    lines = [
        f"{'per request (ms)':<16}{'p50':>8}{'p95':>8}{'mean':>8}{'min':>8}{'CPU':>8}"
        f"{'req/CPU-s':>11}{'bytes':>9}"
    ]
    for name, row in rows.items():
        lines.append(
            f"{name:<16}{row['p50']:>8.2f}{row['p95']:>8.2f}{row['mean']:>8.2f}"
            f"{row['min']:>8.2f}{row['cpu']:>8.2f}{row['per_cpu_second']:>11.1f}"
            f"{sizes[name]:>9}"
        )
    lines.append(
        "(CPU: gateway and json-floor this process's CPU time per request, the httpx/ASGI "
        "client side included for the gateway; gateway-http its server process's (/proc))"
    )
    floor = rows["json-floor"]
    for name in ("gateway", "gateway-http", "gateway-standard"):
        if name in rows:
            row = rows[name]
            lines.append(
                f"{name + ' / json-floor:':<32}p50 {_ratio(row['p50'], floor['p50'])}, "
                f"p95 {_ratio(row['p95'], floor['p95'])}, CPU {_ratio(row['cpu'], floor['cpu'])}"
            )
    if "gateway" in rows:
        gateway = rows["gateway"]
        lines += [
            "",
            "issue 11, measured here:",
            "| measure | this run | goal |",
            "|---|---|---|",
            f"| large answer, gateway p50 / (same drivers + dict by hand + orjson) p50 | "
            f"{_ratio(gateway['p50'], floor['p50'])} ({gateway['p50']:.1f} ms vs "
            f"{floor['p50']:.1f} ms; CPU {gateway['cpu']:.1f} vs {floor['cpu']:.1f} ms) | ≤ x2 |",
        ]
    return lines


def describe_answer(answer: dict[str, Any]) -> str:
    """Strategies, trades, fields (every key of every object) and scalar values in an
    answer."""

    def count(value: Any) -> tuple[int, int]:
        if isinstance(value, dict | list):
            inner = [count(each) for each in (value.values() if isinstance(value, dict) else value)]
            keys = len(value) if isinstance(value, dict) else 0
            return keys + sum(k for k, _ in inner), sum(s for _, s in inner)
        return 0, 1

    edges = answer["data"]["strategies"]["edges"]
    trade_count = sum(len(edge["node"]["trades"]["edges"]) for edge in edges)
    fields, scalars = count(answer["data"])
    return f"{len(edges)} strategies, {trade_count} trades, {fields} fields, {scalars} scalars"


# --- main -----------------------------------------------------------------------------


async def run(args: argparse.Namespace, mongo_base: str, mongo_label: str) -> None:
    info = await describe(mongo_label)
    async with contextlib.AsyncExitStack() as stack:
        run_id = uuid.uuid4().hex[:8]
        trades_url, analytics_url = await stack.enter_async_context(postgres_databases(run_id))
        bench = Bench(run_id, mongo_base, trades_url, analytics_url)
        # Rate limits off, as in bench.dashboard: the floor limits nothing.
        settings = bench.settings()
        stack.push_async_callback(drop_mongo_databases, settings)
        tokens = TokenService(settings)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-large-")))

        app = create_app(settings)
        sources = await stack.enter_async_context(running(app))
        user_id = await seed_large(
            sources, strategies=args.strategies, trades_per_strategy=args.trades_per_strategy
        )
        token = tokens.issue(user_id=user_id, token_version=0).token
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway.bench"
            )
        )
        calls: dict[str, Call] = {
            "gateway": served_call(
                client, "/graphql", token, operation_name=True, query=LARGE_QUERY, operation="Large"
            ),
            "json-floor": functools.partial(floor_large, sources, tokens, token),
        }
        if args.standard_executor:
            standard = create_app(settings)
            schema = standard.state.schema
            schema.execution_context_class = schema.standard_executor
            await stack.enter_async_context(running(standard))
            standard_client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=standard), base_url="http://standard.bench"
                )
            )
            calls["gateway-standard"] = served_call(
                standard_client,
                "/graphql",
                token,
                operation_name=True,
                query=LARGE_QUERY,
                operation="Large",
            )
        clocks: dict[str, Callable[[], float]] = {}
        server: Served | None = None
        if not args.without_served:
            server = start_gateway(served_env(settings), workdir)
            stack.callback(stop, server.process)
            await wait_until_answering(server)
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=30.0))
            calls["gateway-http"] = served_call(
                http, server.url, token, operation_name=True, query=LARGE_QUERY, operation="Large"
            )
            clocks["gateway-http"] = functools.partial(process_cpu, server.process.pid)

        bodies = {name: await call() for name, call in calls.items()}
        answer = same_answers(bodies)
        print(
            f"answers agree: {describe_answer(answer)}; "
            + ", ".join(f"{name} {len(body)} bytes" for name, body in bodies.items()),
            file=sys.stderr,
        )
        print(f"timing {args.runs} runs of each variant…", file=sys.stderr)
        latency = await time_variants(calls, args.runs, args.warmup, clocks)
        if server is not None and server.process.poll() is not None:
            raise SystemExit(f"gateway-http exited:\n{server.stderr()[-3000:]}")
        trips = await count_round_trips(settings, tokens, token)

    lines = [
        "",
        f"machine: {info['cpus']} CPUs, {info['cpu']}, {info['memory']}; {info['python']}; "
        f"{info['postgres']}; mongo: {info['mongo']}; loop: {args.loop}; "
        f"load average before: {info['load']}",
        f"data: {describe_answer(answer)}, {len(bodies['gateway'])} bytes; {args.runs} runs "
        f"per variant after {args.warmup} warm-up, interleaved",
        "",
        *table(latency, {name: len(body) for name, body in bodies.items()}),
        "",
        "round trips per request (commands / statements, as tests/helpers.py counts them)",
        f"{'':<16}" + "".join(f"{source:>12}" for source in SOURCES),
    ]
    for name, counts in trips.items():
        lines.append(f"{name:<16}" + "".join(f"{counts[source]:>12}" for source in SOURCES))
    if trips["gateway"] != trips["json-floor"]:
        lines.append("the round trips differ: the floor no longer does what the gateway does")
    print("\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--runs", type=int, default=100, help="timed requests per variant")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per variant")
    parser.add_argument("--strategies", type=int, default=STRATEGIES, help="of the one user")
    parser.add_argument(
        "--trades-per-strategy",
        type=int,
        default=12,
        help="at least 10, so that every page of trades is full",
    )
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--without-served", action="store_true", help="leave gateway-http out (in process only)"
    )
    parser.add_argument(
        "--standard-executor",
        action="store_true",
        help="add gateway-standard: the gateway without its execution fast path",
    )
    args = parser.parse_args(argv)
    if args.runs < 2 or args.warmup < 0 or args.strategies < 1:
        parser.error("--runs must be at least 2, --warmup 0 or more, --strategies 1 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_with_mongo(functools.partial(run, args), args.loop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
