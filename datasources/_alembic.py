"""Versioned changes of a SQL source, through Alembic: upgrade, downgrade, current, history.

Each versioned SQL source has its own script directory (datasources/migrations/<source>)
and its own version table (`alembic_version_<source>`), so two sources may share one
database. Alembic runs from here, without an env.py or an alembic.ini: the engine is the
source's own.

Every upgrade or downgrade is one transaction that first takes the database's migration
lock: a transaction-scoped advisory lock on PostgreSQL, `BEGIN IMMEDIATE` (the write lock)
on SQLite. A second process waits, then finds the work done. Tables created by the
unversioned `migrate` of before (tables there, no version recorded) are adopted: the old
create-all runs (a no-op on a complete database), then the first version is stamped.

Imported only by the migration commands (`SqlSource.migrate` and the like), so Alembic
stays out of a serving process's imports.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources._versions import BASE, MigrationError, MigrationStatus, Version

KIND = "alembic"
# How long a SQLite migration keeps trying while another process holds the file's lock.
SQLITE_LOCK_WAIT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class SqlVersions:
    """What versions one SQL source: its scripts, version table, tables and adoption step."""

    source: str
    directory: Path
    metadata: MetaData
    # Brings tables created before versions to the first version's shape (create-all and
    # the fixes the unversioned `migrate` made); run in the migration's transaction.
    adopt: Callable[[Connection], None]

    @property
    def version_table(self) -> str:
        """The table holding the source's version (one per source: two may share a database)."""
        return f"alembic_version_{self.source}"

    @property
    def script(self) -> ScriptDirectory:
        """The source's Alembic script directory."""
        return _script_directory(str(self.directory))


@cache
def _script_directory(directory: str) -> ScriptDirectory:
    return ScriptDirectory(directory)


def version_ids(versions: SqlVersions) -> tuple[str, ...]:
    """The source's version ids, oldest first (one line of descent: no branches)."""
    script = versions.script
    heads = script.get_heads()
    if len(heads) > 1:
        raise MigrationError(f"{versions.source}: several heads {heads}: merge them first")
    return tuple(reversed([rev.revision for rev in script.walk_revisions()]))


