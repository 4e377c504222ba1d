"""The dashboard query through the gateway, against a hand-written floor over the same drivers.

    .venv/bin/python -m bench.dashboard [--runs N] [--trades-per-strategy K]

Sets up its own databases (the embedded Mongo-wire server, or MONGO_BENCH_URI;
two PostgreSQL databases on BENCH_POSTGRES_URL, dropped at the end), seeds the
heavy demo user, then times five ways of answering the same dashboard:

- gateway:    POST /graphql through the real app (httpx over ASGI: HTTP parsing,
              auth, loaders, GraphQL execution and serialization all counted);
- floor:      the same data fetched straight from the drivers with one
              asyncio.gather (PyMongo async; hand-written SQL on the asyncpg driver of
              a connection from the gateway's own pools), the same JSON built by hand
              and encoded;
- floor-http: the floor behind a bare FastAPI route, through the same httpx
              client, to split the HTTP stack's cost from the GraphQL layer's;
- gateway-http: `gateway serve` (uvicorn, one worker) as a process of its own, over
              real HTTP on the loopback;
- peer:       the Apollo Server 4 peer in Node (bench/peer/, installed here with
              `npm ci` when needed), over real HTTP on the loopback.

Each of these runs once with the databases as they are and once more (by default)
through proxies adding 2 ms per database round trip (`--latency-ms`). The served
variants are charged their server process's CPU (/proc), the others this process's.

Then it counts round trips per source per request (PyMongo command monitoring and
the SQL sources' statement hook, as tests/helpers.py does, plus PostgreSQL protocol
round trips seen by a counting proxy), and the tracemalloc peak per request.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import gc
import io
import json
import os
import platform
import pstats
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from bson import ObjectId
from fastapi import FastAPI, Request, Response
from graphql import parse, specified_rules, validate
from pymongo import DESCENDING, AsyncMongoClient, monitoring
from sqlalchemy.util.concurrency import greenlet_spawn

from bench.served import (
    Served,
    install_peer,
    node_postgres_url,
    process_cpu,
    start_gateway,
    start_latency_proxies,
    start_peer,
    stop,
    wait_until_answering,
)
from datasources import Sources, SqlSource
from datasources.analytics import refresh_daily_metrics
from datasources.credentials import SECRET_FIELDS
from datasources.users import find_user_by_email
from gateway.app import create_app
from gateway.core.auth import AccessClaims, TokenService
from gateway.core.settings import Settings
from gateway.embedded import EmbeddedMongo
from gateway.seed import DEMO_EMAIL, seed_demo
from schema._ids import global_id
from tests.faults import url_via
from tests.helpers import RoundTrips
from tests.serving import settings_env

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SOURCES = ("users", "strategies", "credentials", "trades", "analytics")
# Run in this process (the first three) and as servers of their own over real HTTP.
VARIANTS = ("gateway", "floor", "floor-http")
SERVED = ("gateway-http", "peer")
ROOT = Path(__file__).resolve().parents[1]
ZERO = Decimal(0)

# Every field of the dashboard, with every scalar field of the objects in it.
DASHBOARD_QUERY = """
query Dashboard {
  dashboard {
    user { id email firstName lastName phone role createdAt updatedAt }
    strategyCounts { active paused stopped error total }
    activeStrategies {
      id name code status containerId instrument broker environment config lastAction
      autoReconnect errorMessage errorCount lastHeartbeat createdAt updatedAt
    }
    recentTrades {
      id strategyId strategyName instrument side quantity entryPrice exitPrice entryTime
      exitTime pnl fees netPnl status broker environment
    }
    pnl { today sevenDays thirtyDays allTime }
    equityCurve { day netPnl equity }
    credentialsConfigured
    recentActivity { id kind subjectId at data }
  }
}
"""
# The schema's defaults for the list arguments left out above.
FIRST = 10
EQUITY_DAYS = 30


# --- counting round trips -------------------------------------------------------------


SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


class PgWireCounter:
    """A TCP proxy in front of PostgreSQL counting protocol round trips per database.

    Every Sync ('S') or simple Query ('Q') message makes the client wait for the
    server's ReadyForQuery, so each is one round trip: a prepared statement's
    parse, its execution, and the BEGIN / ROLLBACK / pre-ping SQLAlchemy adds all
    show up here, where a cursor event sees one statement. Used only for counting:
    the extra hop would distort the timings.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.counts: Counter[str] = Counter()
        self.enabled = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # The clients are closed by now; give their connections a moment to wind down.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        for task in list(self._tasks):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - always inside a task
        self._tasks.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            database = await self._startup(reader, writer, upstream_writer)
            if database is None:
                return
            await asyncio.gather(
                self._client_to_server(reader, upstream_writer, database),
                self._copy(upstream_reader, writer),
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # A closed connection, or the proxy shutting down: either way, this one is over.
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _startup(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
    ) -> str | None:
        """Pass the untyped startup messages on; refuse TLS so the stream stays readable."""
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            body = await reader.readexactly(length - 8)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                writer.write(b"N")
                await writer.drain()
                continue
            upstream.write(head + body)
            await upstream.drain()
            words = body.split(b"\0")
            params = dict(zip(words[::2], words[1::2], strict=False))
            return params.get(b"database", b"?").decode()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter, database: str
    ) -> None:
        try:
            while True:
                head = await reader.readexactly(5)
                body = await reader.readexactly(struct.unpack("!i", head[1:])[0] - 4)
                if self.enabled and head[:1] in (b"S", b"Q"):
                    self.counts[database] += 1
                upstream.write(head + body)
                await upstream.drain()
        finally:
            upstream.close()

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


# --- the floor ------------------------------------------------------------------------


