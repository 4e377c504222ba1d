"""Strategies: reading them, and creating, updating and deleting the viewer's own.

The lifecycle (start, stop, pause, resume) is in `strategy_lifecycle`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import Enum
from functools import partial
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from datasources import Document, idempotency, outbox
from datasources import strategies as strategies_source
from datasources.strategies import COLLECTION, EDITABLE, FIELDS, StrategyPageKey, StrategyRecord
from gateway.core.errors import BadUserInput, Conflict, GatewayError, NotFound
from resolvers.activity import deliver
from resolvers.checks import Refusals
from resolvers.context import Context
from resolvers.pagination import Slice, check_first, parse_strategy_cursor, strategy_cursor
from resolvers.strategy_input import api_name, check_fields

log = logging.getLogger("gateway.strategies")


async def strategy_page(
    ctx: Context,
    *,
    user_id: str,
    status: Enum | None,
    first: int | None,
    after: str | None,
) -> Slice[StrategyRecord]:
    """One page of a user's strategies, newest first, optionally of one status."""
    size = check_first(first)
    status_value = str(status.value) if status is not None else None
    key = StrategyPageKey(
        user_id=user_id, status=status_value, first=size, after=parse_strategy_cursor(after)
    )
    loaders = ctx.loaders
    page = await loaders.strategies.page.load(key)

    async def total() -> int:
        counts = await loaders.strategies.counts.load(user_id)
        return counts.count(status_value)

    return Slice(
        items=page.items,
        cursors=[strategy_cursor(item.id) for item in page.items],
        has_next=page.has_next,
        after=after,
        total=total,
    )


async def strategy_by_id(ctx: Context, strategy_id: str) -> StrategyRecord | None:
    """The strategy with this id, batched with the request's other lookups; None when there
    is none or it is outside the viewer's scope."""
    return await ctx.loaders.strategies.by_id.load(strategy_id)


async def get_strategy(ctx: Context, strategy_id: str) -> StrategyRecord:
    """The viewer's strategy with this id; NOT_FOUND for another user's or a missing one."""
    viewer = ctx.checked_viewer
    record = await ctx.loaders.strategies.by_id.load(strategy_id)
    # Checked here too: an ADMIN's loaders read every user's rows.
    if record is None or record.user_id != viewer.id:
        raise NotFound("No strategy with this id.")
    return record


# Writes. Each checks its whole input before it writes, and reads the strategy
# afresh (never through the request's loaders) to decide.

NOT_RUNNING = ("STOPPED", "ERROR")
# Fields the strategy runner executes with: they change only while it does not run.
RUNTIME_FIELDS = tuple(field.attr for field in FIELDS if field.runtime)
CREATE = "createStrategy"
# How often a write retries when the strategy changed between its read and its write.
ATTEMPTS = 3


def article(status: str) -> str:
    """`status` with its indefinite article: "an ACTIVE", "a PAUSED"."""
    return f"{'an' if status[:1] in 'AEIOU' else 'a'} {status}"


def remember(
    ctx: Context, *, user_id: str, strategy_id: str, record: StrategyRecord | None
) -> None:
    """Forget what this request's loaders cached about a strategy that was written."""
    loaders = ctx.loaders.strategies
    loaders.by_id.clear(strategy_id)
    if record is not None:
        loaders.by_id.prime(strategy_id, record)
    loaders.counts.clear(user_id)
    loaders.page.clear_all()


async def read_strategy(ctx: Context, *, user_id: str, strategy_id: str) -> StrategyRecord:
    """The user's strategy read afresh; NOT_FOUND for a missing or another user's one."""
    record = await _find(ctx, user_id=user_id, strategy_id=strategy_id)
    if record is None:
        raise NotFound("No strategy with this id.")
    return record


def _name_taken() -> Conflict:
    return Conflict("You already have a strategy with this name.", field="name")


async def create_strategy(
    ctx: Context, *, fields: Mapping[str, Any], client_mutation_id: str | None
) -> StrategyRecord:
    """Create a STOPPED strategy for the viewer.

    With `client_mutation_id`, a repeated request answers with the strategy the
    first one created (see `_create_once`).
    """
    viewer = ctx.checked_viewer
    missing = [field.api for field in EDITABLE if field.attr not in fields]
    if missing:
        raise ValueError(f"createStrategy needs every field: {missing}")
    refusals = Refusals()
    nothing: dict[str, Any] = {}
    checked = refusals.check(
        partial(check_fields, fields, brokers=ctx.settings.brokers), refused=nothing
    )
    if client_mutation_id is not None:
        refusals.check(partial(idempotency.check_key, client_mutation_id), refused="")
    refusals.raise_any()
    if client_mutation_id is None:
        record = await _insert(ctx, user_id=viewer.id, strategy_id=str(ObjectId()), fields=checked)
    else:
        record = await _create_once(ctx, user_id=viewer.id, fields=checked, key=client_mutation_id)
    remember(ctx, user_id=viewer.id, strategy_id=record.id, record=record)
    return record


