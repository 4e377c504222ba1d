"""Rate limits and the failed sign-in slow-down, in memory or shared through Redis.

Requests are limited by GCRA (the generic cell rate algorithm, a token bucket that keeps
one timestamp per key): a key may spend `burst` requests at once, then one per
`1 / per_second` seconds. Failed sign-ins are counted per account and client IP, per
client IP, and per account across addresses: past a few free ones, each further failure
locks the key for a window that doubles up to a cap, and the count is forgotten a while
after the last failure. The account-wide count slows down guessing from many addresses;
it never locks out an address the account signed in from before, so an attacker cannot
keep the owner out. The same two algorithms run in memory (one process) and in Redis as Lua
scripts (atomic, on Redis's own clock, shared by every process).

When Redis does not answer, the limiter does what RATE_LIMIT_REDIS_DOWN says (memory,
open or closed) and retries Redis a second later; `status()` says which is in use.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.core import redis_client
from gateway.core.errors import RateLimited
from gateway.core.rate_settings import IPNetwork, RateLimitSettings
from gateway.core.telemetry import RATE_LIMITED

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger("gateway.ratelimit")

T = TypeVar("T")
# After Redis failed, how long the limiter uses its fallback before trying Redis again.
REDIS_RETRY_SECONDS = 1.0
# The memory backend forgets expired keys once it holds this many.
_SWEEP_AT = 50_000


class Bucket(enum.StrEnum):
    """What a root field costs against the limits: each has its own rate and burst."""

    QUERY = "query"
    MUTATION = "mutation"
    AUTH = "auth"  # signing up, in and refreshing: per client IP
    SENSITIVE = "sensitive"  # password, account deletion, broker credentials


@dataclass(frozen=True, slots=True)
class Rate:
    """A GCRA limit: `burst` at once, then `per_second`."""

    per_second: float
    burst: int

    @property
    def interval_us(self) -> int:
        """Microseconds between two requests at the sustained rate."""
        return max(1, round(1_000_000 / self.per_second))


@dataclass(frozen=True, slots=True)
class Lockout:
    """How failed sign-ins lock a key."""

    free: int
    base_us: int
    max_us: int
    window_us: int


def retry_after_seconds(wait_us: float) -> int:
    """The `retryAfter` for a wait in microseconds: whole seconds, at least 1."""
    return max(1, math.ceil(wait_us / 1_000_000))


def refuse(wait_us: float, message: str = "Too many requests; try again later.") -> RateLimited:
    """The RATE_LIMITED error for a wait in microseconds."""
    return RateLimited(message, retryAfter=retry_after_seconds(wait_us))


def _now_us() -> int:
    return time.time_ns() // 1000


def _lock_us(failures: int, lockout: Lockout) -> int:
    """How long the `failures`-th failure locks its key (0 while failures are free)."""
    over = failures - lockout.free
    if over <= 0:
        return 0
    return int(min(lockout.base_us * 2 ** min(over - 1, 40), lockout.max_us))


class MemoryBackend:
    """The limits of one process."""

    def __init__(self) -> None:
        self._tat: dict[str, int] = {}
        # key -> (failures, locked until, forgotten at)
        self._failures: dict[str, tuple[int, int, int]] = {}
        # key -> forgotten at
        self._known: dict[str, int] = {}

    async def acquire(self, key: str, rate: Rate) -> int:
        """Spend one request of `key`: 0, or the microseconds to wait (nothing spent)."""
        now = _now_us()
        self._sweep(now)
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + rate.interval_us
        allow_at = new_tat - rate.burst * rate.interval_us
        if now < allow_at:
            return allow_at - now
        self._tat[key] = new_tat
        return 0

    async def locked_for(self, keys: Sequence[str]) -> int:
        """The longest lock left on any of `keys`, in microseconds (0: none)."""
        now = _now_us()
        waits = [0]
        for key in keys:
            _failures, until, forget = self._failures.get(key, (0, 0, 0))
            if forget > now:
                waits.append(until - now)
        return max(waits)

    async def fail(self, keys: Sequence[str], lockouts: Sequence[Lockout]) -> None:
        """Count one failed sign-in against each key."""
        now = _now_us()
        for key, lockout in zip(keys, lockouts, strict=True):
            failures, until, forget = self._failures.get(key, (0, 0, 0))
            failures = failures + 1 if forget > now else 1
            lock = _lock_us(failures, lockout)
            until = now + lock if lock else until
            self._failures[key] = (failures, until, now + max(lockout.window_us, lock))

    async def enter(self, keys: Sequence[str], counted: str | None, lockout: Lockout) -> int:
        """The longest lock left on any of `keys` (0: none); when there is none and
        `counted` (one of `keys`) is given, one failure is counted on it at once, before
        the password is checked, so that concurrent attempts cannot all pass one check."""
        wait = await self.locked_for(keys)
        if wait <= 0 and counted is not None:
            await self.fail([counted], [lockout])
        return wait

    async def undo(self, key: str) -> None:
        """Take back one failure counted on `key` by `enter` (the attempt succeeded)."""
        entry = self._failures.get(key)
        if entry is not None:
            self._failures[key] = (max(0, entry[0] - 1), entry[1], entry[2])

    async def forget(self, key: str) -> None:
        """Forget the failures of `key` (its owner signed in)."""
        self._failures.pop(key, None)

    async def remember(self, key: str, ttl_us: int) -> None:
        """Mark `key` known for `ttl_us` microseconds."""
        self._known[key] = _now_us() + ttl_us

    async def is_known(self, key: str) -> bool:
        """Whether `key` was marked known and has not expired."""
        return self._known.get(key, 0) > _now_us()

    def _sweep(self, now: int) -> None:
        if len(self._tat) > _SWEEP_AT:
            self._tat = {key: tat for key, tat in self._tat.items() if tat > now}
        if len(self._failures) > _SWEEP_AT:
            self._failures = {k: v for k, v in self._failures.items() if v[2] > now}
        if len(self._known) > _SWEEP_AT:
            self._known = {k: until for k, until in self._known.items() if until > now}


# KEYS[1]: the key; ARGV: interval (µs), burst. Returns 0, or the µs to wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], string.format('%d', new_tat),
           'PX', math.floor((new_tat - now) / 1000) + 1)
return 0
"""
# The longest lock left on any of KEYS at `now`, in µs.
_LONGEST_LOCK = """
local function longest_lock(now)
  local wait = 0
  for i, key in ipairs(KEYS) do
    local left = tonumber(redis.call('HGET', key, 'until') or 0) - now
    if left > wait then wait = left end
  end
  return wait
end
"""
# KEYS: the keys. Returns the longest lock left, in µs.
_LOCKED_FOR = (
    _LONGEST_LOCK
    + """
local t = redis.call('TIME')
return longest_lock(tonumber(t[1]) * 1000000 + tonumber(t[2]))
"""
)
# One failure counted on `key` at `now`; ARGV from `j`: free, base (µs), max (µs), window (µs).
_COUNT_FAILURE = """
local function count_failure(key, now, j)
  local free = tonumber(ARGV[j + 1])
  local base = tonumber(ARGV[j + 2])
  local max = tonumber(ARGV[j + 3])
  local window = tonumber(ARGV[j + 4])
  local failures = redis.call('HINCRBY', key, 'failures', 1)
  local lock = 0
  if failures > free then
    lock = math.min(base * 2 ^ math.min(failures - free - 1, 40), max)
    redis.call('HSET', key, 'until', string.format('%d', now + lock))
  end
  redis.call('PEXPIRE', key, math.floor(math.max(window, lock) / 1000) + 1)
end
"""
# KEYS: the keys; ARGV: per key, free, base (µs), max (µs), window (µs).
_FAIL = (
    _COUNT_FAILURE
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i, key in ipairs(KEYS) do
  count_failure(key, now, (i - 1) * 4)
end
return 0
"""
)
# KEYS: the keys; ARGV: the index (1-based) of the key to count a failure on at once when
# none is locked (0: none), then its free, base (µs), max (µs), window (µs).
# Returns the longest lock left, in µs (0: none, and the failure was counted).
_ENTER = (
    _LONGEST_LOCK
    + _COUNT_FAILURE
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = longest_lock(now)
local counted = tonumber(ARGV[1])
if wait <= 0 and counted > 0 then count_failure(KEYS[counted], now, 1) end
return wait
"""
)
# KEYS[1]: a key `_ENTER` counted a failure on. Takes it back (never below 0).
_UNDO = """
if redis.call('EXISTS', KEYS[1]) == 1 and
   redis.call('HINCRBY', KEYS[1], 'failures', -1) < 0 then
  redis.call('HSET', KEYS[1], 'failures', 0)
end
return 0
"""