def _money(value: Decimal | None) -> str | None:
    """An amount as the API spells it: plain digits, no trailing zeros ("2", "0.5")."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _raw(source: SqlSource, sql: str, *args: Any) -> list[Any]:
    """One statement straight on the asyncpg driver of a connection from the source's pool,
    as a hand-written endpoint would send it: prepared (asyncpg keeps it per connection),
    in autocommit, one round trip. Reported to the source's statement hook where it has
    one, so the round-trip counts see it."""
    statements = getattr(source, "statements", None)
    pooled = await source.engine.raw_connection()
    ended = statements.started(sql) if statements is not None and statements.listeners else ()
    try:
        rows: list[Any] = await pooled.driver_connection.fetch(sql, *args)  # type: ignore[union-attr]
    finally:
        for end in ended:
            end()
        await greenlet_spawn(pooled.close)
    return rows


class Revoked(Exception):
    """The token's user is gone or its tokens were revoked."""


def check_token_user(user: dict[str, Any] | None, claims: AccessClaims) -> None:
    """Raise Revoked unless the token's user exists, is not being deleted and is still at
    the token's version: the check every floor makes before it returns anything."""
    if (
        user is None
        or user.get("deletingAt") is not None
        or int(user.get("tokenVersion", 0)) != claims.token_version
    ):
        raise Revoked(claims.user_id)


async def floor_dashboard(sources: Sources, tokens: TokenService, token: str) -> dict[str, Any]:
    """The dashboard's `data`, fetched straight from the drivers in one asyncio.gather.

    The token is verified the same way; its user is fetched alongside everything
    else and the token version checked before anything is returned.
    """
    claims = tokens.verify(token)
    user_id = claims.user_id
    owner = ObjectId(user_id)
    # One gather of two (typeshed types gather's results up to six awaitables).
    (user, counts, active, configured), (recent, daily, activity) = await asyncio.gather(
        asyncio.gather(
            sources.users.db["users"].find_one({"_id": owner}),
            _strategy_counts(sources, owner),
            _active_strategies(sources, owner),
            _credentials_configured(sources, owner),
        ),
        asyncio.gather(
            _recent_trades(sources, user_id),
            _daily_net(sources, user_id),
            _recent_activity(sources, user_id),
        ),
    )
    check_token_user(user, claims)
    today = datetime.now(UTC).date()
    created = _utc(user.get("createdAt")) or user["_id"].generation_time
    return {
        "dashboard": {
            "user": {
                "id": global_id("User", str(user["_id"])),
                "email": user["email"],
                "firstName": user.get("firstName", ""),
                "lastName": user.get("lastName", ""),
                "phone": user.get("phone"),
                "role": str(user.get("role", "user")).upper(),
                "createdAt": _iso(created),
                "updatedAt": _iso(_utc(user.get("updatedAt")) or created),
            },
            "strategyCounts": {
                "active": counts.get("active", 0),
                "paused": counts.get("paused", 0),
                "stopped": counts.get("stopped", 0),
                "error": counts.get("error", 0),
                "total": sum(counts.values()),
            },
            "activeStrategies": active,
            "recentTrades": recent,
            "pnl": _pnl(daily, today),
            "equityCurve": _equity(daily, today),
            "credentialsConfigured": configured,
            "recentActivity": activity,
        }
    }


async def _strategy_counts(sources: Sources, owner: ObjectId) -> dict[str, int]:
    pipeline: list[dict[str, Any]] = [
        {"$match": {"userId": owner}},
        {"$group": {"_id": "$status", "n": {"$sum": 1}}},
    ]
    cursor = await sources.strategies.db["strategies"].aggregate(pipeline)
    return {str(row["_id"]).lower(): int(row["n"]) async for row in cursor}


async def _active_strategies(sources: Sources, owner: ObjectId) -> list[dict[str, Any]]:
    cursor = (
        sources.strategies.db["strategies"]
        .find({"userId": owner, "status": "active"})
        .sort("_id", DESCENDING)
        .limit(FIRST)
    )
    found = []
    async for doc in cursor:
        created = _utc(doc.get("createdAt")) or doc["_id"].generation_time
        found.append(
            {
                "id": global_id("Strategy", str(doc["_id"])),
                "name": doc.get("name", ""),
                "code": doc.get("code", ""),
                "status": str(doc.get("status")).upper(),
                "containerId": doc.get("containerId"),
                "instrument": doc.get("instrument"),
                "broker": doc.get("broker"),
                "environment": str(doc.get("environment", "testnet")).upper(),
                "config": doc.get("config") or {},
                "lastAction": doc.get("lastAction"),
                "autoReconnect": bool(doc.get("autoReconnect", False)),
                "errorMessage": doc.get("errorMessage"),
                "errorCount": int(doc.get("errorCount", 0)),
                "lastHeartbeat": _iso(_utc(doc.get("lastHeartbeat"))),
                "createdAt": _iso(created),
                "updatedAt": _iso(_utc(doc.get("updatedAt")) or created),
            }
        )
    return found


async def _credentials_configured(sources: Sources, owner: ObjectId) -> bool:
    # Only the _id comes back: the secrets never leave the server.
    query = {"userId": owner, "$or": [{name: {"$ne": None}} for name in SECRET_FIELDS]}
    found = await sources.credentials.db["credentials"].find_one(query, {"_id": 1})
    return found is not None


