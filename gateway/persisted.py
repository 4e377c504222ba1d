"""Persisted operations: Apollo's automatic persisted queries (APQ) and trusted operations.

APQ (PERSISTED_OPERATIONS=apq, the default): a request may carry
`extensions.persistedQuery = {"version": 1, "sha256Hash": ...}` on POST or GET. Without a
query, the query registered under that hash is run; unknown, the answer is
`PersistedQueryNotFound` (PERSISTED_QUERY_NOT_FOUND, HTTP 200 and uncacheable, as Apollo
Server answers), on which Apollo's clients send the query again with its hash. A query sent
with a hash that is not its SHA-256 is refused (PERSISTED_QUERY_HASH_MISMATCH) and nothing is
stored; a query is stored only once it has parsed and passed validation (every limit
included). The store is `QueryStore`: memory, bounded in entries and characters, and, with
APQ_REDIS_URL (else REDIS_URL), Redis behind it (shared by every process, each entry with a
TTL, the whole bounded in entries and bytes). A Redis that does not answer costs hits, never
requests that carry their query.

Trusted operations (`gateway operations add MANIFEST`) are kept in the users database
(datasources/persisted_operations.py); each process holds the whole list in memory, read
again at most once per TRUSTED_OPERATIONS_CACHE_SECONDS, so no lookup reaches the database.
With PERSISTED_OPERATIONS=apq they are found by id as well; with PERSISTED_OPERATIONS=trusted
they are all that runs: a request names one by id (`extensions.persistedQuery.sha256Hash` or
`documentId`), or sends a query whose SHA-256 is one of theirs; anything else is refused
before it is parsed (PERSISTED_QUERY_NOT_IN_LIST).

Wherever a document comes from, it then passes every limit an ordinary query passes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, OperationDefinitionNode, parse

from datasources import MongoSource
from datasources.persisted_operations import PersistedOperation, list_operations
from gateway.core import redis_client
from gateway.core.errors import (
    BadUserInput,
    GatewayError,
    OperationNotTrusted,
    PersistedQueryMismatch,
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
)
from gateway.core.ratelimit import REDIS_RETRY_SECONDS
from gateway.core.settings import Settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger("gateway.persisted")

APQ_VERSION = 1
APOLLO_MANIFEST_FORMAT = "apollo-persisted-query-manifest"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_MAX_ID_CHARS = 256


def sha256_hex(text: str) -> str:
    """The SHA-256 of `text` (UTF-8), in lower-case hex: what Apollo's clients send."""
    return hashlib.sha256(text.encode()).hexdigest()


def read_persisted_query(extensions: Mapping[str, Any] | None) -> str | None:
    """The `sha256Hash` of a request's `persistedQuery` extension; None without one.
    BadUserInput when it is malformed or of a version other than 1."""
    if not extensions or extensions.get("persistedQuery") is None:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, dict):
        raise BadUserInput("'extensions.persistedQuery' must be an object.", field="persistedQuery")
    if persisted.get("version") != APQ_VERSION:
        raise BadUserInput(
            f"Unsupported persisted query version: only {APQ_VERSION} is supported.",
            field="persistedQuery.version",
        )
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not sha or len(sha) > _MAX_ID_CHARS:
        raise BadUserInput(
            "'extensions.persistedQuery.sha256Hash' must be a non-empty string.",
            field="persistedQuery.sha256Hash",
        )
    return sha


class MemoryQueries:
    """Queries by hash in one process, least recently used dropped first: at most
    `max_entries` of them, of at most `max_chars` characters together."""

    def __init__(self, *, max_entries: int, max_chars: int) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.chars = 0
        self._queries: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._queries)

    def get(self, key: str) -> str | None:
        """The query under `key`, if held."""
        query = self._queries.get(key)
        if query is not None:
            self._queries.move_to_end(key)
        return query

    def put(self, key: str, query: str) -> None:
        """Hold `query` under `key` (not at all if it alone exceeds the bound)."""
        if len(query) > self.max_chars or self.max_entries == 0:
            return
        if (old := self._queries.pop(key, None)) is not None:
            self.chars -= len(old)
        self._queries[key] = query
        self.chars += len(query)
        while len(self._queries) > self.max_entries or self.chars > self.max_chars:
            _, dropped = self._queries.popitem(last=False)
            self.chars -= len(dropped)


