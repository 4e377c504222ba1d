"""Comparing two versions of the schema: the changes that break clients written against the
old one, and the dangerous ones that may change what they see (graphql-core's own rules).

Breaking: a type or field removed, a type or field changed type (made nullable in output,
another type), a required argument or input field added, an argument removed or changed,
an enum value removed, a directive or its location removed. Dangerous: an argument's
default changed, an enum value added (an exhaustive client switch misses it), an optional
argument or input field added, an interface added to a type, a union member added.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    BreakingChange,
    DangerousChange,
    GraphQLError,
    GraphQLSchema,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
)


@dataclass(frozen=True, slots=True)
class SchemaChanges:
    """What changed from the old schema to the new one."""

    breaking: list[BreakingChange]
    dangerous: list[DangerousChange]

    def lines(self) -> list[str]:
        """One line per change, the breaking ones first: `KIND: description`."""
        return [
            f"breaking {change.type.name}: {change.description}" for change in self.breaking
        ] + [f"dangerous {change.type.name}: {change.description}" for change in self.dangerous]


class SchemaUnreadable(ValueError):
    """One of the two SDL documents is not a valid schema."""


def compare(old_sdl: str, new_sdl: str) -> SchemaChanges:
    """The breaking and dangerous changes from `old_sdl` to `new_sdl`."""
    old, new = _schema(old_sdl, "old"), _schema(new_sdl, "new")
    return SchemaChanges(
        breaking=find_breaking_changes(old, new), dangerous=find_dangerous_changes(old, new)
    )


def _schema(sdl: str, which: str) -> GraphQLSchema:
    try:
        return build_schema(sdl)
    except (GraphQLError, TypeError) as exc:
        raise SchemaUnreadable(f"the {which} schema is not valid SDL: {exc}") from exc
