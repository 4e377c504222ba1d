"""The five databases behind the gateway: one module per source, each with its loaders.

Every database is a `Source` (datasources/_source.py): one object of one shape,
mapping its own driver errors at its boundary. `Sources` registers each once
(`all`) and derives what is done for every source from that list: readiness
pings, migration, shutdown, account deletion (resolvers/deletion.py) and the
tests' cleanup. `Loaders` is the per-request set of DataLoaders over them,
bound to the viewer's scope.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources._batch import Page, Scope
from datasources._fields import StoredField
from datasources._mongo import Document, MongoSource, client_key, now, open_client
from datasources._source import (
    CallKind,
    CallLog,
    Deadlines,
    Shared,
    Source,
    SourceBase,
    SourceCalls,
    SourceLimits,
    current_calls,
    deadline,
    detached,
    observe,
)
from datasources._sql import SqlSource, create_engine, sql_ids
from datasources._versions import BASE, MigrationError, MigrationStatus, Version, Versioned
from datasources.analytics import AnalyticsLoaders, AnalyticsSource
from datasources.credentials import CredentialsLoaders, CredentialsSource
from datasources.strategies import StrategiesSource, StrategyLoaders
from datasources.trades import TradeLoaders, TradesSource
from datasources.users import UserLoaders, UsersSource
from gateway.core.errors import GatewayError
from gateway.core.settings import Settings, parse_source_timeouts

M = TypeVar("M", bound=MongoSource)
Q = TypeVar("Q", bound=SqlSource)

__all__ = [
    "CallKind",
    "CallLog",
    "Deadlines",
    "Document",
    "Loaders",
    "MigrationError",
    "MigrationStatus",
    "MongoSource",
    "Page",
    "Scope",
    "Shared",
    "Source",
    "SourceBase",
    "SourceCalls",
    "SourceLimits",
    "SourceStatus",
    "Sources",
    "SqlSource",
    "StoredField",
    "Version",
    "Versioned",
    "current_calls",
    "deadline",
    "detached",
    "now",
    "observe",
    "sql_ids",
]


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source's answer to a readiness ping."""

    name: str
    ok: bool
    latency_ms: float
    error: str | None = None
    breaker: str = "closed"


@dataclass(frozen=True, slots=True)
class Loaders:
    """One request's DataLoaders, one group per source."""

    users: UserLoaders
    strategies: StrategyLoaders
    credentials: CredentialsLoaders
    trades: TradeLoaders
    analytics: AnalyticsLoaders