class RedisBackend:
    """The limits every process shares, through one Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._gcra = client.register_script(_GCRA)
        self._locked_for = client.register_script(_LOCKED_FOR)
        self._fail = client.register_script(_FAIL)
        self._enter = client.register_script(_ENTER)
        self._undo = client.register_script(_UNDO)

    async def acquire(self, key: str, rate: Rate) -> int:
        """Spend one request of `key`: 0, or the microseconds to wait (nothing spent)."""
        return int(await self._gcra(keys=[key], args=[rate.interval_us, rate.burst]))

    async def locked_for(self, keys: Sequence[str]) -> int:
        """The longest lock left on any of `keys`, in microseconds (0: none)."""
        return int(await self._locked_for(keys=list(keys), args=[]))

    async def fail(self, keys: Sequence[str], lockouts: Sequence[Lockout]) -> None:
        """Count one failed sign-in against each key."""
        args: list[int] = []
        for lockout in lockouts:
            args += [lockout.free, lockout.base_us, lockout.max_us, lockout.window_us]
        await self._fail(keys=list(keys), args=args)

    async def forget(self, key: str) -> None:
        """Forget the failures of `key` (its owner signed in)."""
        await self.client.delete(key)

    async def enter(self, keys: Sequence[str], counted: str | None, lockout: Lockout) -> int:
        """The longest lock left on any of `keys` (0: none); when there is none and
        `counted` (one of `keys`) is given, one failure is counted on it at once."""
        index = list(keys).index(counted) + 1 if counted is not None else 0
        args = [index, lockout.free, lockout.base_us, lockout.max_us, lockout.window_us]
        return int(await self._enter(keys=list(keys), args=args))

    async def undo(self, key: str) -> None:
        """Take back one failure counted on `key` by `enter` (the attempt succeeded)."""
        await self._undo(keys=[key], args=[])

    async def remember(self, key: str, ttl_us: int) -> None:
        """Mark `key` known for `ttl_us` microseconds."""
        await self.client.set(key, b"1", px=max(1, ttl_us // 1000))

    async def is_known(self, key: str) -> bool:
        """Whether `key` was marked known and has not expired."""
        return bool(await self.client.exists(key))


Backend = MemoryBackend | RedisBackend


@dataclass
class _RedisHealth:
    ok: bool = True
    error: str | None = None
    retry_at: float = 0.0


class Limiter:
    """The gateway's rate limits: per bucket and key, and the failed sign-in lockouts."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self.settings = settings
        self.enabled = settings.rate_limit_enabled
        self.prefix = settings.rate_limit_key_prefix
        self.trusted_proxies = settings.trusted_proxy_networks
        self.memory = MemoryBackend()
        self.redis: RedisBackend | None = None
        self._health = _RedisHealth()
        if settings.redis_url:
            seconds = settings.rate_limit_redis_timeout_seconds
            client = redis_client.connect(settings.redis_url, timeout_seconds=seconds)
            self.redis = RedisBackend(client)
        self.rates = {
            Bucket.QUERY: _per_minute(
                settings.rate_limit_query_per_minute, settings.rate_limit_query_burst
            ),
            Bucket.MUTATION: _per_minute(
                settings.rate_limit_mutation_per_minute, settings.rate_limit_mutation_burst
            ),
            Bucket.AUTH: _per_minute(
                settings.rate_limit_auth_per_minute, settings.rate_limit_auth_burst
            ),
            Bucket.SENSITIVE: _per_minute(
                settings.rate_limit_sensitive_per_minute, settings.rate_limit_sensitive_burst
            ),
        }
        self.ip_rate = Rate(settings.rate_limit_ip_per_second, settings.rate_limit_ip_burst)

        def lockout(free: int) -> Lockout:
            return Lockout(
                free=free,
                base_us=round(settings.signin_lockout_base_seconds * 1e6),
                max_us=round(settings.signin_lockout_max_seconds * 1e6),
                window_us=round(settings.signin_failure_window_seconds * 1e6),
            )

        self.account_lockout = lockout(settings.signin_account_free_failures)
        self.ip_lockout = lockout(settings.signin_ip_free_failures)
        self.account_wide_lockout = lockout(settings.signin_account_wide_free_failures)
        self.known_address_us = round(settings.signin_known_address_days * 86_400e6)

    @property
    def backend(self) -> str:
        """`redis` when REDIS_URL is set, else `memory`."""
        return "redis" if self.redis is not None else "memory"

    async def check_request(self, ip: str) -> None:
        """Spend one whole request of a client IP; RATE_LIMITED when it has none left."""
        await self._acquire(f"ip:{ip}", self.ip_rate, limit="ip")

    async def check(self, bucket: Bucket, operation: str, subject: str) -> None:
        """Spend one call of a root field (`operation`) for a user or IP (`subject`)."""
        await self._acquire(f"{bucket}:{operation}:{subject}", self.rates[bucket], limit=bucket)

    async def check_sign_in(self, *, account: str, ip: str) -> bool:
        """RATE_LIMITED while failed sign-ins lock the account from this IP, the IP, or
        (for an address the account never signed in from) the account everywhere.

        From such an address the attempt is counted account-wide at once, in the same
        atomic step as the check, before the password is: a botnet's concurrent attempts
        cannot all pass one check. True when it was; `signed_in(counted=True)` takes it
        back, and `sign_in_failed(counted=True)` does not count it again.
        """
        if not self.enabled:
            return False
        keys = await self._sign_in_keys(account, ip)
        counted = keys[2] if len(keys) > 2 else None
        wide = self.account_wide_lockout
        wait = await self._run(
            lambda backend: backend.enter(keys, counted, wide), 0, limit="signin"
        )
        if wait > 0:
            RATE_LIMITED.labels("signin").inc()
            raise refuse(wait, "Too many failed sign-ins; try again later.")
        return counted is not None

    async def sign_in_failed(self, *, account: str, ip: str, counted: bool = False) -> None:
        """Count a failed sign-in against the account from this IP, the IP, and (from an
        address the account never signed in from, unless `check_sign_in` counted it
        already) the account everywhere."""
        if not self.enabled:
            return
        # Counted account-wide already: only the per-address keys, no need to ask whether
        # the address is known.
        keys = self._address_keys(account, ip) if counted else await self._sign_in_keys(account, ip)
        lockouts = [self.account_lockout, self.ip_lockout, self.account_wide_lockout]
        await self._run(
            lambda backend: backend.fail(keys, lockouts[: len(keys)]), None, limit="signin"
        )

    async def signed_in(self, *, account: str, ip: str, counted: bool = False) -> None:
        """Forget the account's failed sign-ins from this IP (the IP's own, and the
        account-wide count, stay; an attempt `check_sign_in` counted account-wide is taken
        back), and remember the IP as one the account signs in from."""
        if not self.enabled:
            return
        failures, known = self._account_key(account, ip), self._known_key(account, ip)
        wide = self._wide_key(account)

        async def signed_in(backend: Backend) -> None:
            await backend.forget(failures)
            await backend.remember(known, self.known_address_us)
            if counted:
                await backend.undo(wide)

        await self._run(signed_in, None, limit="signin")

    async def _sign_in_keys(self, account: str, ip: str) -> list[str]:
        """The failure keys a sign-in of `account` from `ip` is checked and counted on: the
        account-wide key last, and only for an address the account is not known from."""
        keys = self._address_keys(account, ip)
        known = self._known_key(account, ip)
        if not await self._run(lambda backend: backend.is_known(known), True, limit="signin"):
            keys.append(self._wide_key(account))
        return keys

    def _address_keys(self, account: str, ip: str) -> list[str]:
        """The account from this address, and the address itself."""
        return [self._account_key(account, ip), self._key(f"signin:ip:{ip}")]

    def _wide_key(self, account: str) -> str:
        return self._key(f"signin:account-wide:{_digest(account)}")

    async def status(self) -> dict[str, Any]:
        """What `/readyz` shows: the backend, whether Redis answers, the fallback in use."""
        report: dict[str, Any] = {"enabled": self.enabled, "backend": self.backend}
        if self.redis is None:
            return report
        try:
            async with asyncio.timeout(self.settings.rate_limit_redis_timeout_seconds * 2):
                await self.redis.client.ping()
        except redis_client.failures() as exc:
            self._down(exc)
        else:
            self._health = _RedisHealth()
        report["redis"] = {"ok": self._health.ok}
        if not self._health.ok:
            report["redis"]["error"] = self._health.error
            report["redis"]["fallback"] = self.settings.rate_limit_redis_down
        return report

    @property
    def ready(self) -> bool:
        """False only when the limiter fails closed and Redis is down."""
        return self._health.ok or self.settings.rate_limit_redis_down != "closed"

    async def close(self) -> None:
        """Close the Redis client."""
        if self.redis is not None:
            await self.redis.client.aclose()

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _account_key(self, account: str, ip: str) -> str:
        # Per account *and* client IP: failures from one address lock that address out of
        # the account, never its owner signing in from elsewhere (an attacker could
        # otherwise keep a real user locked out for good by failing once per lock).
        # Hashed: bounded in length, and no email in Redis.
        return self._key(f"signin:account:{_digest(account, ip)}")

    def _known_key(self, account: str, ip: str) -> str:
        return self._key(f"signin:known:{_digest(account, ip)}")

    async def _acquire(self, name: str, rate: Rate, *, limit: str) -> None:
        if not self.enabled:
            return
        key = self._key(name)
        wait = await self._run(lambda backend: backend.acquire(key, rate), 0, limit=limit)
        if wait > 0:
            RATE_LIMITED.labels(limit).inc()
            raise refuse(wait)

    async def _run(
        self, call: Callable[[Backend], Awaitable[T]], open_value: T, *, limit: str
    ) -> T:
        """`call` on Redis, or on the fallback while Redis does not answer (`limit` names
        what a refusal of the `closed` fallback is counted as)."""
        if self.redis is not None:
            if self._health.ok or time.monotonic() >= self._health.retry_at:
                try:
                    result = await call(self.redis)
                except redis_client.failures() as exc:
                    self._down(exc)
                else:
                    if not self._health.ok:
                        log.warning("rate limits: Redis answers again")
                    self._health = _RedisHealth()
                    return result
            fallback = self.settings.rate_limit_redis_down
            if fallback == "open":
                return open_value
            if fallback == "closed":
                RATE_LIMITED.labels(limit).inc()
                raise RateLimited(
                    "Rate limits are unavailable; try again later.",
                    retryAfter=math.ceil(REDIS_RETRY_SECONDS),
                )
        return await call(self.memory)

    def _down(self, exc: BaseException) -> None:
        if self._health.ok:
            log.warning(
                "rate limits: Redis does not answer (%s); %s until it does",
                type(exc).__name__,
                self.settings.rate_limit_redis_down,
            )
        self._health = _RedisHealth(
            ok=False,
            error=type(exc).__name__,
            retry_at=time.monotonic() + REDIS_RETRY_SECONDS,
        )


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _per_minute(per_minute: float, burst: int) -> Rate:
    return Rate(per_second=per_minute / 60.0, burst=burst)