async def _recent_trades(sources: Sources, user_id: str) -> list[dict[str, Any]]:
    rows = await _raw(
        sources.trades,
        "SELECT id, strategy_id, strategy_name, instrument, side, quantity, entry_price,"
        " exit_price, entry_time, exit_time, pnl, fees, status, broker, environment"
        " FROM trades WHERE user_id = $1 ORDER BY entry_time DESC, id DESC LIMIT $2",
        user_id,
        FIRST,
    )
    return [
        {
            "id": global_id("Trade", str(row["id"])),
            "strategyId": global_id("Strategy", row["strategy_id"]),
            "strategyName": row["strategy_name"],
            "instrument": row["instrument"],
            "side": row["side"].upper(),
            "quantity": _money(row["quantity"]),
            "entryPrice": _money(row["entry_price"]),
            "exitPrice": _money(row["exit_price"]),
            "entryTime": _iso(_utc(row["entry_time"])),
            "exitTime": _iso(_utc(row["exit_time"])),
            "pnl": _money(row["pnl"]),
            "fees": _money(row["fees"]),
            "netPnl": _money(row["pnl"] - row["fees"])
            if row["status"] == "closed" and row["pnl"] is not None
            else None,
            "status": row["status"].upper(),
            "broker": row["broker"],
            "environment": row["environment"].upper() if row["environment"] else None,
        }
        for row in rows
    ]


async def _daily_net(sources: Sources, user_id: str) -> dict[date, Decimal]:
    rows = await _raw(
        sources.trades,
        "SELECT CAST(exit_time AT TIME ZONE 'UTC' AS DATE) AS day, sum(pnl - fees)"
        " FROM trades WHERE user_id = $1 AND status = 'closed' AND exit_time IS NOT NULL"
        " GROUP BY day ORDER BY day",
        user_id,
    )
    return {row[0]: row[1] or ZERO for row in rows}


def _pnl(daily: dict[date, Decimal], today: date) -> dict[str, str | None]:
    week, month = today - timedelta(days=6), today - timedelta(days=29)
    return {
        "today": _money(daily.get(today, ZERO)),
        "sevenDays": _money(sum((n for d, n in daily.items() if week <= d <= today), ZERO)),
        "thirtyDays": _money(sum((n for d, n in daily.items() if month <= d <= today), ZERO)),
        "allTime": _money(sum(daily.values(), ZERO)),
    }


def _equity(daily: dict[date, Decimal], today: date) -> list[dict[str, str | None]]:
    start = today - timedelta(days=EQUITY_DAYS - 1)
    equity = sum((net for day, net in daily.items() if day < start), ZERO)
    curve = []
    for offset in range(EQUITY_DAYS):
        day = start + timedelta(days=offset)
        net = daily.get(day, ZERO)
        equity += net
        curve.append({"day": day.isoformat(), "netPnl": _money(net), "equity": _money(equity)})
    return curve


async def _recent_activity(sources: Sources, user_id: str) -> list[dict[str, Any]]:
    rows = await _raw(
        sources.analytics,
        "SELECT id, kind, subject_id, at, data FROM activity_events WHERE user_id = $1"
        " ORDER BY at DESC, id DESC LIMIT $2",
        user_id,
        FIRST,
    )
    return [
        {
            "id": global_id("ActivityEvent", str(row["id"])),
            "kind": row["kind"],
            # A strategy's events name it by its global id, as the gateway shows them.
            "subjectId": global_id("Strategy", row["subject_id"])
            if row["subject_id"] is not None and row["kind"].startswith("STRATEGY_")
            else row["subject_id"],
            "at": _iso(_utc(row["at"])),
            "data": row["data"] or {},
        }
        for row in rows
    ]


