"""What every versioned source answers about its schema versions, whatever keeps them.

SQL sources keep theirs with Alembic (datasources/_alembic.py, an `alembic_version_<source>`
table); Mongo sources in a `schema_migrations` collection (datasources/_mongo_versions.py).
Versions are numbered per source (`0001`, `0002`, ...); `base` is before the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

# The version before the first: what `gateway migrate down --to base` leaves.
BASE = "base"


class MigrationError(Exception):
    """Raised when a migration cannot run as asked: an unknown version, a database at a
    version this gateway does not know, or another process holding the lock too long."""


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a source's schema, and whether the database has it applied."""

    id: str
    description: str
    applied: bool


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """Where one source's database stands."""

    source: str
    # Where its versions are kept: "alembic", "schema_migrations", or "unversioned" (a
    # registered source that creates its tables or indexes itself).
    kind: str
    # The newest applied version; None when none is (a new database, or one created before
    # versions: see `adoptable`).
    current: str | None
    head: str | None
    pending: tuple[str, ...] = ()
    # Tables or indexes exist but no version is recorded: created by the unversioned
    # `migrate` of before, the next upgrade adopts it at the first version.
    adoptable: bool = False

    @property
    def state(self) -> str:
        """A few words for `gateway migrate status`."""
        if self.kind == "unversioned":
            return "unversioned (migrate creates what is missing)"
        if self.adoptable:
            return "created before versions: adopted at the first version by `gateway migrate`"
        if not self.pending:
            return "up to date"
        return f"{len(self.pending)} pending: {', '.join(self.pending)}"


@runtime_checkable
class Versioned(Protocol):
    """A source whose schema is versioned: upgraded by `migrate`, rolled back by `downgrade`."""

    name: ClassVar[str]

    async def migrate(self) -> None:
        """Apply every version not applied yet (adopting a database from before versions)."""

    async def migration_status(self) -> MigrationStatus:
        """The applied and pending versions."""

    async def downgrade(self, to: str) -> tuple[str, ...]:
        """Undo the versions after `to` (`base`: all), newest first; returns those undone."""

    def versions(self) -> tuple[str, ...]:
        """The source's version ids, oldest first (empty: unversioned)."""

    async def history(self) -> list[Version]:
        """Every version, oldest first, with whether it is applied."""
