"""`gateway import algo-runner`: the single-database algo-runner platform moved into the
users, strategies and credentials sources.

The old platform keeps everything in one MongoDB database (`algo_runner_db`): each
document of its `users` collection holds the user (`email`, a bcrypt `password` written
by its Node backend, names, `phone`), an embedded `strategies[]` array (`name`, `code`,
`status`, `containerId`) and the broker credentials as plain fields (`broker`,
`clientId`, `accessToken`, `brokerUsername`, `brokerPassword`, `totpSecret`, `apiKey`,
`apiSecret`) in plaintext.

Three passes, users in `_id` order, a batch at a time:

1. import: per user, its credentials (every secret sealed under the current key), then
   its strategies (documents of their own with `userId`), then the user document last,
   each written only where absent. The user's document is the commit point: a user is
   not there (cannot sign in) until everything of it is. Ids are kept (a strategy
   without an `_id` of its own gets one derived from its user and place, the same on
   every run); names are made unique per user; statuses are mapped to ours; no
   activity event is written. A checkpoint (the last user of the last finished batch)
   lets a killed run resume; every step being write-if-absent, a batch done twice
   changes nothing, and a whole run done twice neither.
2. verify: every legacy user counted against what is stored: its user document, its
   strategies (every planned id, under its owner) and its credentials (every field,
   each secret opened and compared with the legacy plaintext).
3. clear (`--clear-source` only): the embedded strategies and the credential fields are
   removed from the legacy documents of the users the verification passed, never of
   one it failed; a marker (`gatewayImport.clearedAt`) records it.

A user is refused (reported, nothing of it written) when its id is not an ObjectId,
it has no email, its password hash is of a format the gateway cannot verify
(gateway/core/auth.py `hash_scheme`), a credential field is not text, its email
belongs to another user, or one of its strategies' ids belongs to another user's.
Reports name users by id and fields by name: never a secret or a hash.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient, uri_parser
from pymongo.asynchronous.database import AsyncDatabase

from datasources import Document, Sources, imported, now
from datasources import credentials as credentials_source
from datasources import strategies as strategies_source
from datasources import users as users_source
from gateway.core.auth import hash_scheme
from gateway.core.crypto import SecretBox, UnsealError
from gateway.imports.common import Progress, Refusal, Tally, add_tally, listed

LEGACY_DATABASE = "algo_runner_db"
LEGACY_COLLECTION = "users"
DEFAULT_BROKER = "TradeHull"
BATCH_SIZE = 200
LEGACY_TIMEOUT_MS = 30_000
CREDENTIAL_FIELDS = (credentials_source.CLIENT_ID, *credentials_source.SECRET_FIELDS)
# What `--clear-source` removes from a legacy user: everything the import moved elsewhere.
CLEARED_FIELDS = ("strategies", "broker", *CREDENTIAL_FIELDS)
MARKER = "gatewayImport"
_LOWEST_ID = ObjectId(b"\x00" * 12)

# The old runner's statuses as ours; anything else is stopped (and reported).
STATUSES: Mapping[str, str] = {
    **dict.fromkeys(
        ("active", "running", "run", "started", "start", "live", "deployed", "on"), "active"
    ),
    **dict.fromkeys(("paused", "pause", "suspended", "hold", "on_hold"), "paused"),
    **dict.fromkeys(
        (
            "stopped",
            "stop",
            "idle",
            "inactive",
            "created",
            "new",
            "draft",
            "off",
            "terminated",
            "exited",
            "finished",
            "completed",
        ),
        "stopped",
    ),
    **dict.fromkeys(("error", "errored", "failed", "failure", "crashed", "dead"), "error"),
}
UNKNOWN_STATUS = "stopped"


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What `gateway import algo-runner` was asked to do."""

    source_uri: str
    dry_run: bool = False
    clear_source: bool = False
    batch_size: int = BATCH_SIZE