async def _insert(
    ctx: Context, *, user_id: str, strategy_id: str, fields: Mapping[str, Any]
) -> StrategyRecord:
    """Insert under an id chosen beforehand; a second insert of that id finds the first.

    Its STRATEGY_CREATED event is written with it, so it is recorded exactly when the
    strategy exists (once: a retry finding the first insert writes nothing).

    An account holding MAX_STRATEGIES_PER_USER others is refused (CONFLICT); requests
    racing past the count can overshoot by as many as run at once, which the mutation
    rate limit bounds.
    """
    await _check_room(ctx, user_id=user_id, strategy_id=strategy_id)
    created = [
        outbox.event(
            user_id,
            "STRATEGY_CREATED",
            subject_id=strategy_id,
            data={"name": fields["name"]},
            once_per=strategy_id,
        )
    ]
    try:
        record = await ctx.sources.strategies.run(
            lambda db: strategies_source.insert_strategy(
                db=db,
                user_id=user_id,
                strategy_id=strategy_id,
                status="STOPPED",
                events=created,
                **fields,
            ),
            kind="write",
        )
    except Conflict as exc:
        # Either the name is taken, or a concurrent retry under the same
        # idempotency key inserted this very id first: then that is our answer.
        existing = await _find(ctx, user_id=user_id, strategy_id=strategy_id)
        if existing is not None:
            return existing
        raise _name_taken() from exc
    await deliver(ctx.sources, ctx.sources.strategies, COLLECTION, record.id, created)
    return record


async def _check_room(ctx: Context, *, user_id: str, strategy_id: str) -> None:
    most = ctx.settings.max_strategies_per_user
    held = await ctx.sources.strategies.run(
        lambda db: strategies_source.count_other_strategies(
            db=db, user_id=user_id, besides=strategy_id, limit=most
        ),
        kind="lookup",
    )
    if held >= most:
        raise Conflict(f"An account may hold at most {most} strategies; delete one first.")


async def _find(ctx: Context, *, user_id: str, strategy_id: str) -> StrategyRecord | None:
    return await ctx.sources.strategies.run(
        lambda db: strategies_source.find_strategy(db=db, strategy_id=strategy_id, user_id=user_id),
        kind="lookup",
    )


async def _create_once(
    ctx: Context, *, user_id: str, fields: Mapping[str, Any], key: str
) -> StrategyRecord:
    """Create under an idempotency key: the same key and input give the same strategy.

    The new strategy's id is chosen first and recorded as the key's result
    before the insert. So a retry after the first request died at any point,
    or timed out without knowing whether its insert landed, finds that id: it
    answers with the strategy if it exists and otherwise inserts it under that
    id, which can only ever happen once.
    """
    with idempotency.owning() as owner:
        claim = await ctx.sources.strategies.run(
            lambda db: idempotency.claim_key(
                db=db,
                user_id=user_id,
                operation=CREATE,
                key=key,
                request_fingerprint=idempotency.fingerprint(fields),
                ttl_seconds=ctx.settings.idempotency_ttl_seconds,
                owner=owner,
            ),
            kind="write",
        )
        if claim.result_id is not None:
            existing = await _find(ctx, user_id=user_id, strategy_id=claim.result_id)
            if existing is not None:
                return existing
            return await _insert(ctx, user_id=user_id, strategy_id=claim.result_id, fields=fields)
        try:
            strategy_id = await _bind(
                ctx, claim=claim, user_id=user_id, name=fields["name"], result_id=str(ObjectId())
            )
        except BaseException as exc:
            # Refused (the name taken): nothing was bound, the key is free again. Failed
            # without knowing: left for the retry to take over.
            if not idempotency.ambiguous(exc):
                await idempotency.release_key_quietly(source=ctx.sources.strategies, claim=claim)
            raise
        return await _insert(ctx, user_id=user_id, strategy_id=strategy_id, fields=fields)


async def _bind(
    ctx: Context, *, claim: idempotency.Claim, user_id: str, name: str, result_id: str
) -> str:
    """Bind a fresh id to the claimed key; the id to insert under is the one bound.

    That is `result_id`, unless the claim was presumed abandoned and taken over by a
    retry that bound its own id first: then both insert that one, which lands once.
    """

    async def bind(db: AsyncDatabase[Document]) -> str | None:
        # Checked before the key is bound to an id, so the common mistake of a
        # taken name leaves the key free for a corrected request.
        taken = await strategies_source.find_strategy_by_name(db=db, user_id=user_id, name=name)
        if taken is not None:
            raise _name_taken()
        return await idempotency.complete_key(db=db, claim=claim, result_id=result_id)

    bound = await ctx.sources.strategies.run(bind, kind="write")
    if bound is None:  # taken over by a retry that has not bound an id yet
        raise Conflict(
            "A request with this clientMutationId is still in progress.",
            field="clientMutationId",
        )
    return bound


