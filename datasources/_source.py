"""The one shape of every database behind the gateway, and the boundary that maps its errors.

A source is an object with a name, `ping`, `close`, `migrate`, `forget_user` (its
step of an account deletion), `clear` (tests), `loaders(scope)` and the driver
errors that make it unavailable. `Sources` (datasources/__init__.py) registers
each one once and derives everything done "for every source" from that list.

Errors are mapped inside the source, the way an httpx transport maps network
errors inside itself: every public coroutine method of a `SourceBase` subclass
runs within the source's boundary, automatically (`__init_subclass__`), so no
caller wraps a call and a new method cannot forget it. Within the boundary a
unique-key violation is a CONFLICT and any other driver, network or timeout
failure makes the source SOURCE_UNAVAILABLE; the driver's message is logged,
never shown. Request-path methods also run under the source's deadline, which
holds: the caller has its answer when it passes, whatever the database does,
and the driver's work is never cancelled from outside (`_within_deadline`).
`migrate` (and the other migration methods), `clear` and `close` have no deadline (an index
build may take longer).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, runtime_checkable

from aiodataloader import DataLoader

from datasources._batch import Scope, measured_loader
from gateway.core.errors import Conflict, GatewayError, SourceUnavailable
from gateway.core.telemetry import SourceMeter

log = logging.getLogger("gateway.sources")

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Methods that run within the boundary but without the request deadline.
_NO_DEADLINE = frozenset({"migrate", "migration_status", "downgrade", "history", "clear", "close"})
# Call outcomes in which the source answered (the call log counts the others as failed).
_ANSWERED = frozenset({"ok", "conflict"})

# What a source call does, which sets how long it may take (`Deadlines`): a `lookup` reads
# by key or index range, an `aggregate` computes over many rows, a `write` changes data,
# and `bulk` removes everything of one user (a step of account deletion, off any request).
CallKind = Literal["lookup", "aggregate", "write", "bulk"]
ReadKind = Literal["lookup", "aggregate"]
# The kind of the boundary's fixed-purpose methods; `run` and `read` take theirs as an
# argument (`kind=`) from every caller, so none can be left without one.
_METHOD_KINDS: dict[str, CallKind] = {"write": "write", "forget_user": "bulk", "ping": "lookup"}


@runtime_checkable
class Source(Protocol):
    """One database behind the gateway."""

    name: ClassVar[str]
    # The user's record lives here: account deletion forgets it last (see resolvers/deletion.py).
    holds_accounts: ClassVar[bool]
    # Driver errors that mean "this source cannot answer now".
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]]
    # Its circuit breaker (per process).
    breaker: Breaker
    # What its calls report: metrics, spans (see `SourceBase._within_deadline`).
    telemetry: SourceMeter

    async def ping(self) -> None:
        """Answer one trivial command, or raise SOURCE_UNAVAILABLE."""

    async def migrate(self) -> None:
        """Create the source's tables, collections and indexes; idempotent."""

    async def forget_user(self, user_id: str) -> None:
        """Remove everything of one user (a step of account deletion); idempotent."""

    async def clear(self) -> None:
        """Remove every row of every table or collection the source owns (tests only)."""

    async def close(self) -> None:
        """Release the source's client or pool (shared ones when the last user leaves)."""

    def loaders(self, scope: Scope) -> object:
        """A fresh set of this source's DataLoaders for one request, reading within `scope`."""


class Shared(Generic[T]):
    """A client or pool shared by several sources (Mongo databases on one server, one SQL
    database holding two sources): closed once, when the last source using it closes."""

    def __init__(self, resource: T, close: Callable[[T], Awaitable[object]]) -> None:
        self.resource = resource
        self._close = close
        self._leases = 0

    def lease(self) -> T:
        """Take a share of the resource; each lease is released by one `release`."""
        self._leases += 1
        return self.resource

    async def release(self) -> None:
        """Give a share back; the last one closes the resource (once)."""
        if self._leases <= 0:
            return
        self._leases -= 1
        if self._leases == 0:
            await self._close(self.resource)