# Registers one query in the Redis store, atomically, keeping the store within its bounds.
# KEYS: the index (a sorted set: hash -> registration time in microseconds, strictly
# increasing, so the oldest comes first even within one microsecond), the sizes (a hash:
# hash -> bytes) and the running total of those bytes. ARGV: the hash, the query, the TTL in
# milliseconds, the most entries, the most bytes, the key prefix of the entries. Entries
# past the TTL leave the index; then the oldest go until the new one fits; then it is
# stored. The entries' own keys (prefix .. hash) are derived here, not passed: this runs on
# a single Redis, not a cluster.
_PUT = """
local index, sizes, total_key = KEYS[1], KEYS[2], KEYS[3]
local member, query, prefix = ARGV[1], ARGV[2], ARGV[6]
local ttl_ms, max_entries, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local size = string.len(query)
if size > max_bytes or max_entries < 1 then return 0 end
local total = tonumber(redis.call('GET', total_key) or '0')
local function drop(name)
  total = total - tonumber(redis.call('HGET', sizes, name) or '0')
  redis.call('HDEL', sizes, name)
  redis.call('ZREM', index, name)
  redis.call('DEL', prefix .. name)
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
if redis.call('ZSCORE', index, member) then drop(member) end
local expired = redis.call('ZRANGEBYSCORE', index, '-inf',
  string.format('%d', now - ttl_ms * 1000), 'LIMIT', 0, 1000)
for _, name in ipairs(expired) do drop(name) end
while redis.call('ZCARD', index) >= max_entries or total + size > max_bytes do
  local oldest = redis.call('ZRANGE', index, 0, 0)
  if #oldest == 0 then total = 0 break end
  drop(oldest[1])
end
if total < 0 then total = 0 end
local score = now
local newest = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
if #newest == 2 then score = math.max(now, tonumber(newest[2]) + 1) end
redis.call('SET', prefix .. member, query, 'PX', ttl_ms)
redis.call('ZADD', index, string.format('%d', score), member)
redis.call('HSET', sizes, member, size)
total = total + size
redis.call('SET', total_key, string.format('%d', total), 'PX', ttl_ms)
redis.call('PEXPIRE', index, ttl_ms)
redis.call('PEXPIRE', sizes, ttl_ms)
return 1
"""