def encode(data: dict[str, Any]) -> bytes:
    """JSON as Starlette's JSONResponse renders it."""
    return json.dumps(
        {"data": data}, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


def floor_app(sources: Sources, tokens: TokenService) -> FastAPI:
    """The floor behind one bare route: no GraphQL, same HTTP stack."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/floor")
    async def floor(request: Request) -> Response:
        json.loads(await request.body())  # read the request like /graphql does
        token = request.headers["authorization"].partition(" ")[2]
        data = await floor_dashboard(sources, tokens, token)
        return Response(encode(data), media_type="application/json")

    return app


# --- setup ----------------------------------------------------------------------------


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def _via(url: str, port: int) -> str:
    """`url` with its host and port replaced by the counting proxy's."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class Bench:
    """The databases, settings and seeded user of one benchmark run."""

    run_id: str
    mongo_base: str
    trades_url: str
    analytics_url: str

    def urls(self) -> dict[str, str]:
        """Each source's database URL (Mongo: the server's, with this run's database)."""
        prefix = f"gw_bench_{self.run_id}"
        return {
            "users": _with_database(self.mongo_base, f"{prefix}_user_db"),
            "strategies": _with_database(self.mongo_base, f"{prefix}_strategy_db"),
            "credentials": _with_database(self.mongo_base, f"{prefix}_credentials_db"),
            "trades": self.trades_url,
            "analytics": self.analytics_url,
        }

    def settings(
        self, *, via_port: int | None = None, urls: dict[str, str] | None = None
    ) -> Settings:
        urls = dict(urls or self.urls())
        if via_port is not None:
            for source in ("trades", "analytics"):
                urls[source] = _via(urls[source], via_port)
        return Settings(
            _env_file=None,
            gateway_env="test",
            mongo_user_uri=urls["users"],
            mongo_strategy_uri=urls["strategies"],
            mongo_credentials_uri=urls["credentials"],
            trades_database_url=urls["trades"],
            analytics_database_url=urls["analytics"],
            jwt_secret="bench-secret-" + "x" * 48,
            graphiql=False,
            # The floor and the peer limit nothing; at a few hundred requests a second
            # from one address and one user, the limiter would answer 429 before long.
            rate_limit_enabled=False,
        )


@contextlib.asynccontextmanager
async def postgres_databases(run_id: str) -> AsyncIterator[tuple[str, str]]:
    """Two databases made for this run, dropped at the end."""
    names = (f"gw_bench_{run_id}_trades", f"gw_bench_{run_id}_analytics")
    created = []
    try:
        for name in names:
            await _admin(f'CREATE DATABASE "{name}"')
            created.append(name)
        base = ADMIN_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
        yield _with_database(base, names[0]), _with_database(base, names[1])
    finally:
        for name in created:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[Sources]:
    """The app's lifespan: its sources are open inside."""
    async with app.router.lifespan_context(app):
        yield app.state.sources


async def seed(sources: Sources, trades_per_strategy: int) -> tuple[str, int]:
    """Migrate, seed the demo data and roll it up; the demo user's id and the trade count."""
    started = time.perf_counter()
    await sources.migrate()
    summary = await seed_demo(sources, trades_per_strategy=trades_per_strategy)
    await refresh_daily_metrics(
        trades_engine=sources.trades.engine, analytics_engine=sources.analytics.engine
    )
    user = await find_user_by_email(db=sources.users.db, email=DEMO_EMAIL)
    assert user is not None  # noqa: S101 - just seeded
    print(
        f"seeded {summary.users} users, {summary.strategies} strategies, "
        f"{summary.trades} trades in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return user.id, summary.trades


# --- the in-process variants-----------------------------------------------------------

Call = Callable[[], Awaitable[bytes]]


def variants(
    app: FastAPI,
    floor: FastAPI,
    sources: Sources,
    tokens: TokenService,
    token: str,
    *,
    operation_name: bool = True,
) -> tuple[dict[str, Call], contextlib.AsyncExitStack]:
    """One zero-argument coroutine per variant, each returning the response body.

    The request names its operation, as GraphQL clients (Apollo, Relay, urql) do.
    """
    stack = contextlib.AsyncExitStack()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request: dict[str, str] = {"query": DASHBOARD_QUERY}
    if operation_name:
        request["operationName"] = "Dashboard"
    body = json.dumps(request).encode()
    gateway_client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.bench"
    )
    floor_client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=floor), base_url="http://floor.bench"
    )
    stack.push_async_callback(gateway_client.aclose)
    stack.push_async_callback(floor_client.aclose)

    async def gateway() -> bytes:
        response = await gateway_client.post("/graphql", content=body, headers=headers)
        response.raise_for_status()
        return response.content

    async def floor_direct() -> bytes:
        return encode(await floor_dashboard(sources, tokens, token))

    async def floor_http() -> bytes:
        response = await floor_client.post("/floor", content=body, headers=headers)
        response.raise_for_status()
        return response.content

    return {"gateway": gateway, "floor": floor_direct, "floor-http": floor_http}, stack


async def open_variants(
    stack: contextlib.AsyncExitStack,
    app: FastAPI,
    tokens: TokenService,
    token: str,
    *,
    operation_name: bool,
    spy: RoundTrips | None = None,
) -> dict[str, Call]:
    """The variants over `app` (whose lifespan is entered here unless it runs already)."""
    if not hasattr(app.state, "sources"):
        await stack.enter_async_context(running(app))
    sources: Sources = app.state.sources
    if spy is not None:
        spy.watch(sources)
    calls, clients = variants(
        app, floor_app(sources, tokens), sources, tokens, token, operation_name=operation_name
    )
    await stack.enter_async_context(clients)
    return calls


def check_same_answer(calls: dict[str, bytes]) -> None:
    """Every variant's answer is the same JSON as the gateway's; stop the run otherwise,
    with the first differences."""
    gateway = same_answers(calls)
    dashboard = gateway["data"]["dashboard"]
    print(
        f"answers agree: {len(calls['gateway'])} bytes, "
        f"{len(dashboard['recentTrades'])} trades, "
        f"{len(dashboard['activeStrategies'])} active strategies, "
        f"{len(dashboard['equityCurve'])} equity points, "
        f"{len(dashboard['recentActivity'])} events; variants: {', '.join(calls)}",
        file=sys.stderr,
    )


def same_answers(calls: dict[str, bytes]) -> dict[str, Any]:
    """The gateway's answer, parsed, once every variant's is the same JSON; stop the run
    otherwise, with the first differences. The gateway's `extensions` (its request id)
    are not part of the answer."""
    answers = {}
    for name, body in calls.items():
        answer = json.loads(body)
        answer.pop("extensions", None)  # the gateway's request id: not part of the answer
        if answer.get("errors"):
            raise SystemExit(f"{name} answered with errors: {answer['errors']}")
        answers[name] = answer
    gateway = answers["gateway"]
    for name, other in answers.items():
        if other != gateway:
            diffs = list(_diff(gateway, other, "$"))[:10]
            raise SystemExit(f"{name} and the gateway disagree:\n  " + "\n  ".join(diffs))
    found: dict[str, Any] = gateway
    return found


def _diff(a: Any, b: Any, path: str) -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _diff(a.get(key), b.get(key), f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diff(x, y, f"{path}[{index}]")
    elif a != b:
        yield f"{path}: gateway {a!r} != {b!r}"


# --- measurements ---------------------------------------------------------------------


@dataclass
class Latency:
    """Wall-clock milliseconds per request, and CPU milliseconds: this process's for a
    variant run in it, the server process's for a served one."""

    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.samples)
        rank = p / 100 * (len(ordered) - 1)
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

    def row(self) -> dict[str, float]:
        return {
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "mean": statistics.fmean(self.samples),
            "min": min(self.samples),
            "cpu": statistics.fmean(self.cpu),
            "per_cpu_second": per_cpu_second(statistics.fmean(self.cpu)),
        }


def per_cpu_second(cpu_ms: float) -> float:
    """Requests per CPU-second at `cpu_ms` of CPU per request (0 when none was seen)."""
    return 1000 / cpu_ms if cpu_ms > 0 else 0.0