@dataclass
class RequestLimits:
    """One request's view of the limiter: its client IP, and the longest `retryAfter`
    it was refused with (the HTTP `Retry-After` of its answer)."""

    limiter: Limiter | None
    ip: str
    retry_after: int | None = field(default=None)
    # Accounts whose sign-in attempt in this request was counted account-wide at once.
    counted: set[str] = field(default_factory=set)

    async def check(self, bucket: Bucket, operation: str, subject: str | None) -> None:
        """Spend one call of `operation` for `subject` (the client IP when None)."""
        if self.limiter is None:
            return
        try:
            await self.limiter.check(bucket, operation, subject or f"ip:{self.ip}")
        except RateLimited as exc:
            self.refused(exc)
            raise

    async def check_sign_in(self, account: str) -> None:
        """RATE_LIMITED while failed sign-ins lock the account (normalized email) or the IP;
        the attempt may be counted at once (`Limiter.check_sign_in`), which this request
        remembers until its outcome is known."""
        if self.limiter is None:
            return
        try:
            if await self.limiter.check_sign_in(account=account, ip=self.ip):
                self.counted.add(account)
        except RateLimited as exc:
            self.refused(exc)
            raise

    async def sign_in_failed(self, account: str) -> None:
        """Count a failed sign-in against the account and this request's IP."""
        if self.limiter is not None:
            counted = account in self.counted
            self.counted.discard(account)
            await self.limiter.sign_in_failed(account=account, ip=self.ip, counted=counted)

    async def signed_in(self, account: str) -> None:
        """Forget the account's failed sign-ins from this IP, remember the IP as one the
        account signs in from, and take back an attempt counted at once."""
        if self.limiter is not None:
            counted = account in self.counted
            self.counted.discard(account)
            await self.limiter.signed_in(account=account, ip=self.ip, counted=counted)

    def refused(self, exc: RateLimited) -> None:
        """Remember a refusal, so the answer carries `Retry-After`."""
        seconds = int(exc.extensions.get("retryAfter", 1))
        self.retry_after = max(self.retry_after or 0, seconds)


def client_ip(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the
    X-Forwarded-For hops are read from the right (the hop each proxy appended) and the
    first one that is not a trusted proxy is the client. An IPv6 client is its /64."""
    address = _address(peer)
    if address is None:
        return peer or "unknown"
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    while _is_trusted(address, trusted) and hops:
        hop = _address(hops.pop())
        if hop is None:  # a forged or garbled entry: the last trusted hop is the client
            break
        address = hop
    return _subject(address)


def _subject(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    # One IPv6 client holds a whole /64 (its addresses rotate within it): it is one subject.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if isinstance(address, ipaddress.IPv6Address) and not address.is_loopback:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _address(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _is_trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[IPNetwork]
) -> bool:
    return any(address in network for network in trusted)