@dataclass(frozen=True, slots=True)
class PlannedStrategy:
    """One embedded strategy as it is to be stored."""

    id: str
    name: str
    original_name: str
    code: str
    status: str
    original_status: str | None
    container_id: str | None
    broker: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PlannedUser:
    """One legacy user as it is to be stored; `credentials` holds plaintext, in memory only."""

    id: str
    email: str
    password_hash: str
    first_name: str
    last_name: str
    phone: str | None
    created_at: datetime
    updated_at: datetime
    strategies: tuple[PlannedStrategy, ...]
    broker: str
    credentials: Mapping[str, str]
    # An earlier `--clear-source` removed its embedded fields: only the user is left.
    cleared: bool = False

    def __repr__(self) -> str:  # never print the secrets or the hash
        return f"PlannedUser(id={self.id!r}, strategies={len(self.strategies)})"


@dataclass(frozen=True, slots=True)
class Rename:
    """A strategy stored under another name than it had (a duplicate, blank or too long)."""

    user_id: str
    strategy_id: str
    old: str
    new: str


@dataclass(slots=True)
class ImportReport:
    """What a run did (or, with `dry_run`, would do), and what the verification found."""

    dry_run: bool
    legacy_users: int = 0
    resumed_after: str | None = None
    users_written: int = 0
    strategies_written: int = 0
    credentials_written: int = 0
    users_present: int = 0
    refused: list[Refusal] = field(default_factory=list)
    renamed: list[Rename] = field(default_factory=list)
    statuses: Counter[tuple[str | None, str]] = field(default_factory=Counter)
    verified: bool = False
    tallies: dict[str, Tally] = field(default_factory=dict)
    failed: list[Refusal] = field(default_factory=list)
    cleared: int = 0
    cleared_before: int = 0

    @property
    def ok(self) -> bool:
        """Every legacy user imported, and (unless a dry run) verified."""
        return not self.refused and not self.failed and (self.dry_run or self.verified)


# Planning: a legacy document to what is stored, a pure function of the document.


