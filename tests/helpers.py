"""Spies and factories shared by the tests: one helper per operation, defaults plus overrides."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jwt
from argon2 import PasswordHasher
from fastapi import FastAPI
from pymongo import monitoring
from sqlalchemy import event

from datasources import MongoSource, Sources, SqlSource
from datasources import credentials as credentials_source
from datasources import strategies as strategies_source
from datasources import trades as trades_source
from datasources import users as users_source
from datasources.analytics import ActivityEventRecord, refresh_daily_metrics
from datasources.strategies import StrategyRecord
from datasources.trades import TradeRecord
from datasources.users import UserRecord
from gateway.app import create_app
from gateway.core.auth import TokenService, key_id
from gateway.core.crypto import SecretBox
from gateway.core.settings import Settings
from schema._ids import global_id, parse_global_id

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = [sys.executable, "-m", "gateway.cli"]
PASSWORD = "correct horse battery"
_PASSWORD_HASH = PasswordHasher().hash(PASSWORD)
NOW = datetime.now(UTC).replace(microsecond=0)

_NOT_ROUND_TRIPS = {"endSessions", "hello", "ismaster", "isMaster", "ping"}


@dataclass
class Span:
    """One command or statement: its source, when it started and ended (perf_counter), and
    for a Mongo command the collection it names."""

    source: str
    started: float
    ended: float | None = None
    collection: str | None = None


class _MongoListener(monitoring.CommandListener):
    def __init__(self, spy: RoundTrips) -> None:
        self.spy = spy
        self.open: dict[int, Span] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in _NOT_ROUND_TRIPS:
            return
        source = self.spy.mongo_databases.get(event.database_name)
        if source is not None and (span := self.spy.record(source)):
            named = event.command.get(event.command_name)
            span.collection = named if isinstance(named, str) else None
            self.open[event.request_id] = span

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if span := self.open.pop(event.request_id, None):
            span.ended = time.perf_counter()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if span := self.open.pop(event.request_id, None):
            span.ended = time.perf_counter()


@dataclass
class RoundTrips:
    """Counts the real round trips each source makes (PyMongo command monitoring and each
    SQL source's `statements` hook, which every statement passes, raw or through
    SQLAlchemy), when each started and ended, and SQL pool checkouts.

    The benchmark shares it (bench/dashboard.py), switching it off with `enabled`
    while it times requests.
    """

    spans: list[Span] = field(default_factory=list)
    checkouts: Counter[str] = field(default_factory=Counter)
    enabled: bool = True

    def __post_init__(self) -> None:
        self.mongo_listener = _MongoListener(self)
        self.mongo_databases: dict[str, str] = {}

    def record(self, source: str) -> Span | None:
        if not self.enabled:
            return None
        span = Span(source=source, started=time.perf_counter())
        self.spans.append(span)
        return span

    def reset(self) -> None:
        self.spans.clear()
        self.checkouts.clear()

    @property
    def counts(self) -> Counter[str]:
        return Counter(span.source for span in self.spans)

    def on(self, collection: str) -> int:
        """How many Mongo commands named `collection`."""
        return sum(span.collection == collection for span in self.spans)

    def watch(self, sources: Sources) -> None:
        """Count the round trips of every registered source: Mongo commands by database
        (the listener is registered globally), SQL statements by source."""
        for source in sources:
            if isinstance(source, MongoSource):
                self.mongo_databases[source.db.name] = source.name
            elif isinstance(source, SqlSource):
                self._listen(source)

    def _listen(self, source: SqlSource) -> None:
        name = source.name

        def started(statement: str) -> Callable[[], None] | None:
            span = self.record(name)
            if span is None:
                return None

            def ended() -> None:
                span.ended = time.perf_counter()

            return ended

        # Every statement of the source, raw or through SQLAlchemy (datasources/_sql_reads.py).
        source.statements.listen(started)

        @event.listens_for(source.engine.sync_engine.pool, "checkout")
        def checkout(dbapi_connection, record, proxy) -> None:
            if self.enabled:
                self.checkouts[name] += 1


class SecretsSpy:
    """Remembers the plaintext secrets the tests stored and every response body seen."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.leaks: list[str] = []
        self.responses = 0

    def add(self, *secrets: str) -> None:
        self.secrets.update(secrets)

    async def inspect(self, response: httpx.Response) -> None:
        body = (await response.aread()).decode(errors="replace")
        self.responses += 1
        self.leaks.extend(secret for secret in self.secrets if secret in body)

    def assert_no_leak(self) -> None:
        assert not self.leaks, f"secrets leaked in responses: {sorted(set(self.leaks))}"