class QueryStore:
    """The APQ queries: in memory, and in Redis when APQ_REDIS_URL (else REDIS_URL) is set
    (shared by every process; memory then holds what this process has seen, in front of
    it). The Redis store is bounded, all processes together, in entries and bytes
    (APQ_REDIS_MAX_ENTRIES, APQ_REDIS_MAX_CHARS; the oldest registration dropped first), so
    anonymous registrations cannot fill a Redis that may also hold the rate limits. While
    Redis does not answer, it is left alone for a second at a time and lookups miss: the
    client then sends its query, which runs as any other."""

    def __init__(self, settings: Settings) -> None:
        self.memory = MemoryQueries(
            max_entries=settings.apq_cache_entries, max_chars=settings.apq_cache_chars
        )
        self.prefix = settings.apq_redis_key_prefix
        self.ttl_seconds = settings.apq_ttl_seconds
        self.timeout_seconds = settings.apq_redis_timeout_seconds
        self.max_document_chars = settings.max_document_chars
        self.max_entries = settings.apq_redis_max_entries
        self.max_chars = settings.apq_redis_max_chars
        self.redis: aioredis.Redis | None = None
        self._retry_at = 0.0
        self._error: str | None = None
        if settings.apq_redis:
            seconds = settings.apq_redis_timeout_seconds
            self.redis = redis_client.connect(settings.apq_redis, timeout_seconds=seconds)
            self._put = self.redis.register_script(_PUT)
            # Never an entry's key: an entry is the prefix and 64 hex digits.
            self._bookkeeping = [self.prefix + name for name in ("index", "sizes", "chars")]

    @property
    def backend(self) -> str:
        """`redis` when APQ_REDIS_URL or REDIS_URL is set, else `memory`."""
        return "redis" if self.redis is not None else "memory"

    async def get(self, sha: str) -> str | None:
        """The query registered under `sha`, if any (a miss while Redis is down)."""
        if (query := self.memory.get(sha)) is not None:
            return query
        if self.redis is None or not _SHA256.match(sha) or not self._redis_usable():
            return None  # only a SHA-256 is ever stored: anything else needs no round trip
        try:
            raw = await self.redis.get(self.prefix + sha)
        except redis_client.failures() as exc:
            self._down(exc)
            return None
        if raw is None:
            return None
        try:
            query = raw.decode() if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            query = None  # not written by a gateway: another writer's, or damaged
        if query is None or sha256_hex(query) != sha:  # never run what is not its query
            log.warning("persisted queries: the Redis entry of %s is not its query", sha[:16])
            return None
        self.memory.put(sha, query)
        return query

    async def put(self, sha: str, query: str) -> None:
        """Register `query` (already checked to hash to `sha`); a document over
        MAX_DOCUMENT_CHARS is never stored."""
        if len(query) > self.max_document_chars:
            return
        self.memory.put(sha, query)
        if self.redis is None or not self._redis_usable():
            return
        try:
            await self._put(
                keys=self._bookkeeping,
                args=[
                    sha,
                    query,
                    self.ttl_seconds * 1000,
                    self.max_entries,
                    self.max_chars,
                    self.prefix,
                ],
            )
        except redis_client.failures() as exc:
            self._down(exc)

    async def status(self) -> dict[str, Any]:
        """What `/readyz` shows: the backend and whether its Redis answers (never a reason
        to be unready: without it, lookups miss and clients send their queries)."""
        report: dict[str, Any] = {"backend": self.backend}
        if self.redis is None:
            return report
        try:
            async with asyncio.timeout(self.timeout_seconds * 2):
                await self.redis.ping()
        except redis_client.failures() as exc:
            self._down(exc)
            report["redis"] = {"ok": False, "error": self._error}
        else:
            self._retry_at, self._error = 0.0, None
            report["redis"] = {"ok": True}
        return report

    async def close(self) -> None:
        """Close the Redis client."""
        if self.redis is not None:
            await self.redis.aclose()

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._retry_at

    def _down(self, exc: BaseException) -> None:
        if self._retry_at == 0.0 or time.monotonic() >= self._retry_at + 60:
            log.warning(
                "persisted queries: Redis does not answer (%s); lookups miss until it does",
                type(exc).__name__,
            )
        self._error = type(exc).__name__
        self._retry_at = time.monotonic() + REDIS_RETRY_SECONDS


class TrustedOperations:
    """The trusted operations, held in memory by each process. The whole list is read from
    the users database (through its source: deadline, breaker, errors mapped) when a lookup
    finds it older than TRUSTED_OPERATIONS_CACHE_SECONDS, by one lookup while the others
    wait for it; so however many requests name unknown operations, the users database (and
    the sign-ins that share its bulkhead and breaker) sees at most one read per period. At
    most TRUSTED_OPERATIONS_MAX operations are loaded, the oldest first.

    A read that fails keeps the list read before; with none yet, the lookup fails as the
    read did (SOURCE_UNAVAILABLE), and so do the others until the next try, a second
    later at most."""

    def __init__(self, source: MongoSource, *, cache_seconds: float, max_operations: int) -> None:
        self.source = source
        self.cache_seconds = cache_seconds
        self.max_operations = max_operations
        self._bodies: dict[str, str] | None = None
        self._fresh_until = 0.0
        self._failure: GatewayError | None = None
        self._truncated = False
        self._lock = asyncio.Lock()

    async def find(self, key: str) -> str | None:
        """The body of the operation whose id, or the SHA-256 of whose body, is `key`."""
        return (await self._current()).get(key)

    async def _current(self) -> dict[str, str]:
        if time.monotonic() < self._fresh_until:
            return self._known()
        async with self._lock:
            if time.monotonic() < self._fresh_until:  # another lookup read it meanwhile
                return self._known()
            await self._read()
            return self._known()

    async def _read(self) -> None:
        limit = self.max_operations + 1
        try:
            operations = await self.source.run(
                lambda db: list_operations(db=db, limit=limit), kind="aggregate"
            )
        except GatewayError as exc:
            self._fresh_until = time.monotonic() + min(self.cache_seconds, REDIS_RETRY_SECONDS)
            self._failure = exc
            log.warning(
                "trusted operations: the list could not be read (%s); %s",
                exc.code,
                "still using the one read before" if self._bodies is not None else "none known",
            )
            return
        truncated = len(operations) > self.max_operations
        if truncated and not self._truncated:
            log.warning(
                "trusted operations: more than TRUSTED_OPERATIONS_MAX (%d) are stored; only "
                "the oldest %d are loaded, the others are unknown to this process",
                self.max_operations,
                self.max_operations,
            )
        self._truncated = truncated
        bodies: dict[str, str] = {}
        for operation in operations[: self.max_operations]:
            bodies.setdefault(operation.sha256, operation.body)
            bodies[operation.id] = operation.body
        self._bodies, self._failure = bodies, None
        self._fresh_until = time.monotonic() + self.cache_seconds

    def _known(self) -> dict[str, str]:
        if self._bodies is None:
            if self._failure is not None:
                raise self._failure.with_traceback(None)
            return {}
        return self._bodies