async def time_variants(
    calls: dict[str, Call],
    runs: int,
    warmup: int,
    cpu_clocks: dict[str, Callable[[], float]] | None = None,
) -> dict[str, Latency]:
    """Each variant `runs` times, interleaved (so drift hits all alike), after warm-up.

    A variant's CPU is read from its clock in `cpu_clocks` (seconds: a served variant's
    server process), else it is this process's CPU time.
    """
    clocks = {name: (cpu_clocks or {}).get(name, time.process_time) for name in calls}
    for _ in range(warmup):
        for call in calls.values():
            await call()
    gc.collect()
    results = {name: Latency() for name in calls}
    names = list(calls)
    for index in range(runs):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            clock = clocks[name]
            cpu = clock()
            started = time.perf_counter()
            await calls[name]()
            results[name].samples.append((time.perf_counter() - started) * 1000)
            results[name].cpu.append((clock() - cpu) * 1000)
    return results


@dataclass
class TripCounts:
    per_source: dict[str, float]
    wire: dict[str, float]
    checkouts: dict[str, float]
    stable: bool
    timeline: tuple[float, list[tuple[str, float, float]]]


async def count_round_trips(
    calls: dict[str, Call],
    wire_calls: dict[str, Call],
    spy: RoundTrips,
    wire: PgWireCounter,
    runs: int,
    names: dict[str, str],
) -> dict[str, TripCounts]:
    """Round trips per source per request, for each variant, averaged over `runs` requests.

    `calls` run on clients the spy watches, `wire_calls` on clients behind the proxy.
    """
    for call in (*calls.values(), *wire_calls.values()):  # open these fresh clients' pools
        for _ in range(3):
            await call()
    found = {}
    for variant, call in calls.items():
        per_request: list[Counter[str]] = []
        checkouts: Counter[str] = Counter()
        timelines: list[tuple[float, list[tuple[str, float, float]]]] = []
        for _ in range(runs):
            spy.reset()
            spy.enabled = True
            started = time.perf_counter()
            await call()
            elapsed = (time.perf_counter() - started) * 1000
            spy.enabled = False
            per_request.append(spy.counts)
            checkouts.update(spy.checkouts)
            spans = [
                (s.source, (s.started - started) * 1000, ((s.ended or s.started) - started) * 1000)
                for s in spy.spans
            ]
            timelines.append((elapsed, spans))
        wire_total: Counter[str] = Counter()
        for _ in range(runs):
            wire.counts.clear()
            wire.enabled = True
            await wire_calls[variant]()
            wire.enabled = False
            wire_total.update({names.get(db, db): n for db, n in wire.counts.items()})
        totals: Counter[str] = sum(per_request, Counter())
        timelines.sort(key=lambda timeline: timeline[0])
        found[variant] = TripCounts(
            per_source={source: totals[source] / runs for source in SOURCES},
            wire={source: wire_total[source] / runs for source in ("trades", "analytics")},
            checkouts={source: checkouts[source] / runs for source in ("trades", "analytics")},
            stable=all(counts == per_request[0] for counts in per_request),
            timeline=timelines[len(timelines) // 2],
        )
    return found


def parse_and_validate(app: FastAPI, runs: int = 200) -> dict[str, float]:
    """Milliseconds to parse the dashboard query and to validate it (standard rules only)."""
    graphql_schema = app.state.schema._schema
    document = parse(DASHBOARD_QUERY)

    def median_ms(step: Callable[[], object]) -> float:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            step()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    return {
        "parse": median_ms(lambda: parse(DASHBOARD_QUERY)),
        "validate": median_ms(lambda: validate(graphql_schema, document, specified_rules)),
    }


async def memory_peaks(calls: dict[str, Call], runs: int) -> dict[str, float]:
    """The median tracemalloc peak above the starting level, per request, in KiB."""
    peaks: dict[str, float] = {}
    tracemalloc.start()
    try:
        for name, call in calls.items():
            await call()
            samples = []
            for _ in range(runs):
                tracemalloc.reset_peak()
                before = tracemalloc.get_traced_memory()[0]
                await call()
                samples.append((tracemalloc.get_traced_memory()[1] - before) / 1024)
            peaks[name] = statistics.median(samples)
    finally:
        tracemalloc.stop()
    return peaks


async def profile(call: Call, runs: int, top: int) -> str:
    """cProfile over `runs` requests: the top functions by own time and by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        await call()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --- the report -----------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: PTH123, SIM115
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError):
        for line in open("/proc/meminfo", encoding="utf-8"):  # noqa: PTH123, SIM115
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


async def describe(mongo_label: str) -> dict[str, str]:
    """The machine, the databases' servers and the load average, for a report's head."""
    info = machine()
    info["mongo"] = mongo_label
    info["load"] = " ".join(f"{load:.2f}" for load in os.getloadavg())
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        info["postgres"] = "PostgreSQL " + str(await admin.fetchval("SHOW server_version"))
    finally:
        await admin.close()
    return info


@dataclass
class Round:
    """One timed round: every variant, interleaved, with `round_trip_ms` added per database
    round trip (0: none), and the load average when it started."""

    round_trip_ms: float
    load: str
    latency: dict[str, Latency]


def _ratio(numerator: float, denominator: float) -> str:
    return f"x{numerator / denominator:.2f}" if denominator else "n/a"


def round_table(round_: Round) -> list[str]:
    """One round's figures per variant and the ratios between them."""
    rows = {name: latency.row() for name, latency in round_.latency.items()}
    lines = [
        f"{round_.round_trip_ms:g} ms added per database round trip "
        f"(load average before: {round_.load})",
        f"{'per request (ms)':<16}{'p50':>8}{'p95':>8}{'mean':>8}{'min':>8}{'CPU':>8}"
        f"{'req/CPU-s':>11}",
    ]
    for name in (*VARIANTS, *SERVED):
        if (row := rows.get(name)) is not None:
            lines.append(
                f"{name:<16}{row['p50']:>8.2f}{row['p95']:>8.2f}{row['mean']:>8.2f}"
                f"{row['min']:>8.2f}{row['cpu']:>8.2f}{row['per_cpu_second']:>11.1f}"
            )
    lines.append(
        "(CPU: gateway, floor and floor-http: this process's CPU time per request; "
        "gateway-http and peer: their server process's (/proc), the client's not included; "
        "the database servers' never)"
    )
    pairs = [
        ("gateway", "floor"),
        ("gateway", "floor-http"),
        ("gateway-http", "floor-http"),
        ("gateway-http", "peer"),
        ("gateway", "peer"),
    ]
    for left, right in pairs:
        if left in rows and right in rows:
            a, b = rows[left], rows[right]
            lines.append(
                f"{left + ' / ' + right + ':':<28}p50 {_ratio(a['p50'], b['p50'])}, "
                f"p95 {_ratio(a['p95'], b['p95'])}, CPU {_ratio(a['cpu'], b['cpu'])}, "
                f"requests per CPU-second {_ratio(a['per_cpu_second'], b['per_cpu_second'])}"
            )
    return lines


def measure_table(rounds: list[Round]) -> str:
    """The rows of issue 11's "measure" table that these rounds cover, as Markdown."""
    lines = ["| measure | this run | goal |", "|---|---|---|"]
    for round_ in rounds:
        rows = {name: latency.row() for name, latency in round_.latency.items()}
        added = f"{round_.round_trip_ms:g} ms added per database round trip"
        if "gateway" in rows and "floor" in rows:
            gateway, floor = rows["gateway"], rows["floor"]
            lines.append(
                f"| full dashboard, {added}, gateway p50 / hand-written `asyncio.gather` floor "
                f"p50 | {_ratio(gateway['p50'], floor['p50'])} (CPU {gateway['cpu']:.1f} ms "
                f"vs {floor['cpu']:.1f} ms per request) | ≤ x1.2 |"
            )
        if "gateway-http" in rows and "peer" in rows:
            served, peer = rows["gateway-http"], rows["peer"]
            lines.append(
                f"| dashboard throughput per CPU-second, {added}, gateway (uvicorn, 1 worker) "
                f"/ Apollo Server 4 peer | "
                f"{_ratio(served['per_cpu_second'], peer['per_cpu_second'])} "
                f"({served['per_cpu_second']:.0f} vs {peer['per_cpu_second']:.0f} requests "
                f"per CPU-second; p50 {served['p50']:.1f} vs {peer['p50']:.1f} ms) | ≥ x1 |"
            )
    return "\n".join(lines)


def report(
    args: argparse.Namespace,
    info: dict[str, str],
    rounds: list[Round],
    trips: dict[str, TripCounts],
    peaks: dict[str, float],
    steps: dict[str, float],
) -> str:
    lines = [
        "",
        f"machine: {info['cpus']} CPUs, {info['cpu']}, {info['memory']}; {info['python']}; "
        f"{info['postgres']}; mongo: {info['mongo']}; node: {info.get('node', 'not run')}; "
        f"loop: {args.loop}; load average before: {info['load']}",
        f"data: {info['trades']} trades; {args.runs} runs per variant after "
        f"{args.warmup} warm-up, interleaved; operationName "
        + ("sent" if not args.without_operation_name else "not sent")
        + f"; tracing {info.get('tracing', 'off')}",
    ]
    for round_ in rounds:
        lines += ["", *round_table(round_)]
    lines += [
        "",
        "issue 11, measured here:",
        measure_table(rounds),
        "",
        f"of the gateway's CPU per request, parsing the query takes {steps['parse']:.2f} ms "
        f"and validating it (standard rules) {steps['validate']:.2f} ms, on every request",
        "",
        "round trips per request (commands / statements, as tests/helpers.py counts them)",
        f"{'':<16}" + "".join(f"{source:>12}" for source in SOURCES) + f"{'total':>8}",
    ]
    for name in VARIANTS:
        counts = trips[name].per_source
        lines.append(
            f"{name:<16}"
            + "".join(f"{counts[source]:>12.1f}" for source in SOURCES)
            + f"{sum(counts.values()):>8.1f}"
            + ("" if trips[name].stable else "  (varied between requests)")
        )
    lines += [
        "",
        "PostgreSQL protocol round trips per request (Sync/Query messages), pool checkouts",
        f"{'':<16}{'trades':>10}{'analytics':>11}{'checkouts':>11}",
    ]
    for name in VARIANTS:
        wire, checkouts = trips[name].wire, trips[name].checkouts
        lines.append(
            f"{name:<16}{wire['trades']:>10.1f}{wire['analytics']:>11.1f}"
            f"{sum(checkouts.values()):>11.1f}"
        )
    lines += ["", "the median request's timeline (ms from its start: source sent-answered)"]
    for name in ("gateway", "floor"):
        elapsed, spans = trips[name].timeline
        timeline = ", ".join(f"{source} {start:.1f}-{end:.1f}" for source, start, end in spans)
        lines.append(f"{name:<16}{timeline}; done at {elapsed:.1f}")
    lines += [
        "",
        "tracemalloc peak per request (KiB, median): "
        + ", ".join(f"{name} {peaks[name]:.0f}" for name in VARIANTS),
        f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
    ]
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------


def enable_tracing() -> str:
    """Trace every request and source call. Spans are made, sampled and ended; with no
    span processor nothing is exported, so this is the tracing's own cost."""
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415 - optional

    from gateway.core import telemetry  # noqa: PLC0415

    telemetry.enable_tracing(TracerProvider())
    return "on (SDK, no exporter)"


def served_call(
    client: httpx.AsyncClient,
    url: str,
    token: str,
    *,
    operation_name: bool,
    query: str = DASHBOARD_QUERY,
    operation: str = "Dashboard",
) -> Call:
    """A POST of `query` (the dashboard's by default) to a served variant over real HTTP,
    or to an app over ASGI when `client` has that transport."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request: dict[str, str] = {"query": query}
    if operation_name:
        request["operationName"] = operation
    body = json.dumps(request).encode()

    async def call() -> bytes:
        response = await client.post(url, content=body, headers=headers)
        response.raise_for_status()
        return response.content

    return call


def peer_env(settings: Settings) -> dict[str, str]:
    """The peer's environment: the same databases and JWT settings as the gateway's."""
    secret = settings.jwt_secret.get_secret_value()
    return {
        "PATH": os.environ.get("PATH", ""),
        "MONGO_USER_URI": settings.mongo_user_uri,
        "MONGO_STRATEGY_URI": settings.mongo_strategy_uri,
        "MONGO_CREDENTIALS_URI": settings.mongo_credentials_uri,
        "TRADES_DATABASE_URL": node_postgres_url(settings.trades_database_url),
        "ANALYTICS_DATABASE_URL": node_postgres_url(settings.analytics_database_url),
        "JWT_SECRET": secret,
        "JWT_ISSUER": settings.jwt_issuer,
        "JWT_AUDIENCE": settings.jwt_audience,
    }


def served_env(settings: Settings) -> dict[str, str]:
    """`gateway serve`'s environment: these settings, this tree's code."""
    return {
        **settings_env(settings),
        "PYTHONPATH": str(ROOT),
        "GRAPHIQL": "false",
        "RATE_LIMIT_ENABLED": "false",
    }


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (27017 if "mongodb" in url else 5432)


@dataclass
class InProcess:
    """What the 0 ms round also measures on its in-process app."""

    steps: dict[str, float]
    peaks: dict[str, float]
    profile: str


async def timed_round(
    args: argparse.Namespace,
    bench: Bench,
    tokens: TokenService,
    token: str,
    round_trip_ms: float,
    workdir: Path,
) -> tuple[Round, InProcess | None]:
    """Every variant on apps and servers of its own, through latency proxies when
    `round_trip_ms`: the answers checked once, then timed interleaved."""
    operation_name = not args.without_operation_name
    folder = workdir / f"round-{round_trip_ms:g}ms"
    folder.mkdir()
    async with contextlib.AsyncExitStack() as stack:
        urls = bench.urls()
        if round_trip_ms:
            targets = [_host_port(urls[source]) for source in SOURCES]
            proxies = start_latency_proxies(targets, round_trip_ms, folder)
            stack.callback(stop, proxies.process)
            urls = {
                source: url_via(urls[source], port)
                for source, port in zip(SOURCES, proxies.ports, strict=True)
            }
        settings = bench.settings(urls=urls)
        app = create_app(settings)
        calls = await open_variants(stack, app, tokens, token, operation_name=operation_name)
        servers: list[Served] = []
        if not args.without_served:
            servers.append(start_gateway(served_env(settings), folder))
            stack.callback(stop, servers[-1].process)
            if not args.without_peer:
                servers.append(start_peer(peer_env(settings), folder))
                stack.callback(stop, servers[-1].process)
            await asyncio.gather(*(wait_until_answering(server) for server in servers))
        client = httpx.AsyncClient(timeout=30.0)
        stack.push_async_callback(client.aclose)
        clocks: dict[str, Callable[[], float]] = {}
        for server in servers:
            name = "gateway-http" if server.name == "gateway" else server.name
            calls[name] = served_call(client, server.url, token, operation_name=operation_name)
            clocks[name] = functools.partial(process_cpu, server.process.pid)
        check_same_answer({name: await call() for name, call in calls.items()})
        load = " ".join(f"{load:.2f}" for load in os.getloadavg())
        print(
            f"timing {args.runs} runs of each variant, {round_trip_ms:g} ms added per round trip…",
            file=sys.stderr,
        )
        latency = await time_variants(calls, args.runs, args.warmup, clocks)
        for server in servers:
            if server.process.poll() is not None:
                raise SystemExit(f"{server.name} exited:\n{server.stderr()[-3000:]}")
        extra = None
        if not round_trip_ms:
            in_process = {name: calls[name] for name in VARIANTS}
            extra = InProcess(
                steps=parse_and_validate(app),
                peaks=await memory_peaks(in_process, runs=20),
                profile=await profile(calls["gateway"], args.profile, top=35)
                if args.profile
                else "",
            )
    return Round(round_trip_ms, load, latency), extra


def prepare_peer() -> str:
    """Install the peer's packages if needed (before any timing); Node's version."""
    install_peer()
    return subprocess.run(
        ["node", "--version"],  # noqa: S607 - node from PATH, as the peer runs
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


async def run(args: argparse.Namespace, mongo_base: str, mongo_label: str) -> None:
    run_id = uuid.uuid4().hex[:8]
    info = await describe(mongo_label)
    if not args.without_served and not args.without_peer:
        info["node"] = prepare_peer()
    operation_name = not args.without_operation_name

    async with contextlib.AsyncExitStack() as stack:
        trades_url, analytics_url = await stack.enter_async_context(postgres_databases(run_id))
        bench = Bench(run_id, mongo_base, trades_url, analytics_url)
        settings = bench.settings()
        stack.push_async_callback(drop_mongo_databases, settings)
        tokens = TokenService(settings)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-bench-")))

        if args.tracing:
            info["tracing"] = enable_tracing()
        seed_app = create_app(settings)
        sources = await stack.enter_async_context(running(seed_app))
        user_id, trade_count = await seed(sources, args.trades_per_strategy)
        info["trades"] = str(trade_count)
        token = tokens.issue(user_id=user_id, token_version=0).token

        # Timed: apps whose clients carry no listeners at all, one round per latency.
        rounds, extra = [], None
        for round_trip_ms in args.latency_ms:
            round_, measured = await timed_round(args, bench, tokens, token, round_trip_ms, workdir)
            rounds.append(round_)
            extra = extra or measured
        if extra is None:
            raise SystemExit("--latency-ms must include 0 (the in-process measurements)")
        if extra.profile:
            print(extra.profile)

        # Counted: more apps on the same databases. The Mongo listener is registered
        # before their clients exist (PyMongo attaches listeners at client creation);
        # the last app's SQL goes through the counting proxy.
        spy = RoundTrips(enabled=False)
        monitoring.register(spy.mongo_listener)
        counted_app = create_app(settings)
        counted_calls = await open_variants(
            stack, counted_app, tokens, token, operation_name=operation_name, spy=spy
        )
        admin_parts = urlsplit(ADMIN_URL)
        wire = PgWireCounter(admin_parts.hostname or "127.0.0.1", admin_parts.port or 5432)
        port = await wire.start()
        stack.push_async_callback(wire.close)
        wire_app = create_app(bench.settings(via_port=port))
        wire_calls = await open_variants(
            stack, wire_app, tokens, token, operation_name=operation_name
        )
        db_names = {
            urlsplit(url).path.lstrip("/"): source
            for url, source in ((trades_url, "trades"), (analytics_url, "analytics"))
        }
        trips = await count_round_trips(
            counted_calls, wire_calls, spy, wire, args.count_runs, db_names
        )

    print(report(args, info, rounds, trips, extra.peaks, extra.steps))
    if args.json:
        write_json(args.json, info, args.runs, rounds, trips, extra)


def write_json(
    path: str,
    info: dict[str, str],
    runs: int,
    rounds: list[Round],
    trips: dict[str, TripCounts],
    extra: InProcess,
) -> None:
    with open(path, "w", encoding="utf-8") as out:  # noqa: PTH123
        json.dump(
            {
                "machine": info,
                "runs": runs,
                "rounds": [
                    {
                        "round_trip_ms": round_.round_trip_ms,
                        "load": round_.load,
                        "latency_ms": {
                            name: latency.row() for name, latency in round_.latency.items()
                        },
                    }
                    for round_ in rounds
                ],
                "parse_validate_ms": extra.steps,
                "round_trips": {
                    name: {
                        "per_source": trips[name].per_source,
                        "postgres_wire": trips[name].wire,
                        "pool_checkouts": trips[name].checkouts,
                    }
                    for name in VARIANTS
                },
                "tracemalloc_peak_kib": extra.peaks,
            },
            out,
            indent=2,
        )


async def drop_mongo_databases(settings: Settings) -> None:
    """Drop this run's Mongo databases (they matter on a real server given by URI)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_user_uri)
    try:
        for uri in (
            settings.mongo_user_uri,
            settings.mongo_strategy_uri,
            settings.mongo_credentials_uri,
        ):
            await client.drop_database(urlsplit(uri).path.lstrip("/"))
    finally:
        await client.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--runs", type=int, default=300, help="timed requests per variant")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests per variant")
    parser.add_argument(
        "--trades-per-strategy", type=int, default=180, help="the demo user has 24 strategies"
    )
    parser.add_argument(
        "--count-runs", type=int, default=10, help="requests per variant for round-trip counts"
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop (uvicorn uses uvloop when installed, as it is here)",
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile N gateway requests"
    )
    parser.add_argument(
        "--without-operation-name",
        action="store_true",
        help="send the query without 'operationName' (as curl users might)",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="trace every request and source call (an SDK provider that exports nowhere)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        nargs="+",
        default=[0.0, 2.0],
        metavar="MS",
        help="one timed round per value: MS added per database round trip (0: none; "
        "the in-process measurements need a 0 round)",
    )
    parser.add_argument(
        "--without-peer", action="store_true", help="leave the Node peer out (no Node needed)"
    )
    parser.add_argument(
        "--without-served",
        action="store_true",
        help="leave out every served variant (gateway-http and the peer)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if 0 not in args.latency_ms or any(ms < 0 for ms in args.latency_ms):
        parser.error("--latency-ms takes values of 0 or more, one of them 0")
    if args.runs < 2 or args.count_runs < 1:
        parser.error("--runs must be at least 2 and --count-runs at least 1")
    return args


def run_with_mongo(
    bench_run: Callable[[str, str], Coroutine[Any, Any, None]], loop: str = "uvloop"
) -> None:
    """`bench_run(mongo_base, mongo_label)` on `loop` (uvloop or asyncio), against
    MONGO_BENCH_URI or else an embedded Mongo-wire server started for it and stopped after."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        import uvloop  # noqa: PLC0415 - optional, as in uvicorn

        loop_factory = uvloop.new_event_loop
    server: EmbeddedMongo | None = None
    if uri := os.environ.get("MONGO_BENCH_URI"):
        mongo_base, label = uri, "MONGO_BENCH_URI"
    else:
        server = EmbeddedMongo(storage=None)
        server.start()
        mongo_base, label = f"mongodb://{server.host}:{server.port}", "embedded SecantusDB"
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(bench_run(mongo_base, label))
    finally:
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_with_mongo(functools.partial(run, args), args.loop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