# Set inside a bounded call: a source method it calls runs within the same deadline.
_BOUNDED: ContextVar[SourceBase | None] = ContextVar("source_call_bounded", default=None)
# The deadline of the work in progress (a request, a readiness probe), in loop time: no
# source call outlives it, whatever its own deadline.
_DEADLINE: ContextVar[float | None] = ContextVar("source_calls_deadline", default=None)


@contextmanager
def _ending_at(at: float) -> Iterator[None]:
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def deadline(seconds: float) -> AbstractContextManager[None]:
    """Bound every source call made within (in this task and the tasks it starts) to end
    `seconds` from now at the latest; nested deadlines only shorten it."""
    at = asyncio.get_running_loop().time() + seconds
    outer = _DEADLINE.get()
    return _ending_at(at if outer is None else min(at, outer))


def time_left() -> float | None:
    """Seconds left before the deadline of the work in progress (None: it has none)."""
    at = _DEADLINE.get()
    return None if at is None else max(0.0, at - asyncio.get_running_loop().time())


@dataclass(slots=True)
class SourceCalls:
    """What one source did for the work in progress: calls answered and failed, and the
    slowest one (seconds)."""

    answered: int = 0
    failed: int = 0
    slowest: float = 0.0


class CallLog:
    """The source calls of one piece of work (a request), as they happen: per source, what
    `SourceCalls` counts, and the calls still running."""

    def __init__(self) -> None:
        self.by_source: dict[str, SourceCalls] = {}
        self._running: set[asyncio.Future[Any]] = set()

    def started(self, task: asyncio.Future[Any]) -> None:
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def ended(self, source: str, seconds: float, *, ok: bool) -> None:
        calls = self.by_source.setdefault(source, SourceCalls())
        if ok:
            calls.answered += 1
        else:
            calls.failed += 1
        calls.slowest = max(calls.slowest, seconds)

    async def settled(self) -> dict[str, SourceCalls]:
        """The calls once none is running, nor about to start: what the work asked of every
        source. A field resolved after a source answered starts its own loads a few turns of
        the loop later (the answer's callbacks, the resolver, the DataLoader's dispatch on the
        next turn, its batch task), so the log must stay empty for a few turns first."""
        while True:
            for _ in range(_SETTLE_TURNS):
                await asyncio.sleep(0)
            if not self._running:
                return dict(self.by_source)
            await asyncio.wait(set(self._running))


_CALLS: ContextVar[CallLog | None] = ContextVar("source_call_log", default=None)
# Turns of the event loop a call log must stay empty to be settled (see CallLog.settled).
_SETTLE_TURNS = 8


@contextmanager
def observe() -> Iterator[CallLog]:
    """Record every source call made within (this task and the tasks it starts)."""
    log = CallLog()
    token = _CALLS.set(log)
    try:
        yield log
    finally:
        _CALLS.reset(token)