def gid(record: Any) -> str:
    """The global id the API shows for a stored record (a user, strategy, trade or event)."""
    type_name = {
        UserRecord: "User",
        StrategyRecord: "Strategy",
        TradeRecord: "Trade",
        ActivityEventRecord: "ActivityEvent",
    }[type(record)]
    return str(global_id(type_name, record.id))


def key(api_id: str) -> str:
    """The database key of the object an API id names (the inverse of `gid`)."""
    parsed = parse_global_id(api_id)
    assert parsed is not None, f"not a global id: {api_id!r}"
    return parsed[1]


def token_for(settings: Settings, user: UserRecord) -> str:
    """A valid access token for `user`."""
    return TokenService(settings).issue(user_id=user.id, token_version=user.token_version).token


def signed_token(
    settings: Settings,
    claims: dict[str, Any],
    *,
    secret: str | None = None,
    algorithm: str = "HS256",
    kid: str | None = None,
) -> str:
    """A JWT of `claims` signed as the gateway signs (the key's `kid` in its header),
    with the current secret unless another is given."""
    key = secret or settings.jwt_secret.get_secret_value()
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid or key_id(key)})


async def make_user(sources: Sources, **overrides: Any) -> UserRecord:
    """Insert a user whose password is PASSWORD."""
    values: dict[str, Any] = {
        "email": f"user-{time.perf_counter_ns()}@example.com",
        "password_hash": _PASSWORD_HASH,
        "first_name": "Test",
        "last_name": "User",
        "phone": None,
    }
    values.update(overrides)
    return await users_source.insert_user(db=sources.users.db, **values)


async def signed_in(
    sources: Sources, settings: Settings, **overrides: Any
) -> tuple[UserRecord, str]:
    """A new user (see `make_user`) and a valid access token for it."""
    user = await make_user(sources, **overrides)
    return user, token_for(settings, user)


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    """The `data` of a response that must not carry errors."""
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


async def make_strategy(sources: Sources, user: UserRecord, **overrides: Any) -> StrategyRecord:
    """Insert a strategy of `user`."""
    values: dict[str, Any] = {
        "name": f"strategy-{time.perf_counter_ns()}",
        "code": "def on_tick(ctx, tick): pass",
        "status": "STOPPED",
        "instrument": "BTCUSDT",
        "broker": "binance",
        "environment": "TESTNET",
        "config": {"timeframe": "5m"},
    }
    values.update(overrides)
    return await strategies_source.insert_strategy(
        db=sources.strategies.db, user_id=user.id, **values
    )


def trade_row(strategy: StrategyRecord, **overrides: Any) -> dict[str, Any]:
    """The column values of one closed trade of `strategy`, with overrides."""
    entry = overrides.pop("entry_time", NOW - timedelta(hours=2))
    row: dict[str, Any] = {
        "user_id": strategy.user_id,
        "strategy_id": strategy.id,
        "strategy_name": strategy.name,
        "instrument": strategy.instrument or "BTCUSDT",
        "side": "BUY",
        "quantity": Decimal("0.5"),
        "entry_price": Decimal("100.00"),
        "exit_price": Decimal("110.00"),
        "entry_time": entry,
        "exit_time": entry + timedelta(minutes=30),
        "pnl": Decimal("5.00"),
        "fees": Decimal("0.10"),
        "status": "CLOSED",
        "broker": strategy.broker,
        "environment": strategy.environment,
    }
    row.update(overrides)
    return row


async def make_trades(sources: Sources, rows: list[dict[str, Any]]) -> None:
    """Insert trade rows (see `trade_row`)."""
    async with sources.trades.engine.begin() as conn:
        await trades_source.insert_trades(conn=conn, rows=rows)


