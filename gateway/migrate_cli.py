"""`gateway migrate`: upgrade every source, show where each stands, roll back.

    gateway migrate                        every source to its newest version
    gateway migrate status                 each source's current version and what is pending
    gateway migrate history                each source's versions, applied or not
    gateway migrate down --to REV [--source NAME ...]

SQL sources are versioned by Alembic, Mongo sources in their `schema_migrations`
collection (datasources/migrations); README, "Migrations".
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

# Imported by every `gateway` command's parser, `serve` among them: what the commands need
# is imported when they run (tests/unit/test_cold_start.py).
if TYPE_CHECKING:
    from rich.console import Console

    from datasources import MigrationStatus, Version
    from gateway.core.settings import Settings


# The sources whose rollbacks drop indexes (datasources/migrations/<source>.py), not data.
MONGO_SOURCES = ("users", "strategies", "credentials")


@cache
def console() -> Console:
    """Where the commands write to a person: stderr, through rich."""
    from rich.console import Console  # noqa: PLC0415 - see the imports above

    return Console(stderr=True)


def _failures() -> tuple[type[Exception], ...]:
    """What the commands report instead of a traceback: a version problem, a source down."""
    from datasources import MigrationError  # noqa: PLC0415 - see the imports above
    from gateway.core.errors import Conflict, SourceUnavailable  # noqa: PLC0415

    # Conflict: a unique index that the data already breaks could not be built.
    return (MigrationError, SourceUnavailable, Conflict)


def _version(version: str | None) -> str:
    return version or "base"


async def _upgrade(settings: Settings) -> list[tuple[MigrationStatus, MigrationStatus]]:
    from datasources import Sources  # noqa: PLC0415 - see the imports above

    async with Sources.open(settings) as sources:
        before = await sources.migration_status()
        await sources.migrate()
        return list(zip(before, await sources.migration_status(), strict=True))


def cmd_migrate(settings: Settings) -> int:
    """Bring every source to its newest version (adopting databases from before versions);
    safe to run again, and by two processes at once."""
    try:
        changes = asyncio.run(_upgrade(settings))
    except _failures() as exc:
        console().print(f"[red]not migrated[/red]: {exc}", highlight=False)
        return 1
    for before, after in changes:
        if after.kind == "unversioned":
            line = "unversioned: missing tables and indexes created"
        elif before.adoptable:
            line = f"adopted at {_version(after.current)} (created before versions)"
        elif before.current == after.current:
            line = f"{_version(after.current)}, up to date"
        else:
            line = f"{_version(before.current)} -> {_version(after.current)}"
        console().print(f"  {after.source}: {line}", highlight=False)
    console().print("[green]migrated[/green]: every source is at its newest version")
    return 0


async def _status(settings: Settings) -> list[MigrationStatus]:
    from datasources import Sources  # noqa: PLC0415 - see the imports above

    async with Sources.open(settings) as sources:
        return await sources.migration_status()


def cmd_status(settings: Settings) -> int:
    """Print each source's version: source, kind, current, newest, state (tab-separated)."""
    try:
        found = asyncio.run(_status(settings))
    except _failures() as exc:
        console().print(f"[red]{exc}[/red]", highlight=False)
        return 1
    for status in found:
        sys.stdout.write(
            f"{status.source}\t{status.kind}\t{_version(status.current)}\t"
            f"{_version(status.head)}\t{status.state}\n"
        )
    return 0


async def _history(settings: Settings) -> dict[str, list[Version]]:
    from datasources import Sources, Versioned  # noqa: PLC0415 - see the imports above

    async with Sources.open(settings) as sources:
        return {
            source.name: await source.history()
            for source in sources
            if isinstance(source, Versioned)
        }


def cmd_history(settings: Settings) -> int:
    """Print every source's versions, oldest first: source, version, applied, description."""
    try:
        found = asyncio.run(_history(settings))
    except _failures() as exc:
        console().print(f"[red]{exc}[/red]", highlight=False)
        return 1
    for source, versions in found.items():
        for version in versions:
            applied = "applied" if version.applied else "pending"
            sys.stdout.write(f"{source}\t{version.id}\t{applied}\t{version.description}\n")
    return 0


async def _downgrade(
    settings: Settings, to: str, names: Sequence[str], *, drop_data: bool
) -> dict[str, tuple[str, ...]]:
    from datasources import Sources  # noqa: PLC0415 - see the imports above

    async with Sources.open(settings) as sources:
        return await sources.downgrade(to, names=names, drop_data=drop_data)


def cmd_down(settings: Settings, to: str, names: Sequence[str], *, drop_data: bool) -> int:
    """Roll back to version REV (`base`: before the first) the sources named, or all. Undoing
    a SQL version drops tables or columns and their rows: refused without --drop-data."""
    try:
        undone = asyncio.run(_downgrade(settings, to, names, drop_data=drop_data))
    except _failures() as exc:
        console().print(f"[red]not rolled back[/red]: {exc}", highlight=False)
        return 1
    for source, versions in undone.items():
        done = f"undid {', '.join(versions)}" if versions else f"nothing after {to} to undo"
        console().print(f"  {source}: {done}", highlight=False)
    if any(undone.get(name) for name in MONGO_SOURCES):
        console().print(
            "[yellow]warning[/yellow]: the Mongo sources rolled back lost their indexes, "
            "unique ones among them: run `gateway migrate` before serving again",
            highlight=False,
        )
    console().print(f"[green]rolled back[/green] to {to}", highlight=False)
    return 0


def add_migrate_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """`gateway migrate` and its subcommands (dispatched by `run_migrate`)."""
    migrate = commands.add_parser("migrate", help=cmd_migrate.__doc__)
    steps = migrate.add_subparsers(dest="migrate_command", required=False)
    steps.add_parser("status", help=cmd_status.__doc__)
    steps.add_parser("history", help=cmd_history.__doc__)
    down = steps.add_parser("down", help=cmd_down.__doc__)
    down.add_argument(
        "--to",
        required=True,
        metavar="REV",
        help="a version (0001, ...), or base: before the first",
    )
    down.add_argument(
        "--drop-data",
        action="store_true",
        help="allow undoing SQL versions, whose down steps drop tables or columns and their "
        "rows (back up first)",
    )
    down.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME",
        help="only this source (repeatable); every versioned source without it",
    )
    return migrate


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch `gateway migrate [status|history|down]`."""
    # Alembic's own INFO lines ("Will assume non-transactional DDL", its plugins) describe
    # its internals, not what was done: the commands print that.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    command = args.migrate_command
    if command == "status":
        return cmd_status(settings)
    if command == "history":
        return cmd_history(settings)
    if command == "down":
        return cmd_down(settings, args.to, args.source, drop_data=args.drop_data)
    return cmd_migrate(settings)