class _Clients:
    """The clients of one `Sources.open`, and the sources over them: Mongo sources on one
    server share a client, SQL sources with one URL share an engine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool_size = settings.sql_pool_size
        self.mongo: dict[str, Shared[AsyncMongoClient[Document]]] = {}
        self.sql: dict[str, Shared[AsyncEngine]] = {}

    def limits(self, source: str) -> SourceLimits:
        """The limits of the source named `source`, from the settings."""
        return SourceLimits(
            deadlines=Deadlines(**self.settings.source_deadlines(source)),
            breaker_failures=self.settings.source_breaker_failures,
            breaker_cooldown_seconds=self.settings.source_breaker_cooldown_seconds,
            concurrency=self.settings.source_concurrency,
        )

    def mongo_source(self, kind: type[M], uri: str) -> M:
        """A Mongo source of `kind` in the database of `uri`."""
        limits = self.limits(kind.name)
        key = client_key(uri)
        if key not in self.mongo:
            # The client's own connect and selection timeouts only back up the deadlines.
            client = open_client(uri, timeout=limits.deadlines.longest)
            self.mongo[key] = Shared(client, lambda c: c.close())
        return kind(self.mongo[key], uri, limits=limits)

    def sql_source(self, kind: type[Q], url: str) -> Q:
        """A SQL source of `kind` in the database of `url`."""
        if url not in self.sql:
            self.sql[url] = Shared(
                create_engine(url, pool_size=self.pool_size), lambda e: e.dispose()
            )
        return kind(self.sql[url], limits=self.limits(kind.name))


@dataclass(slots=True)
class Sources:
    """Every source, registered once; the five the gateway reads also by name."""

    users: UsersSource
    strategies: StrategiesSource
    credentials: CredentialsSource
    trades: TradesSource
    analytics: AnalyticsSource
    extra: list[Source] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings) -> Sources:
        """Create every client; connections are made lazily, on first use."""
        clients = _Clients(settings)
        named = {kind.name for kind in (UsersSource, StrategiesSource, CredentialsSource)}
        named |= {TradesSource.name, AnalyticsSource.name}
        unknown = {name for name, _ in parse_source_timeouts(settings.source_timeouts)} - named
        if unknown:
            raise ValueError(
                f"SOURCE_TIMEOUTS names no source: {', '.join(sorted(unknown))} "
                f"(the sources: {', '.join(sorted(named))})"
            )
        return cls(
            users=clients.mongo_source(UsersSource, settings.mongo_user_uri),
            strategies=clients.mongo_source(StrategiesSource, settings.mongo_strategy_uri),
            credentials=clients.mongo_source(CredentialsSource, settings.mongo_credentials_uri),
            trades=clients.sql_source(TradesSource, settings.trades_database_url),
            analytics=clients.sql_source(AnalyticsSource, settings.analytics_database_url),
        )

    @property
    def all(self) -> tuple[Source, ...]:
        """The registry: every source, in the order of the README's table."""
        named: tuple[Source, ...] = (
            self.users,
            self.strategies,
            self.credentials,
            self.trades,
            self.analytics,
        )
        return (*named, *self.extra)

    def register(self, source: Source) -> None:
        """Add a source: it is pinged, migrated, closed, cleared and forgets deleted users
        like the others."""
        if any(known.name == source.name for known in self.all):
            raise ValueError(f"a source named {source.name!r} is registered already")
        self.extra.append(source)

    def __iter__(self) -> Iterator[Source]:
        return iter(self.all)

    async def __aenter__(self) -> Sources:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every source (shared clients and pools once, with the last of them); one
        failing to close does not keep the others open."""
        failures: list[BaseException] = []
        for source in self.all:
            try:
                await source.close()
            except Exception as exc:  # noqa: BLE001 - collected, the first one re-raised below
                failures.append(exc)
        if failures:
            raise failures[0]

    async def migrate(self) -> None:
        """Bring every source to its newest version (README, "Migrations"); idempotent."""
        for source in self.all:
            await source.migrate()

    async def migration_status(self) -> list[MigrationStatus]:
        """Every source's applied and pending versions (an unversioned one says so)."""
        found = []
        for source in self.all:
            if isinstance(source, Versioned):
                found.append(await source.migration_status())
            else:
                found.append(MigrationStatus(source.name, "unversioned", None, None))
        return found

    async def downgrade(
        self, to: str, *, names: Sequence[str] = (), drop_data: bool = False
    ) -> dict[str, tuple[str, ...]]:
        """Undo, in each source named (none: every versioned one), the versions after `to`
        (`base`: every one), the last source first; returns each one's versions undone. `to`
        is checked against every source before anything is undone.

        A SQL source's down steps drop tables or columns, and their rows with them: undoing
        any is refused unless `drop_data` says so (a Mongo source's drop indexes only)."""
        chosen = [s for s in self.all if isinstance(s, Versioned) and s.versions()]
        known = {source.name for source in chosen}
        unknown = sorted(set(names) - known)
        if unknown:
            raise MigrationError(
                f"no versioned source named {', '.join(unknown)} (the sources: "
                f"{', '.join(sorted(known))})"
            )
        if names:
            chosen = [source for source in chosen if source.name in names]
        missing = [s.name for s in chosen if to != BASE and to not in s.versions()]
        if missing:
            raise MigrationError(f"no version {to!r} in {', '.join(missing)}; nothing was undone")
        if not drop_data:
            losing = [
                f"{source.name} ({', '.join(undone)})"
                for source in chosen
                if isinstance(source, SqlSource) and (undone := await _undone(source, to))
            ]
            if losing:
                raise MigrationError(
                    f"undoing {'; '.join(losing)} drops tables or columns and the rows in "
                    "them: back the databases up, then pass --drop-data; nothing was undone"
                )
        return {source.name: await source.downgrade(to) for source in reversed(chosen)}

    async def clear(self) -> None:
        """Empty every source (tests only)."""
        for source in self.all:
            await source.clear()

    async def ping(self) -> list[SourceStatus]:
        """Ping every source concurrently, with its latency."""
        return list(await asyncio.gather(*(_ping(source) for source in self.all)))

    def loaders(self, scope: Scope) -> Loaders:
        """A fresh set of loaders for one request, reading only within `scope`."""
        return Loaders(
            users=self.users.loaders(scope),
            strategies=self.strategies.loaders(scope),
            credentials=self.credentials.loaders(scope),
            trades=self.trades.loaders(scope),
            analytics=self.analytics.loaders(scope),
        )


async def _undone(source: Versioned, to: str) -> list[str]:
    """The applied versions of `source` that rolling back to `to` would undo."""
    versions = await source.history()
    ids = [version.id for version in versions]
    after = 0 if to == BASE else ids.index(to) + 1
    return [version.id for version in versions[after:] if version.applied]


async def _ping(source: Source) -> SourceStatus:
    started = time.perf_counter()
    error: str | None = None
    try:
        await source.ping()
    except GatewayError as exc:
        error = exc.code
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    return SourceStatus(
        source.name, ok=error is None, latency_ms=elapsed, error=error, breaker=source.breaker.state
    )