@dataclass(frozen=True, slots=True)
class Resolved:
    """The document a request runs, and the hash to register it under once it has passed
    validation (APQ only)."""

    query: str
    register: str | None = None


class PersistedOperations:
    """Turns what a request sent (query, persisted-query hash, document id) into the
    document it runs, as PERSISTED_OPERATIONS says."""

    def __init__(self, settings: Settings, users: MongoSource) -> None:
        self.mode = settings.persisted_operations
        self.queries = QueryStore(settings)
        self.trusted = TrustedOperations(
            users,
            cache_seconds=settings.trusted_operations_cache_seconds,
            max_operations=settings.trusted_operations_max,
        )

    async def resolve(
        self, *, query: str | None, sha256: str | None, document_id: str | None
    ) -> Resolved:
        """The document to run; PersistedQueryNotFound, PersistedQueryMismatch,
        PersistedQueryNotSupported or OperationNotTrusted when there is none to run."""
        named = sha256 or document_id
        if self.mode == "off":
            if named is not None:
                raise PersistedQueryNotSupported
            return Resolved(_required(query))
        if query is not None and sha256 is not None and sha256_hex(query) != sha256:
            raise PersistedQueryMismatch
        if self.mode == "trusted":
            if query is None:
                if (body := await self.trusted.find(_required(named))) is None:
                    raise PersistedQueryNotFound
                return Resolved(body)
            if await self.trusted.find(sha256_hex(query)) is None:
                raise OperationNotTrusted
            return Resolved(query)
        if query is not None:
            return Resolved(query, register=sha256)
        if sha256 is not None and (stored := await self.queries.get(sha256)) is not None:
            return Resolved(stored)
        if (body := await self._trusted_quietly(_required(named))) is not None:
            return Resolved(body)
        raise PersistedQueryNotFound

    async def register(self, sha256: str, query: str) -> None:
        """Remember a query that passed validation under its (checked) hash."""
        await self.queries.put(sha256, query)

    async def close(self) -> None:
        """Close the store's Redis client."""
        await self.queries.close()

    async def _trusted_quietly(self, key: str) -> str | None:
        # With APQ, the trusted list only spares a round trip: a database that does not
        # answer is a miss, and the client sends its query.
        # (TrustedOperations logs a failed read once per try, not once per request.)
        try:
            return await self.trusted.find(key)
        except GatewayError:
            return None


def _required(value: str | None) -> str:
    if value is None:  # read_request makes sure a request names something to run
        raise PersistedQueryNotFound
    return value


