"""What the importers share: a legacy item not imported and why, counts on both sides, the
progress callback and the report's lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# `on_progress(phase, done, total)`, called as each pass advances.
Progress = Callable[[str, int, int], None]

_SHOWN = 50


@dataclass(frozen=True, slots=True)
class Refusal:
    """A legacy item (a user, a strategy, a trade) not imported, and why."""

    user_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Tally:
    """One collection counted on both sides: what the legacy data holds (of the items not
    refused) and what of it is stored."""

    legacy: int = 0
    stored: int = 0


def add_tally(tally: Tally, legacy: int, stored: int) -> Tally:
    """`tally` with `legacy` and `stored` more."""
    return Tally(tally.legacy + legacy, tally.stored + stored)


def listed(title: str, lines: Sequence[str]) -> list[str]:
    """A titled list for a report, with its count; at most 50 lines shown."""
    if not lines:
        return []
    shown = [f"  {line}" for line in lines[:_SHOWN]]
    if len(lines) > _SHOWN:
        shown.append(f"  and {len(lines) - _SHOWN} more")
    return [f"{title} ({len(lines)}):", *shown]