def _lock_key(versions: SqlVersions) -> int:
    digest = hashlib.blake2b(versions.version_table.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _context(conn: Connection, versions: SqlVersions) -> MigrationContext:
    return MigrationContext.configure(conn, opts={"version_table": versions.version_table})


def _has_tables(conn: Connection, versions: SqlVersions) -> bool:
    present = set(inspect(conn).get_table_names())
    return any(table.name in present for table in versions.metadata.sorted_tables)


def _current(conn: Connection, versions: SqlVersions) -> str | None:
    heads = _context(conn, versions).get_current_heads()
    known = set(version_ids(versions))
    unknown = [head for head in heads if head not in known]
    if unknown:
        raise MigrationError(
            f"{versions.source}: the database is at version {', '.join(unknown)}, which this "
            "gateway does not know (a newer gateway migrated it): roll back with that "
            "gateway, or upgrade this one"
        )
    return heads[0] if heads else None


def _status(conn: Connection, versions: SqlVersions) -> MigrationStatus:
    ids = version_ids(versions)
    current = _current(conn, versions)
    applied = ids[: ids.index(current) + 1] if current else ()
    return MigrationStatus(
        source=versions.source,
        kind=KIND,
        current=current,
        head=ids[-1] if ids else None,
        pending=tuple(v for v in ids if v not in applied),
        adoptable=current is None and _has_tables(conn, versions),
    )


def _run(conn: Connection, versions: SqlVersions, steps: Callable[[Any, Any], Any]) -> None:
    """Run Alembic's steps (`steps(current, context)`) within the caller's transaction."""
    with EnvironmentContext(Config(), versions.script, fn=steps) as environment:
        environment.configure(
            connection=conn,
            target_metadata=versions.metadata,
            version_table=versions.version_table,
        )
        environment.run_migrations()


def _upgrade(conn: Connection, versions: SqlVersions) -> list[str]:
    before = _status(conn, versions)
    if before.adoptable:
        versions.adopt(conn)
        _context(conn, versions).stamp(versions.script, version_ids(versions)[0])
    after = _status(conn, versions)
    if after.pending:
        script = versions.script
        _run(conn, versions, lambda current, _context: script._upgrade_revs("heads", current))
        after = _status(conn, versions)
    return [version for version in before.pending if version not in after.pending]


def _downgrade(conn: Connection, versions: SqlVersions, to: str) -> list[str]:
    ids = version_ids(versions)
    if to != BASE and to not in ids:
        raise MigrationError(
            f"{versions.source}: no version {to!r} (known: {', '.join([BASE, *ids])})"
        )
    current = _current(conn, versions)
    applied = list(ids[: ids.index(current) + 1]) if current else []
    keep = 0 if to == BASE else ids.index(to) + 1
    undone = list(reversed(applied[keep:]))
    if undone:
        script = versions.script
        _run(conn, versions, lambda head, _context: script._downgrade_revs(to, head))
    return undone


# Alembic's `op` and `context` are process-wide proxies, set while one run lasts: two runs
# of one process (two sources, or two `migrate` calls at once) take turns.
_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _turn() -> asyncio.Lock:
    return _TURNS.setdefault(asyncio.get_running_loop(), asyncio.Lock())


async def _locked(
    engine: AsyncEngine, versions: SqlVersions, work: Callable[[Connection], Any]
) -> Any:
    """Run `work` in one transaction that holds the database's migration lock."""
    if engine.dialect.name != "sqlite":
        return await _attempt(engine, versions, work)
    # SQLite refuses at once, without waiting out busy_timeout, a connection that would
    # deadlock: one switching a new file to WAL (`create_engine`'s pragma) while another
    # process holds the write lock. Nothing was done then: try again until it is free.
    give_up = time.monotonic() + SQLITE_LOCK_WAIT_SECONDS
    while True:
        try:
            return await _attempt(engine, versions, work)
        except OperationalError as exc:
            if "database is locked" not in str(exc) or time.monotonic() > give_up:
                raise
        await asyncio.sleep(0.05 + random.random() * 0.1)  # noqa: S311 - jitter, not crypto


async def _attempt(
    engine: AsyncEngine, versions: SqlVersions, work: Callable[[Connection], Any]
) -> Any:
    async with _turn(), engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(versions)}
            )
        elif conn.dialect.name == "sqlite":
            # The write lock at once (busy_timeout waits for another process's): two
            # processes never both read "not migrated" and both create the tables.
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            result = await conn.run_sync(work)
        except CommandError as exc:
            await conn.rollback()
            raise MigrationError(f"{versions.source}: {exc}") from exc
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
        return result


async def upgrade(engine: AsyncEngine, versions: SqlVersions) -> list[str]:
    """Apply every version not applied yet (adopting tables from before versions); returns
    the versions applied."""
    done: list[str] = await _locked(engine, versions, lambda conn: _upgrade(conn, versions))
    return done


async def downgrade(engine: AsyncEngine, versions: SqlVersions, *, to: str) -> list[str]:
    """Undo the applied versions after `to` (`base`: every one), newest first; returns those
    undone."""
    undone: list[str] = await _locked(engine, versions, lambda conn: _downgrade(conn, versions, to))
    return undone


async def status(engine: AsyncEngine, versions: SqlVersions) -> MigrationStatus:
    """Where the source's database stands (read only, no lock)."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: _status(sync, versions))


async def history(engine: AsyncEngine, versions: SqlVersions) -> list[Version]:
    """Every version, oldest first, with whether it is applied."""
    found = await status(engine, versions)
    script = versions.script
    return [
        Version(rev, str(script.get_revision(rev).doc or ""), rev not in found.pending)
        for rev in version_ids(versions)
    ]


def _own_tables(versions: SqlVersions) -> Callable[..., bool]:
    names = {table.name for table in versions.metadata.sorted_tables}

    def include(_obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        # The database may hold another source's tables and version tables.
        if type_ == "table" and reflected and compare_to is None:
            return name in names
        return True

    return include


def _differences(conn: Connection, versions: SqlVersions) -> list[Any]:
    context = MigrationContext.configure(
        conn,
        opts={
            "version_table": versions.version_table,
            "include_object": _own_tables(versions),
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    return list(compare_metadata(context, versions.metadata))


async def differences(engine: AsyncEngine, versions: SqlVersions) -> list[Any]:
    """What Alembic's autogenerate finds between the database and the table definitions
    (`metadata`): empty when the migrations applied produce exactly the tables declared."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: _differences(sync, versions))
