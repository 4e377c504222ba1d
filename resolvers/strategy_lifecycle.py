"""The strategy lifecycle: start, stop, pause and resume, a checked state machine.

    STOPPED ──start──▶ ACTIVE ──pause──▶ PAUSED
                       ACTIVE ◀──resume── PAUSED
    ACTIVE, PAUSED, ERROR ──stop──▶ STOPPED

(ERROR is entered only by the strategy runner.)

Each transition is a compare-and-set write whose filter names the status it
leaves (stop, which may leave three, tries them in turn), so concurrent
transitions of one strategy serialize: each applies to the status the previous
one left, and the activity event's `from` is certain. When no write matched,
the strategy is read to answer: NOT_FOUND, or BAD_USER_INPUT naming the
status it is in.

The filter names one status rather than `$in` all of them because a
findAndModify pre-image is not guaranteed to be the state the write applied to
(the embedded SecantusDB re-checks the filter at write time but returns the
document it first matched), and `from` must be exact.

Entering ACTIVE (start, and resume too, since a paused strategy may have lost
its credentials meanwhile) needs the viewer's credentials to be for the
strategy's broker with at least one secret configured. The broker checked is
part of the write's filter, so the strategy cannot be moved to another broker
between the check and the write. Stopping clears errorMessage: the user has
seen the error and acted on it; errorCount keeps the history.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasources import strategies as strategies_source
from datasources.credentials import CredentialsRecord
from datasources.strategies import StrategyRecord
from gateway.core.errors import BadUserInput, Conflict
from resolvers.activity import record_event
from resolvers.context import Context
from resolvers.strategies import article, read_strategy, remember

# Transitions racing on one strategy retry this often before giving up with CONFLICT.
ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Transition:
    """One edge of the state machine, named by the action that takes it."""

    action: str
    allowed_from: tuple[str, ...]
    to: str
    event: str
    needs_credentials: bool = False


TRANSITIONS = {
    "start": Transition("start", ("STOPPED",), "ACTIVE", "STRATEGY_STARTED", True),
    "pause": Transition("pause", ("ACTIVE",), "PAUSED", "STRATEGY_PAUSED"),
    "resume": Transition("resume", ("PAUSED",), "ACTIVE", "STRATEGY_RESUMED", True),
    "stop": Transition("stop", ("ACTIVE", "PAUSED", "ERROR"), "STOPPED", "STRATEGY_STOPPED"),
}


def check_allowed(transition: Transition, status: str) -> None:
    """BAD_USER_INPUT naming `status` when `transition` cannot leave it."""
    if status not in transition.allowed_from:
        raise BadUserInput(f"Cannot {transition.action} {article(status)} strategy.")


async def _usable_credentials(ctx: Context, user_id: str) -> CredentialsRecord | None:
    # The status read: which secrets are configured, never their values.
    record = await ctx.sources.credentials.status_of(user_id)
    if record is None or record.broker is None or not record.configured_fields:
        return None
    return record


def _credentials_error(
    transition: Transition, strategy: StrategyRecord, credentials: CredentialsRecord | None
) -> BadUserInput:
    verb = "Starting" if transition.action == "start" else "Resuming"
    if strategy.broker is None:
        return BadUserInput(
            f"{verb} this strategy needs a broker: set its broker first.", field="broker"
        )
    if credentials is None:
        return BadUserInput(
            f"{verb} this strategy needs credentials for '{strategy.broker}' "
            "with at least one secret configured: save your broker credentials first."
        )
    return BadUserInput(
        f"{verb} this strategy needs credentials for '{strategy.broker}', but your saved "
        f"credentials are for '{credentials.broker}': save credentials for "
        f"'{strategy.broker}' first."
    )


async def _take_edge(
    ctx: Context,
    user_id: str,
    strategy_id: str,
    transition: Transition,
    credentials: CredentialsRecord | None,
) -> tuple[str, StrategyRecord] | None:
    """One compare-and-set per status the transition may leave, each naming that status
    exactly, so the status left is known for certain: (that status, the strategy after)."""
    for status in transition.allowed_from:
        record = await _change_status(ctx, user_id, strategy_id, transition, credentials, status)
        if record is not None:
            return status, record
    return None


async def _change_status(
    ctx: Context,
    user_id: str,
    strategy_id: str,
    transition: Transition,
    credentials: CredentialsRecord | None,
    from_status: str,
) -> StrategyRecord | None:
    return await ctx.sources.strategies.run(
        lambda db: strategies_source.change_status(
            db=db,
            strategy_id=strategy_id,
            user_id=user_id,
            from_status=from_status,
            to_status=transition.to,
            action=transition.action,
            broker=credentials.broker if credentials else None,
            clear_error=transition.to == "STOPPED",
        ),
        kind="write",
    )


async def transition_strategy(ctx: Context, *, strategy_id: str, action: str) -> StrategyRecord:
    """Take the viewer's strategy along the edge named `action`, and record the event.

    NOT_FOUND for a missing or another user's strategy (nothing changes, nothing
    is revealed), then BAD_USER_INPUT for a status the action cannot leave, then
    BAD_USER_INPUT for missing credentials.
    """
    transition = TRANSITIONS[action]
    viewer = ctx.checked_viewer
    credentials = None
    if transition.needs_credentials:
        credentials = await _usable_credentials(ctx, viewer.id)
        if credentials is None:
            current = await read_strategy(ctx, user_id=viewer.id, strategy_id=strategy_id)
            check_allowed(transition, current.status)
            raise _credentials_error(transition, current, None)
    for _ in range(ATTEMPTS):
        change = await _take_edge(ctx, viewer.id, strategy_id, transition, credentials)
        if change is not None:
            break
        # Nothing matched: say why, from the strategy as it is now.
        current = await read_strategy(ctx, user_id=viewer.id, strategy_id=strategy_id)
        check_allowed(transition, current.status)
        if credentials is not None and current.broker != credentials.broker:
            raise _credentials_error(transition, current, credentials)
        # It moved between allowed statuses while we tried them: try again.
    else:
        raise Conflict("The strategy kept changing; try again.")
    previous, record = change
    await record_event(
        ctx,
        viewer.id,
        transition.event,
        subject_id=record.id,
        data={"from": previous, "to": transition.to, "name": record.name},
    )
    remember(ctx, user_id=viewer.id, strategy_id=record.id, record=record)
    return record