async def update_strategy(
    ctx: Context, *, strategy_id: str, fields: Mapping[str, Any]
) -> StrategyRecord:
    """Change the given fields of the viewer's strategy; fields left out keep their value.

    Name and autoReconnect change at any time. The fields the runner executes
    with (code, config, instrument, broker, environment) change only while the
    strategy is not running (STOPPED or ERROR); that is part of the write's
    filter, so a concurrent start cannot slip in between. A field given with its
    current value is no change, so a client may send the whole form back.
    """
    viewer = ctx.checked_viewer
    checked = check_fields(fields, brokers=ctx.settings.brokers)
    for _ in range(ATTEMPTS):
        current = await read_strategy(ctx, user_id=viewer.id, strategy_id=strategy_id)
        changes = {name: value for name, value in checked.items() if _differs(current, name, value)}
        if not changes:
            return current
        runtime = [name for name in RUNTIME_FIELDS if name in changes]
        if runtime and current.status not in NOT_RUNNING:
            raise BadUserInput(
                f"Cannot change '{api_name(runtime[0])}' of {article(current.status)} "
                "strategy: stop it first.",
                field=api_name(runtime[0]),
            )
        updated = [
            outbox.event(
                viewer.id,
                "STRATEGY_UPDATED",
                subject_id=current.id,
                data={
                    "name": changes.get("name", current.name),
                    "fields": sorted(api_name(name) for name in changes),
                },
            )
        ]
        try:
            record = await _write_changes(
                ctx,
                strategy_id=strategy_id,
                user_id=viewer.id,
                changes=changes,
                only_in=NOT_RUNNING if runtime else None,
                # The name the event records: the new one, or the one read, still current.
                named=None if "name" in changes else current.name,
                events=updated,
            )
        except Conflict as exc:
            raise _name_taken() from exc
        if record is not None:
            await deliver(ctx.sources, ctx.sources.strategies, COLLECTION, record.id, updated)
            remember(ctx, user_id=viewer.id, strategy_id=record.id, record=record)
            return record
        # Started (or deleted) since it was read: read again to answer for its state now.
    raise Conflict("The strategy kept changing while it was being updated; try again.")


async def _write_changes(
    ctx: Context,
    *,
    strategy_id: str,
    user_id: str,
    changes: Mapping[str, Any],
    only_in: tuple[str, ...] | None,
    named: str | None,
    events: list[outbox.Event],
) -> StrategyRecord | None:
    return await ctx.sources.strategies.run(
        lambda db: strategies_source.update_strategy(
            db=db,
            strategy_id=strategy_id,
            user_id=user_id,
            changes=changes,
            only_in=only_in,
            named=named,
            events=events,
        ),
        kind="write",
    )


def _differs(current: StrategyRecord, name: str, value: Any) -> bool:
    stored: object = dict(current.config) if name == "config" else getattr(current, name)
    return bool(stored != value)


async def delete_strategy(ctx: Context, *, strategy_id: str) -> StrategyRecord:
    """Delete the viewer's strategy unless it runs (ACTIVE or PAUSED: stop it first).

    Its trades stay (they carry the strategy's name), and so do its daily metrics.
    """
    viewer = ctx.checked_viewer
    for _ in range(ATTEMPTS):
        current = await read_strategy(ctx, user_id=viewer.id, strategy_id=strategy_id)
        if current.status not in NOT_RUNNING:
            raise BadUserInput(
                f"Cannot delete {article(current.status)} strategy: stop it first.", field="id"
            )
        deleted_event = [
            outbox.event(
                viewer.id, "STRATEGY_DELETED", subject_id=current.id, data={"name": current.name}
            )
        ]
        deleted = await _delete(ctx, current, deleted_event)
        if deleted is not None:
            break
        # Renamed, started or deleted since it was read: read it again.
    else:
        raise Conflict("The strategy kept changing while it was being deleted; try again.")
    await _forget_creation(ctx, user_id=viewer.id, strategy_id=deleted.id)
    await deliver(ctx.sources, ctx.sources.strategies, COLLECTION, deleted.id, deleted_event)
    remember(ctx, user_id=viewer.id, strategy_id=deleted.id, record=None)
    return deleted


async def _delete(
    ctx: Context, current: StrategyRecord, events: list[outbox.Event]
) -> StrategyRecord | None:
    return await ctx.sources.strategies.run(
        lambda db: strategies_source.delete_strategy(
            db=db,
            strategy_id=current.id,
            user_id=current.user_id,
            name=current.name,
            only_in=NOT_RUNNING,
            events=events,
        ),
        kind="write",
    )


async def _forget_creation(ctx: Context, *, user_id: str, strategy_id: str) -> None:
    # A createStrategy retried under the key that made this strategy would otherwise
    # bring it back under its old id (and its old trades with it).
    try:
        await ctx.sources.strategies.run(
            lambda db: idempotency.forget_result(
                db=db, user_id=user_id, operation=CREATE, result_id=strategy_id
            ),
            kind="write",
        )
    except GatewayError:
        log.warning("could not forget the idempotency keys of deleted strategy %s", strategy_id)
