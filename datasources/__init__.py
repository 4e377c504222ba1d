"""The five databases behind the gateway: one module per source, each with its loaders.

`Sources` holds the long-lived clients (opened once per process); `Loaders`
is the per-request set of DataLoaders over them, bound to the viewer's scope.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources import analytics, credentials, idempotency, strategies, trades, users
from datasources._batch import Page, Scope
from datasources._guard import guard
from datasources._mongo import Document, client_key, get_database, open_client
from datasources._sql import create_engine
from datasources.analytics import AnalyticsLoaders
from datasources.credentials import CredentialsLoaders
from datasources.strategies import StrategyLoaders
from datasources.trades import TradeLoaders
from datasources.users import UserLoaders
from gateway.errors import GatewayError
from gateway.settings import Settings

__all__ = ["Loaders", "Page", "Scope", "SourceStatus", "Sources"]

SOURCE_NAMES = ("users", "strategies", "credentials", "trades", "analytics")


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source's answer to a readiness ping."""

    name: str
    ok: bool
    latency_ms: float
    error: str | None = None


@dataclass(slots=True)
class Sources:
    """The long-lived clients of the five databases."""

    users: AsyncDatabase[Document]
    strategies: AsyncDatabase[Document]
    credentials: AsyncDatabase[Document]
    trades: AsyncEngine
    analytics: AsyncEngine
    mongo_clients: tuple[AsyncMongoClient[Document], ...]
    timeout: float

    @classmethod
    def open(cls, settings: Settings) -> Sources:
        """Create every client; connections are made lazily, on first use."""
        timeout = settings.source_timeout_seconds
        clients: dict[str, AsyncMongoClient[Document]] = {}

        def database(uri: str) -> AsyncDatabase[Document]:
            # Sources on one server share a client and so its connection pool.
            client = clients.setdefault(client_key(uri), open_client(uri, timeout=timeout))
            return get_database(client, uri)

        user_db = database(settings.mongo_user_uri)
        strategy_db = database(settings.mongo_strategy_uri)
        credentials_db = database(settings.mongo_credentials_uri)
        trades_engine = create_engine(
            settings.trades_database_url, pool_size=settings.sql_pool_size
        )
        analytics_engine = (
            trades_engine
            if settings.analytics_database_url == settings.trades_database_url
            else create_engine(settings.analytics_database_url, pool_size=settings.sql_pool_size)
        )
        return cls(
            users=user_db,
            strategies=strategy_db,
            credentials=credentials_db,
            trades=trades_engine,
            analytics=analytics_engine,
            mongo_clients=tuple(clients.values()),
            timeout=timeout,
        )

    async def __aenter__(self) -> Sources:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every client and dispose of the SQL pools."""
        for client in self.mongo_clients:
            await client.close()
        await self.trades.dispose()
        if self.analytics is not self.trades:
            await self.analytics.dispose()

    async def migrate(self) -> None:
        """Create the Mongo indexes and the SQL tables and indexes; idempotent."""
        await users.ensure_indexes(db=self.users)
        await strategies.ensure_indexes(db=self.strategies)
        await credentials.ensure_indexes(db=self.credentials)
        await idempotency.ensure_indexes(db=self.strategies)
        await idempotency.ensure_indexes(db=self.credentials)
        async with self.trades.begin() as conn:
            await conn.run_sync(trades.metadata.create_all)
        async with self.analytics.begin() as conn:
            await conn.run_sync(analytics.metadata.create_all)

    async def ping(self) -> list[SourceStatus]:
        """Ping every source concurrently, with its latency."""
        checks: dict[str, Callable[[], Awaitable[object]]] = {
            "users": lambda: self.users.command("ping"),
            "strategies": lambda: self.strategies.command("ping"),
            "credentials": lambda: self.credentials.command("ping"),
            "trades": lambda: _sql_ping(self.trades),
            "analytics": lambda: _sql_ping(self.analytics),
        }
        return list(
            await asyncio.gather(*(self._ping_one(name, call) for name, call in checks.items()))
        )

    async def _ping_one(self, name: str, call: Callable[[], Awaitable[object]]) -> SourceStatus:
        started = time.perf_counter()
        try:
            async with guard(name, timeout=self.timeout):
                await call()
        except GatewayError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return SourceStatus(name, ok=False, latency_ms=round(elapsed, 2), error=exc.code)
        elapsed = (time.perf_counter() - started) * 1000
        return SourceStatus(name, ok=True, latency_ms=round(elapsed, 2))

    def loaders(self, scope: Scope) -> Loaders:
        """A fresh set of loaders for one request, reading only within `scope`."""
        return Loaders(
            users=UserLoaders(self.users, scope, self.timeout),
            strategies=StrategyLoaders(self.strategies, scope, self.timeout),
            credentials=CredentialsLoaders(self.credentials, scope, self.timeout),
            trades=TradeLoaders(_reader(self.trades), scope, self.timeout),
            analytics=AnalyticsLoaders(_reader(self.analytics), scope, self.timeout),
        )


def _reader(engine: AsyncEngine) -> AsyncEngine:
    # Loaders send one SELECT per connection: in autocommit, without the BEGIN and
    # ROLLBACK round trips an implicit transaction would add around it.
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def _sql_ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@dataclass(frozen=True, slots=True)
class Loaders:
    """One request's DataLoaders, one group per source."""

    users: UserLoaders
    strategies: StrategyLoaders
    credentials: CredentialsLoaders
    trades: TradeLoaders
    analytics: AnalyticsLoaders
