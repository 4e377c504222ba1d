"""What every source's loaders share: the read scope, page records and key ordering."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Coroutine, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader

from gateway.core.telemetry import batch_sizes

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
G = TypeVar("G", bound=Hashable)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose rows a request may read: one user's (`user_id`), or everyone's (ADMIN, None)."""

    user_id: str | None

    @property
    def owners(self) -> list[str] | None:
        """The user ids a query must be filtered by; None means every user's (ADMIN)."""
        return None if self.user_id is None else [self.user_id]

    def allows(self, user_id: str) -> bool:
        """Whether rows owned by `user_id` are visible in this scope."""
        return self.user_id is None or self.user_id == user_id

    def visible(self, user_ids: Iterable[str]) -> list[str]:
        """The ids among `user_ids` this scope may read, deduplicated, in order."""
        return list(dict.fromkeys(uid for uid in user_ids if self.allows(uid)))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list: its items and whether more follow."""

    items: Sequence[T]
    has_next: bool


def in_key_order(keys: Sequence[K], rows: Iterable[V], key_of: Callable[[V], K]) -> list[V | None]:
    """One result per key, in key order; a key with no row gets None."""
    by_key = {key_of(row): row for row in rows}
    return [by_key.get(key) for key in keys]


def grouped(rows: Iterable[V], key_of: Callable[[V], G]) -> dict[G, list[V]]:
    """Rows grouped by `key_of`, each group in the rows' order."""
    groups: dict[G, list[V]] = defaultdict(list)
    for row in rows:
        groups[key_of(row)].append(row)
    return groups


def paginate(rows: Sequence[T], first: int) -> Page[T]:
    """A page of `first` items from `rows`, which were fetched with one extra row to peek."""
    return Page(items=list(rows[:first]), has_next=len(rows) > first)


def measured_loader(
    source: str, batch: Callable[[list[K]], Coroutine[Any, Any, list[V]]]
) -> DataLoader[K, V]:
    """A DataLoader over `batch` that reports each batch's size (`SourceBase.loader`)."""
    sizes = batch_sizes(source, batch.__name__.removeprefix("_load_"))

    async def measured(keys: list[K]) -> list[V]:
        sizes.observe(len(keys))
        return await batch(keys)

    return DataLoader(measured)