def current_calls() -> CallLog | None:
    """The call log of the work in progress, if it is observed."""
    return _CALLS.get()


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long one call to a source may take, by its kind (seconds)."""

    lookup: float = 1.0
    aggregate: float = 3.0
    write: float = 3.0
    bulk: float = 60.0

    @classmethod
    def every(cls, seconds: float) -> Deadlines:
        """The same deadline for every kind of call."""
        return cls(lookup=seconds, aggregate=seconds, write=seconds, bulk=seconds)

    def of(self, kind: CallKind) -> float:
        """The deadline of a call of `kind`."""
        seconds: float = getattr(self, kind)
        return seconds

    @property
    def longest(self) -> float:
        """The longest one call a request makes may take (bulk calls are no request's)."""
        return max(self.lookup, self.aggregate, self.write)


@dataclass(frozen=True, slots=True)
class SourceLimits:
    """How a source protects the process from itself failing: each call ends by its
    kind's deadline; after `breaker_failures` failed calls in a row its breaker opens and
    calls fail at once for `breaker_cooldown_seconds`, then one probe call decides; at
    most `concurrency` calls run against it at once (a slow database cannot hold every
    request)."""

    deadlines: Deadlines = Deadlines()
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 5.0
    concurrency: int = 32


class Breaker:
    """One source's circuit breaker, per process: closed, open, or half-open (one probe)."""

    def __init__(self, limits: SourceLimits) -> None:
        self._limits = limits
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """`closed`, `open` (calls fail at once) or `half-open` (the next call probes)."""
        if self._opened_at is None:
            return "closed"
        waited = time.monotonic() - self._opened_at
        return "open" if waited < self._limits.breaker_cooldown_seconds else "half-open"

    def admit(self) -> str | None:
        """A ticket for a call that may go to the source now: "call", or "probe" for the one
        call let through in half-open; None when the call must fail at once."""
        state = self.state
        if state == "closed":
            return "call"
        if state == "open" or self._probing:
            return None
        self._probing = True
        return "probe"

    def succeeded(self) -> None:
        """The source answered: the breaker closes."""
        self._failures, self._opened_at, self._probing = 0, None, False

    def let_go(self, ticket: str) -> None:
        """A call ended without an answer either way: if it was the probe, the next call
        may probe instead."""
        if ticket == "probe":
            self._probing = False

    def failed(self) -> None:
        """The source failed a call: after enough in a row (or a failed probe) it opens."""
        self._failures += 1
        if self._probing or self._failures >= self._limits.breaker_failures:
            self._opened_at = time.monotonic()
        self._probing = False


def detached(seconds: float) -> AbstractContextManager[None]:
    """Give the source calls made within a deadline of their own, `seconds` from now, even
    when the work in progress has spent its own: for compensations and records that must
    not be skipped because the request ran out of time (releasing an idempotency claim,
    recording what a write did)."""
    return _ending_at(asyncio.get_running_loop().time() + seconds)


def _within_boundary(
    method: Callable[..., Coroutine[Any, Any, R]],
) -> Callable[..., Coroutine[Any, Any, R]]:
    deadline = method.__name__ not in _NO_DEADLINE
    fixed_kind = _METHOD_KINDS.get(method.__name__, "lookup")

    @functools.wraps(method)
    async def mapped(self: SourceBase, *args: Any, **kwargs: Any) -> R:
        # A plain try rather than a context manager: this runs for every source call.
        try:
            if not deadline or _BOUNDED.get() is self:
                return await method(self, *args, **kwargs)
            seconds = self.limits.deadlines.of(kwargs.get("kind", fixed_kind))
            return await self._within_deadline(method(self, *args, **kwargs), seconds)
        except GatewayError:
            raise
        except BaseException as exc:
            coded = self._mapped_error(exc)
            if coded is None:
                raise
            raise coded from exc

    mapped.__source_boundary__ = True  # type: ignore[attr-defined]
    return mapped


async def _outcome_by(task: asyncio.Future[R], until: float) -> R:
    """`task`'s result (or exception) once it ends, or TimeoutError at loop time `until` if
    it has not; either way, and when the caller is cancelled, `task` itself runs on.

    What `asyncio.timeout` around `asyncio.shield(task)` does, with one future and one
    timer instead of a shield's outer future, its callbacks and a timeout's context
    (bench/README.md, "The Mongo read path"). Not `asyncio.wait_for`: on Python
    3.11 it loses the caller's cancellation when the call ends at the same moment, and the
    caller then runs on (a background loop that was stopped would sleep again instead of
    ending); a cancellation arriving here after `task` ended still raises at the `await`.
    """
    loop = asyncio.get_running_loop()
    woken = loop.create_future()

    def wake(_: object = None) -> None:
        if not woken.done():
            woken.set_result(None)

    timer = loop.call_at(until, wake)
    task.add_done_callback(wake)
    try:
        await woken
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    if not task.done():
        raise TimeoutError
    return task.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    # An abandoned call's outcome is collected, so none is reported as never retrieved.
    if not task.cancelled():
        task.exception()


class SourceBase:
    """What every source shares: its name, deadline and the error-mapping boundary."""

    name: ClassVar[str]
    holds_accounts: ClassVar[bool] = False
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = (OSError, TimeoutError)
    conflict_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    # The database kind, as OpenTelemetry's `db.system` names it (spans of its calls).
    db_system: str = "other"

    def __init__(self, *, limits: SourceLimits | None = None) -> None:
        self.limits = limits or SourceLimits()
        self.breaker = Breaker(self.limits)
        # What makes the source unavailable: its driver's errors, and its deadline passing.
        self._unavailable: tuple[type[BaseException], ...] = (
            TimeoutError,
            *self.unavailable_errors,
        )
        # What a call fails with when the source is down (and so counts against its breaker).
        self._failures: tuple[type[BaseException], ...] = (SourceUnavailable, *self._unavailable)
        self._slots = asyncio.Semaphore(self.limits.concurrency)
        # The driver calls still running, abandoned by their callers or not.
        self._running: set[asyncio.Future[Any]] = set()
        # What every call reports (metrics, spans): see `_within_deadline`.
        self.telemetry = SourceMeter(
            self.name, db_system=self.db_system, concurrency=self.limits.concurrency
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attribute in dir(cls):
            if attribute.startswith("_"):
                continue
            value = inspect.getattr_static(cls, attribute)
            if inspect.isasyncgenfunction(inspect.unwrap(value)):
                # An async iterator or context manager would escape the boundary between
                # its steps: a source offers coroutines (or `run`/`read`/`write`) only.
                raise TypeError(f"{cls.__name__}.{attribute}: a source method must be a coroutine")
            if inspect.iscoroutinefunction(value) and not hasattr(value, "__source_boundary__"):
                setattr(cls, attribute, _within_boundary(value))

    @property
    def timeout(self) -> float:
        """The longest one call of this source may take (the deadline of compensations)."""
        return self.limits.deadlines.longest

    async def _within_deadline(self, call: Coroutine[Any, Any, R], seconds: float) -> R:
        """`_deadline_call`, reported: to the source's telemetry (metrics, and a span when
        tracing; every source is measured here, none by its own code) and to the call log of
        the work in progress if it is observed."""
        log = _CALLS.get()
        span = self.telemetry.started()
        started = time.perf_counter()
        running: asyncio.Future[None] | None = None
        if log is not None:
            running = asyncio.get_running_loop().create_future()
            log.started(running)
        outcome = "ok"
        try:
            return await self._deadline_call(call, seconds)
        except BaseException as exc:
            outcome = self._outcome(exc)
            raise
        finally:
            took = time.perf_counter() - started
            self.telemetry.ended(outcome, took, span, self.breaker.state)
            if log is not None and running is not None:
                log.ended(self.name, took, ok=outcome in _ANSWERED)
                running.set_result(None)

    def _outcome(self, exc: BaseException) -> str:
        """How a call that raised `exc` ended, in the metrics' words (`SOURCE_OUTCOMES`).
        Driver errors reach this point unmapped (`_mapped_error` maps them after), so a
        SOURCE_UNAVAILABLE here is the source refusing the call itself: its breaker open."""
        if isinstance(exc, (Conflict, *self.conflict_errors)):
            return "conflict"
        if isinstance(exc, SourceUnavailable):
            return "rejected"
        if isinstance(exc, GatewayError):  # a coded answer (not found, bad input): answered
            return "ok"
        if isinstance(exc, asyncio.CancelledError):
            return "cancelled"
        # PyMongo's own deadline (`pymongo.timeout`) raises errors whose `timeout` is true.
        if isinstance(exc, TimeoutError) or getattr(exc, "timeout", False) is True:
            return "timeout"
        return "error"

    def loader(self, batch: Callable[[list[K]], Coroutine[Any, Any, list[V]]]) -> DataLoader[K, V]:
        """A per-request DataLoader over `batch`, its batch sizes measured under this source
        and the batch function's name (`_load_by_id` is `by_id`)."""
        return measured_loader(self.name, batch)

    async def _deadline_call(self, call: Coroutine[Any, Any, R], seconds: float) -> R:
        """`call`'s result, or TimeoutError once its deadline (`seconds`, by its kind), or
        the deadline of the work in progress (`deadline`) if that comes first, has passed.

        The call runs in a task of its own that the caller's deadline or cancellation
        never interrupts from outside: the caller stops waiting at once, and the source
        decides how its abandoned call ends (`_abandon`). Cancelling a driver's coroutine
        midway can leave the driver's own state broken (PyMongo's topology lock, see
        `MongoSource`), and closing a cancelled SQL connection would hold the request up.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        # When the request's deadline comes first, running out of time is the request's
        # doing, not the source's: it does not count against the breaker.
        spent_by_caller = False
        if (at := _DEADLINE.get()) is not None and at < until:
            until, spent_by_caller = at, True
        if until <= loop.time():  # the request's time is spent: nothing asked, nothing learnt
            call.close()
            raise TimeoutError
        ticket = await self._admit(call, until)
        task = asyncio.ensure_future(self._bounded(call, until - loop.time()))
        self._running.add(task)
        task.add_done_callback(self._call_ended)
        try:
            result = await _outcome_by(task, until)
        except asyncio.CancelledError:  # the caller went away: says nothing of the source
            self._abandon(task)
            self.breaker.let_go(ticket)
            raise
        except TimeoutError:
            self._abandon(task)
            if spent_by_caller:
                self.breaker.let_go(ticket)
            else:
                self.breaker.failed()
            raise
        except self.conflict_errors:  # a unique-key violation is an answer
            self.breaker.succeeded()
            raise
        except self._failures:
            self.breaker.failed()
            raise
        except BaseException:
            # A refusal of ours, or our own code failing: neither says the source is down.
            self.breaker.succeeded()
            raise
        self.breaker.succeeded()
        return result

    def _call_ended(self, task: asyncio.Future[Any]) -> None:
        """The driver's work for a call is over (answered, failed or abandoned): its slot is
        free again."""
        self._slots.release()
        self._running.discard(task)

    async def _admit(self, call: Coroutine[Any, Any, Any], until: float) -> str:
        """The breaker's ticket for `call`, holding one of the source's slots (the
        bulkhead); `call` is closed, unasked, when the source refuses it or time runs out."""
        if self.breaker.state == "open":  # fail at once, without even queueing for a slot
            call.close()
            raise SourceUnavailable(self.name)
        # A slot is held until the driver's work ends, even abandoned. A free slot is taken
        # at once; only a full source makes the call wait (to its deadline).
        if self._slots.locked():
            try:
                async with asyncio.timeout_at(until):
                    await self._slots.acquire()
            except BaseException:  # the deadline, or the caller gone: nothing was asked
                call.close()
                raise
        else:
            await self._slots.acquire()
        running_late = until <= asyncio.get_running_loop().time()
        ticket = None if running_late else self.breaker.admit()
        if ticket is None:
            self._slots.release()
            call.close()
            if running_late:
                raise TimeoutError
            raise SourceUnavailable(self.name)
        return ticket

    async def _bounded(self, call: Coroutine[Any, Any, R], seconds: float) -> R:
        """Run `call` in its task, under the driver's own deadline (`seconds`) where it has
        one."""
        _BOUNDED.set(self)
        return await call

    async def _calls_ended(self) -> None:
        """Wait for the driver calls still running (each ends by its deadline): a client
        closed under one would leave its connection open."""
        if self._running:
            await asyncio.wait(set(self._running))

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        """End a call nobody waits for any more: cancelled, unless the source overrides."""
        task.cancel()
        task.add_done_callback(_retrieve)

    def _mapped_error(self, exc: BaseException) -> GatewayError | None:
        """The coded error a driver error maps to, most specific first: a unique-key
        violation is a CONFLICT; any other driver, network or timeout failure makes the
        source SOURCE_UNAVAILABLE. None for anything else (it passes through unchanged, as
        coded errors raised inside do)."""
        if isinstance(exc, self.conflict_errors):
            return Conflict("That value is already taken.")
        if isinstance(exc, self._unavailable):
            log.warning("source %s failed: %s: %s", self.name, type(exc).__name__, exc)
            return SourceUnavailable(self.name)
        return None