def _time(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return fallback


def _text(value: Any) -> str | None:
    """A legacy scalar as text; None when absent or blank; a TypeError when not a scalar."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(type(value).__name__)
    text = str(value)
    return text if text.strip() else None


def normalize_status(value: Any) -> str:
    """An old runner's status as ours (`running` -> `active`); unknown ones are stopped."""
    key = str(value).strip().lower().replace("-", "_").replace(" ", "_") if value else "stopped"
    return STATUSES.get(key, UNKNOWN_STATUS)


def _derived_id(user: ObjectId, index: int) -> str:
    # The user's timestamp first, so strategies sort with their user, then a digest of the
    # user and the strategy's place: the same id on every run.
    digest = hashlib.sha256(f"algo-runner:{user}:{index}".encode()).digest()
    return str(ObjectId(user.binary[:4] + digest[:8]))


def _suffixed(name: str, number: int) -> str:
    suffix = f" ({number})"
    return name[: strategies_source.MAX_NAME - len(suffix)] + suffix


def unique_names(names: Sequence[str]) -> list[str]:
    """`names` with blanks named after their place, each cut to the longest name allowed,
    and every repeat given the first free ` (2)`, ` (3)`... (never a name that comes later)."""
    cleaned = [
        (name.strip() or f"Strategy {index + 1}")[: strategies_source.MAX_NAME]
        for index, name in enumerate(names)
    ]
    reserved = set(cleaned)
    taken: set[str] = set()
    result = []
    for name in cleaned:
        chosen, number = name, 2
        if chosen in taken:
            chosen = _suffixed(name, number)
            while chosen in taken or chosen in reserved:
                number += 1
                chosen = _suffixed(name, number)
        taken.add(chosen)
        result.append(chosen)
    return result


def plan_user(doc: Mapping[str, Any]) -> PlannedUser | Refusal:  # noqa: PLR0911 - a return per refusal
    """What one legacy user becomes, or why it is refused."""
    oid = doc.get("_id")
    if not isinstance(oid, ObjectId):
        return Refusal(str(oid), "its _id is not an ObjectId")
    user_id = str(oid)
    email = doc.get("email")
    if not isinstance(email, str) or "@" not in email:
        return Refusal(user_id, "no email address")
    password_hash = doc.get("password")
    if hash_scheme(password_hash) is None or not isinstance(password_hash, str):
        return Refusal(user_id, "its password hash is missing or of an unknown format")
    created = _time(doc.get("createdAt"), oid.generation_time)
    updated = _time(doc.get("updatedAt"), created)
    cleared = isinstance(doc.get(MARKER), Mapping) and doc[MARKER].get("clearedAt") is not None
    try:
        broker = _text(doc.get("broker")) or DEFAULT_BROKER
        secrets = {name: value for name in CREDENTIAL_FIELDS if (value := _text(doc.get(name)))}
        first_name = _text(doc.get("firstName")) or ""
        last_name = _text(doc.get("lastName")) or ""
        phone = _text(doc.get("phone"))
    except TypeError as exc:
        return Refusal(user_id, f"a field holds a {exc} where text was expected")
    embedded = doc.get("strategies") or []
    if not isinstance(embedded, list) or not all(isinstance(s, Mapping) for s in embedded):
        return Refusal(user_id, "its strategies are not a list of objects")
    try:
        names = [_text(s.get("name")) or "" for s in embedded]
        planned = _plan_strategies(oid, embedded, names, broker, created)
    except TypeError as exc:
        return Refusal(user_id, f"a strategy field holds a {exc} where text was expected")
    return PlannedUser(
        id=user_id,
        email=users_source.normalize_email(email),
        password_hash=password_hash,
        first_name=first_name,
        last_name=last_name,
        phone=phone.strip() if phone else None,
        created_at=created,
        updated_at=updated,
        strategies=tuple(planned),
        broker=broker,
        credentials=secrets,
        cleared=cleared,
    )


def _plan_strategies(
    user: ObjectId,
    embedded: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    broker: str,
    created: datetime,
) -> list[PlannedStrategy]:
    planned = []
    seen: set[str] = set()
    for index, (strategy, name) in enumerate(zip(embedded, unique_names(names), strict=True)):
        own = strategy.get("_id")
        strategy_id = str(own) if isinstance(own, ObjectId) else ""
        if not strategy_id or strategy_id in seen:  # none, or copied from another entry
            strategy_id = _derived_id(user, index)
        seen.add(strategy_id)
        status = strategy.get("status")
        made = _time(strategy.get("createdAt"), created)
        planned.append(
            PlannedStrategy(
                id=strategy_id,
                name=name,
                original_name=names[index],
                code=_text(strategy.get("code")) or "",
                status=normalize_status(status),
                original_status=None if status is None else str(status),
                container_id=_text(strategy.get("containerId")),
                broker=_text(strategy.get("broker")) or broker,
                created_at=made,
                updated_at=_time(strategy.get("updatedAt"), made),
            )
        )
    return planned


def _note_plan(report: ImportReport, plan: PlannedUser) -> None:
    for strategy in plan.strategies:
        if strategy.name != strategy.original_name:
            report.renamed.append(
                Rename(plan.id, strategy.id, strategy.original_name, strategy.name)
            )
        if strategy.original_status != strategy.status:
            report.statuses[(strategy.original_status, strategy.status)] += 1


# Reading the legacy database.


def legacy_database_name(uri: str) -> str:
    """The database named in `--from`'s path, `algo_runner_db` when it names none."""
    return str(uri_parser.parse_uri(uri)["database"] or LEGACY_DATABASE)


async def _batches(
    legacy: AsyncDatabase[Document], *, after: ObjectId, size: int
) -> AsyncIterator[list[Document]]:
    """The legacy users with an ObjectId above `after`, in `_id` order, `size` at a time."""
    last = after
    while True:
        cursor = (
            legacy[LEGACY_COLLECTION]
            .find({"_id": {"$gt": last}})
            .sort([("_id", ASCENDING)])
            .limit(size)
        )
        batch = [doc async for doc in cursor]
        if not batch:
            return
        yield batch
        last = batch[-1]["_id"]


async def _odd_ids(legacy: AsyncDatabase[Document]) -> list[str]:
    """The legacy users whose `_id` is not an ObjectId (no batch ever reaches them)."""
    cursor = legacy[LEGACY_COLLECTION].find({"_id": {"$not": {"$type": "objectId"}}}, {"_id": 1})
    return [str(doc["_id"]) async for doc in cursor]


# The passes.


class AlgoRunnerImport:
    """One run of the import (see the module docstring)."""

    def __init__(
        self,
        *,
        sources: Sources,
        legacy: AsyncDatabase[Document],
        box: SecretBox,
        options: ImportOptions,
        on_progress: Progress | None = None,
    ) -> None:
        self.sources = sources
        self.legacy = legacy
        self.box = box
        self.options = options
        self.report = ImportReport(dry_run=options.dry_run)
        self._on_progress = on_progress
        self._checkpoint = f"algo-runner:{legacy.name}"
        # Emails of users seen in this run, in _id order: the first holder keeps one.
        self._claimed: dict[str, str] = {}
        self._verified: list[str] = []

    def _progress(self, phase: str, done: int, total: int) -> None:
        if self._on_progress is not None:
            self._on_progress(phase, done, total)

    async def run(self) -> ImportReport:
        """Import (resuming from the checkpoint), verify, and clear if asked."""
        for odd in await _odd_ids(self.legacy):
            self.report.refused.append(Refusal(odd, "its _id is not an ObjectId"))
        self.report.legacy_users = await self.legacy[LEGACY_COLLECTION].count_documents(
            {"_id": {"$gte": _LOWEST_ID}}
        )
        if not self.options.dry_run:
            await self._ensure_indexes()
        await self._import_pass()
        if self.options.dry_run:
            return self.report
        await self._verify_pass()
        if self.options.clear_source:
            await self._clear_pass()
        return self.report

    async def _ensure_indexes(self) -> None:
        # The unique indexes (email; userId and name; userId) are what make a repeated
        # write collide instead of duplicating.
        await users_source.ensure_indexes(db=self.sources.users.db)
        await strategies_source.ensure_indexes(db=self.sources.strategies.db)
        await credentials_source.ensure_indexes(db=self.sources.credentials.db)

    async def _import_pass(self) -> None:
        users_db = self.sources.users.db
        after = _LOWEST_ID
        if not self.options.dry_run:
            saved = await imported.read_checkpoint(db=users_db, key=self._checkpoint)
            if saved is not None and isinstance(saved.get("lastUserId"), ObjectId):
                after = saved["lastUserId"]
                self.report.resumed_after = str(after)
        total = self.report.legacy_users
        done = await self.legacy[LEGACY_COLLECTION].count_documents(
            {"_id": {"$gte": _LOWEST_ID, "$lte": after}}
        )
        if after != _LOWEST_ID:
            await self._claim_emails_before(after)
        self._progress("import", done, total)
        async for batch in _batches(self.legacy, after=after, size=self.options.batch_size):
            await self._import_batch(batch)
            done += len(batch)
            if not self.options.dry_run:
                values = {"lastUserId": batch[-1]["_id"]}
                await imported.save_checkpoint(db=users_db, key=self._checkpoint, values=values)
            self._progress("import", done, max(total, done))
        if not self.options.dry_run:
            await imported.drop_checkpoint(db=users_db, key=self._checkpoint)

    async def _claim_emails_before(self, after: ObjectId) -> None:
        # Resuming: the users before the checkpoint hold their emails as in the first run
        # (a user refused for itself claims none there either).
        cursor = (
            self.legacy[LEGACY_COLLECTION]
            .find({"_id": {"$gte": _LOWEST_ID, "$lte": after}})
            .sort([("_id", ASCENDING)])
        )
        async for doc in cursor:
            plan = plan_user(doc)
            if isinstance(plan, PlannedUser):
                self._claimed.setdefault(plan.email, plan.id)

    def _plan_batch(self, batch: Sequence[Document]) -> list[PlannedUser]:
        plans = []
        for doc in batch:
            plan = plan_user(doc)
            if isinstance(plan, Refusal):
                self.report.refused.append(plan)
                continue
            holder = self._claimed.setdefault(plan.email, plan.id)
            if holder != plan.id:
                self.report.refused.append(
                    Refusal(plan.id, f"its email is also the email of user {holder}")
                )
                continue
            plans.append(plan)
        return plans

    async def _import_batch(self, batch: Sequence[Document]) -> None:
        plans = self._plan_batch(batch)
        if self.options.dry_run:
            for plan in plans:
                _note_plan(self.report, plan)
        stored_users = await imported.find_stored_users(
            db=self.sources.users.db,
            ids=[plan.id for plan in plans],
            emails=[plan.email for plan in plans],
        )
        present = {user.id for user in stored_users}
        email_holders = {user.email: user.id for user in stored_users}
        todo = []
        for plan in plans:
            if plan.id in present:
                self.report.users_present += 1
            elif email_holders.get(plan.email, plan.id) != plan.id:
                holder = email_holders[plan.email]
                self.report.refused.append(
                    Refusal(plan.id, f"its email belongs to user {holder} in the users source")
                )
            elif not plan.cleared:
                todo.append(plan)
        todo, stored_strategies = await self._without_strategy_conflicts(todo)
        await self._write(todo, stored_strategies)

    async def _without_strategy_conflicts(
        self, plans: list[PlannedUser]
    ) -> tuple[list[PlannedUser], set[str]]:
        """The plans none of whose strategies collides with another stored one, and the ids
        of the stored strategies among theirs."""
        stored = await imported.find_stored_strategies(
            db=self.sources.strategies.db,
            ids=[strategy.id for plan in plans for strategy in plan.strategies],
            user_ids=[plan.id for plan in plans],
        )
        owners = {strategy.id: strategy.user_id for strategy in stored}
        names = {(strategy.user_id, strategy.name): strategy.id for strategy in stored}
        kept = []
        for plan in plans:
            reason = None
            for strategy in plan.strategies:
                owner = owners.get(strategy.id, plan.id)
                named = names.get((plan.id, strategy.name), strategy.id)
                if owner != plan.id:
                    reason = f"its strategy {strategy.id} belongs to user {owner}"
                elif named != strategy.id:
                    reason = f"its strategy {strategy.id}'s name is taken by strategy {named}"
                if reason:
                    break
            if reason:
                self.report.refused.append(Refusal(plan.id, reason))
            else:
                kept.append(plan)
        return kept, set(owners)

    async def _write(self, plans: list[PlannedUser], stored_strategies: set[str]) -> None:
        credentials = await imported.find_sealed_credentials(
            db=self.sources.credentials.db, user_ids=[plan.id for plan in plans]
        )
        strategies = [
            imported.strategy_document(
                strategy_id=strategy.id,
                user_id=plan.id,
                created_at=strategy.created_at,
                updated_at=strategy.updated_at,
                name=strategy.name,
                code=strategy.code,
                status=strategy.status.upper(),
                container_id=strategy.container_id,
                broker=strategy.broker,
            )
            for plan in plans
            for strategy in plan.strategies
            if strategy.id not in stored_strategies
        ]
        new_credentials = [p for p in plans if p.credentials and p.id not in credentials]
        users = [
            imported.user_document(
                user_id=plan.id,
                created_at=plan.created_at,
                updated_at=plan.updated_at,
                email=plan.email,
                password_hash=plan.password_hash,
                first_name=plan.first_name,
                last_name=plan.last_name,
                phone=plan.phone,
            )
            for plan in plans
        ]
        if self.options.dry_run:
            self.report.credentials_written += len(new_credentials)
            self.report.strategies_written += len(strategies)
            self.report.users_written += len(users)
            return
        # The user last: it is not there (cannot sign in) until everything of it is.
        moment = now()
        self.report.credentials_written += await imported.insert_absent(
            db=self.sources.credentials.db,
            collection=credentials_source.COLLECTION,
            documents=[
                imported.credentials_document(
                    box=self.box,
                    user_id=plan.id,
                    broker=plan.broker,
                    values=plan.credentials,
                    created_at=moment,
                )
                for plan in new_credentials
            ],
        )
        self.report.strategies_written += await imported.insert_absent(
            db=self.sources.strategies.db,
            collection=strategies_source.COLLECTION,
            documents=strategies,
        )
        self.report.users_written += await imported.insert_absent(
            db=self.sources.users.db, collection=users_source.COLLECTION, documents=users
        )

    async def _verify_pass(self) -> None:
        tallies = dict.fromkeys(("users", "strategies", "credentials"), Tally())
        self._claimed.clear()
        refused_before = {refusal.user_id: refusal.reason for refusal in self.report.refused}
        self.report.refused = [r for r in self.report.refused if r.reason.startswith("its _id")]
        total, done = self.report.legacy_users, 0
        self._progress("verify", 0, total)
        async for batch in _batches(self.legacy, after=_LOWEST_ID, size=self.options.batch_size):
            plans = self._plan_batch(batch)
            for plan in plans:
                _note_plan(self.report, plan)
            await self._verify_batch(plans, tallies, refused_before)
            done += len(batch)
            self._progress("verify", done, max(total, done))
        self.report.tallies = tallies
        self.report.verified = not self.report.failed

    async def _verify_batch(
        self, plans: list[PlannedUser], tallies: dict[str, Tally], refused_before: Mapping[str, str]
    ) -> None:
        ids = [plan.id for plan in plans]
        stored_users = await imported.find_stored_users(
            db=self.sources.users.db, ids=ids, emails=[plan.email for plan in plans]
        )
        by_id = {user.id: user for user in stored_users}
        email_holders = {user.email: user.id for user in stored_users}
        stored_strategies = await imported.find_stored_strategies(
            db=self.sources.strategies.db, ids=[], user_ids=ids
        )
        owned: dict[str, set[str]] = {}
        for strategy in stored_strategies:
            owned.setdefault(strategy.user_id, set()).add(strategy.id)
        sealed = await imported.find_sealed_credentials(
            db=self.sources.credentials.db, user_ids=ids
        )
        for plan in plans:
            user = by_id.get(plan.id)
            holder = email_holders.get(plan.email, plan.id)
            if user is None and (holder != plan.id or plan.id in refused_before):
                # Refused by the import (its email or a strategy id held by another): it
                # stays refused, and nothing of it is counted.
                reason = refused_before.get(plan.id)
                if holder != plan.id:
                    reason = f"its email belongs to user {holder} in the users source"
                self.report.refused.append(Refusal(plan.id, reason or "refused"))
                continue
            failures = self._check_user(plan, user, owned.get(plan.id, set()), sealed, tallies)
            if failures:
                self.report.failed.append(Refusal(plan.id, "; ".join(failures)))
            else:
                self._verified.append(plan.id)
            if plan.cleared:
                self.report.cleared_before += 1

    def _check_user(
        self,
        plan: PlannedUser,
        user: imported.StoredUser | None,
        owned: set[str],
        sealed: Mapping[str, Document],
        tallies: dict[str, Tally],
    ) -> list[str]:
        failures = []
        found_user = user is not None and user.email == plan.email
        tallies["users"] = add_tally(tallies["users"], 1, int(found_user))
        if not found_user:
            failures.append("its user document is missing" if user is None else "email differs")
        if plan.cleared:
            return failures  # its strategies and credentials left the legacy side already
        found = sum(1 for strategy in plan.strategies if strategy.id in owned)
        tallies["strategies"] = add_tally(tallies["strategies"], len(plan.strategies), found)
        if found != len(plan.strategies):
            failures.append(f"{found} of its {len(plan.strategies)} strategies are stored")
        if plan.credentials:
            matched = self._credentials_match(plan, sealed.get(plan.id))
            tallies["credentials"] = add_tally(tallies["credentials"], 1, int(matched))
            if not matched:
                failures.append("its stored credentials differ from the legacy ones")
        return failures

    def _credentials_match(self, plan: PlannedUser, doc: Document | None) -> bool:
        if doc is None or doc.get("broker") != plan.broker:
            return False
        stored = {name for name in CREDENTIAL_FIELDS if doc.get(name) is not None}
        if stored != set(plan.credentials):
            return False
        for name, value in plan.credentials.items():
            if name == credentials_source.CLIENT_ID:
                if doc[name] != value:
                    return False
                continue
            try:
                if self.box.open(doc[name], user_id=plan.id, field=name) != value:
                    return False
            except (UnsealError, TypeError):
                return False
        return True

    async def _clear_pass(self) -> None:
        """Remove the moved fields from the legacy users the verification passed."""
        total = len(self._verified)
        size = self.options.batch_size
        self._progress("clear", 0, total)
        for start in range(0, total, size):
            ids = [ObjectId(user_id) for user_id in self._verified[start : start + size]]
            result = await self.legacy[LEGACY_COLLECTION].update_many(
                {"_id": {"$in": ids}, f"{MARKER}.clearedAt": {"$exists": False}},
                {
                    "$unset": dict.fromkeys(CLEARED_FIELDS, ""),
                    "$set": {f"{MARKER}.clearedAt": now()},
                },
            )
            self.report.cleared += result.modified_count
            self._progress("clear", min(start + size, total), total)


async def import_algo_runner(
    *,
    sources: Sources,
    box: SecretBox,
    options: ImportOptions,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Run `gateway import algo-runner` against `options.source_uri` (see the module
    docstring); `on_progress(phase, done, total)` follows each pass."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        options.source_uri,
        tz_aware=True,
        tzinfo=UTC,
        serverSelectionTimeoutMS=LEGACY_TIMEOUT_MS,
        appname="trading-gateway-import",
    )
    try:
        legacy = client.get_database(legacy_database_name(options.source_uri))
        run = AlgoRunnerImport(
            sources=sources, legacy=legacy, box=box, options=options, on_progress=on_progress
        )
        return await run.run()
    finally:
        await client.close()


def report_lines(report: ImportReport) -> list[str]:
    """The report as plain text lines (no secret, no hash: ids, names and counts)."""
    would = "would write" if report.dry_run else "written"
    lines = [
        f"legacy users: {report.legacy_users}"
        + (f" (resumed after user {report.resumed_after})" if report.resumed_after else ""),
        f"{would}: {report.users_written} users, {report.strategies_written} strategies, "
        f"{report.credentials_written} credentials; {report.users_present} users already present",
    ]
    for (old, new), count in sorted(report.statuses.items(), key=lambda item: str(item[0])):
        lines.append(f"status {old!r} stored as {new!r}: {count} strategies")
    lines += listed(
        "strategies renamed (names must be unique per user)",
        [f"user {r.user_id}: {r.old!r} -> {r.new!r}" for r in report.renamed],
    )
    lines += listed(
        "users refused, nothing of them written",
        [f"user {r.user_id}: {r.reason}" for r in report.refused],
    )
    if report.tallies:
        lines.append("verification (legacy / stored):")
        lines += [
            f"  {name}: {tally.legacy} / {tally.stored}" for name, tally in report.tallies.items()
        ]
    lines += listed(
        "users whose verification failed", [f"user {r.user_id}: {r.reason}" for r in report.failed]
    )
    if report.cleared_before:
        lines.append(
            f"{report.cleared_before} users were cleared from the source by an earlier run"
        )
    if report.cleared:
        lines.append(f"cleared from the source: {report.cleared} users")
    return lines