def suite_box() -> SecretBox:
    """The SecretBox of the suite's settings (keys from the environment, or the dev default)."""
    return SecretBox.from_settings(Settings(_env_file=None, gateway_env="test"))


async def make_credentials(
    sources: Sources,
    user: UserRecord,
    spy: SecretsSpy | None = None,
    *,
    box: SecretBox | None = None,
    **overrides: Any,
) -> dict[str, str]:
    """Store credentials with distinctive secrets, sealed by the write `saveCredentials`
    uses (`upsert_credentials`); returns the plaintexts (and tells the spy)."""
    tag = user.id[-6:]
    secrets = {
        "apiKey": f"APIKEY-{tag}-plaintext-9f1c",
        "apiSecret": f"APISECRET-{tag}-plaintext",
        "accessToken": f"ACCESSTOKEN-{tag}-plaintext",
    }
    secrets.update(overrides.pop("secrets", {}))
    if spy is not None:
        spy.add(*secrets.values())
    await credentials_source.upsert_credentials(
        db=sources.credentials.db,
        box=box or suite_box(),
        user_id=user.id,
        broker=overrides.get("broker", "binance"),
        changes={"clientId": overrides.get("client_id", "client-1"), **secrets},
    )
    return secrets


async def refresh_analytics(sources: Sources) -> None:
    """Roll the trades up into the daily metrics."""
    await refresh_daily_metrics(
        trades_engine=sources.trades.engine, analytics_engine=sources.analytics.engine
    )


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    """POST a GraphQL request and return the JSON body (any HTTP status)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    return body_of(response)


def body_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a `/graphql` response, less what every one carries in `extensions`:
    the request id (checked here: the same as its X-Request-Id header) and, for a query that
    ran, its cost (checked: within the budget; tests/schema/test_cost.py checks the figure)."""
    body: dict[str, Any] = response.json()
    extensions = body.get("extensions", {})
    assert extensions.get("requestId") == response.headers["x-request-id"], body
    del extensions["requestId"]
    if (cost := extensions.pop("cost", None)) is not None:
        assert 0 <= cost["requested"] <= cost["budget"], cost
    if not extensions:
        del body["extensions"]
    return body


def error_codes(body: dict[str, Any]) -> list[str]:
    """The extensions.code of every error in a response body."""
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def environment(settings: Settings) -> dict[str, str]:
    """The process environment that points the gateway at the suite's databases."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MONGO_")}
    env.update(
        GATEWAY_ENV="test",
        MONGO_USER_URI=settings.mongo_user_uri,
        MONGO_STRATEGY_URI=settings.mongo_strategy_uri,
        MONGO_CREDENTIALS_URI=settings.mongo_credentials_uri,
        TRADES_DATABASE_URL=settings.trades_database_url,
        ANALYTICS_DATABASE_URL=settings.analytics_database_url,
        JWT_SECRET=settings.jwt_secret.get_secret_value(),
    )
    return env


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `gateway ARGS...` against the suite's databases and wait for it."""
    return subprocess.run(
        [*GATEWAY, *args],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def every_source_timeout(seconds: float) -> dict[str, float]:
    """Settings fields giving every kind of source call the same deadline."""
    return {f"source_{kind}_timeout_seconds": seconds for kind in ("lookup", "aggregate", "write")}


def every_source_timeout_env(seconds: float) -> dict[str, str]:
    """The environment of `every_source_timeout`, for a served gateway."""
    return {name.upper(): str(value) for name, value in every_source_timeout(seconds).items()}


class AppClient(httpx.AsyncClient):
    """A client of an app in-process (ASGI); `app` is that app."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")
        self.app = app


@asynccontextmanager
async def app_client(settings: Settings, **overrides: Any) -> AsyncIterator[AppClient]:
    """A client of an app built with these settings changed (its own source clients), its
    lifespan running."""
    application = create_app(settings.model_copy(update=overrides))
    async with application.router.lifespan_context(application), AppClient(application) as http:
        yield http