class ManifestError(ValueError):
    """Raised when a manifest of operations is not one `gateway operations add` accepts;
    every problem found is listed."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def parse_manifest(text: str) -> list[PersistedOperation]:
    """The operations of a manifest, in either format the client tools write:

    - Apollo's (`@apollo/generate-persisted-query-manifest`):
      `{"format": "apollo-persisted-query-manifest", "version": 1,
        "operations": [{"id", "name", "type", "body"}]}`
    - The Guild's (graphql-codegen's client preset, `persisted-documents.json`):
      `{"<hash>": "<document>"}`

    Every body must parse; an id that has the shape of a SHA-256 (64 hex digits, or
    `sha256:` and those) must be the SHA-256 of its body, one of a SHA-1 (40) its SHA-1.
    Any problem refuses the whole manifest (ManifestError).
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(["the manifest is not valid JSON"]) from exc
    if not isinstance(data, dict):
        raise ManifestError(["the manifest must be a JSON object"])
    if data.get("format") == APOLLO_MANIFEST_FORMAT:
        entries = _apollo_entries(data)
    elif data and all(isinstance(value, str) for value in data.values()):
        entries = [(key, value, None, None) for key, value in data.items()]
    else:
        raise ManifestError(
            [
                "the manifest is in no known format: expected Apollo's "
                f'{{"format": "{APOLLO_MANIFEST_FORMAT}", "version": 1, "operations": [...]}} '
                'or a persisted-documents.json {"<hash>": "<document>"}'
            ]
        )
    operations: list[PersistedOperation] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for op_id, body, name, kind in entries:
        problem = _problem(op_id, body)
        if problem is None and seen.get(op_id, body) != body:
            problem = f"operation {op_id!r}: listed twice with different bodies"
        if problem is not None:
            problems.append(problem)
            continue
        if op_id in seen:
            continue
        seen[op_id] = body
        op_name, op_type = _name_and_type(body, name, kind)
        operations.append(
            PersistedOperation(
                id=op_id, sha256=sha256_hex(body), body=body, name=op_name, type=op_type
            )
        )
    if problems:
        raise ManifestError(problems)
    if not operations:
        raise ManifestError(["the manifest lists no operations"])
    return operations


def _apollo_entries(data: dict[str, Any]) -> list[tuple[str, str, str | None, str | None]]:
    if data.get("version") != 1:
        raise ManifestError([f"unsupported {APOLLO_MANIFEST_FORMAT} version: only 1 is"])
    operations = data.get("operations")
    if not isinstance(operations, list):
        raise ManifestError(["'operations' must be a list"])
    entries = []
    problems = []
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict):
            problems.append(f"operations[{index}] is not an object")
            continue
        op_id, body = operation.get("id"), operation.get("body")
        name, kind = operation.get("name"), operation.get("type")
        if not isinstance(op_id, str) or not isinstance(body, str):
            problems.append(f"operations[{index}] needs a string 'id' and 'body'")
            continue
        entries.append(
            (
                op_id,
                body,
                name if isinstance(name, str) else None,
                kind if isinstance(kind, str) else None,
            )
        )
    if problems:
        raise ManifestError(problems)
    return entries


def _problem(op_id: str, body: str) -> str | None:
    """What is wrong with one operation, if anything."""
    if not op_id or len(op_id) > _MAX_ID_CHARS or op_id != op_id.strip():
        return f"operation {op_id[:64]!r}: an id must be 1 to {_MAX_ID_CHARS} characters"
    digest = op_id.removeprefix("sha256:")
    if (_SHA256.match(digest) or op_id.startswith("sha256:")) and digest != sha256_hex(body):
        return f"operation {op_id!r}: the id is not the SHA-256 of its body"
    if _SHA1.match(op_id) and op_id != hashlib.sha1(body.encode()).hexdigest():  # noqa: S324 - an id, not security
        return f"operation {op_id!r}: the id is not the SHA-1 of its body"
    try:
        document = parse(body)
    except GraphQLError as exc:
        return f"operation {op_id!r}: the body does not parse ({exc.message})"
    if not any(isinstance(d, OperationDefinitionNode) for d in document.definitions):
        return f"operation {op_id!r}: the body holds no operation"
    return None


def _name_and_type(body: str, name: str | None, kind: str | None) -> tuple[str | None, str | None]:
    """The manifest's name and type, else those of the body's first operation."""
    if name is not None and kind is not None:
        return name, kind
    document = parse(body)
    first = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    return (
        name or (first.name.value if first.name else None),
        kind or first.operation.value,
    )
