"""The strategy lifecycle: start, stop, pause and resume, a checked state machine.

    STOPPED ──start──▶ ACTIVE ──pause──▶ PAUSED
                       ACTIVE ◀──resume── PAUSED
    ACTIVE, PAUSED, ERROR ──stop──▶ STOPPED

(ERROR is entered only by the strategy runner.)

Each transition reads the strategy, then makes a compare-and-set write whose
filter names the status it leaves and the name it had, so concurrent transitions
of one strategy serialize: each applies to the status the previous one left, and
the activity event written with the change (datasources/outbox.py) has a `from`
and a `name` that are certain. When the write did not match, the strategy moved
meanwhile: it is read again, to try again or to answer NOT_FOUND, or
BAD_USER_INPUT naming the status it is in.

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

from datasources import outbox
from datasources import strategies as strategies_source
from datasources.credentials import CredentialsRecord
from datasources.outbox import Event
from datasources.strategies import COLLECTION, StrategyRecord
from gateway.core.errors import BadUserInput, Conflict
from resolvers.activity import deliver
from resolvers.context import Context
from resolvers.strategies import article, read_strategy, remember

# Transitions racing on one strategy retry this often before giving up with CONFLICT
# (each attempt reads, then compare-and-sets; a burst of 20 on one strategy exhausted 5).
ATTEMPTS = 12


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
    if not strategy.broker:  # "" for a strategy stored before the broker was required
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


async def _change_status(
    ctx: Context,
    current: StrategyRecord,
    transition: Transition,
    credentials: CredentialsRecord | None,
    events: list[Event],
) -> StrategyRecord | None:
    return await ctx.sources.strategies.run(
        lambda db: strategies_source.change_status(
            db=db,
            strategy_id=current.id,
            user_id=current.user_id,
            from_status=current.status,
            name=current.name,
            to_status=transition.to,
            action=transition.action,
            broker=credentials.broker if credentials else None,
            clear_error=transition.to == "STOPPED",
            events=events,
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
    for _ in range(ATTEMPTS):
        current = await read_strategy(ctx, user_id=viewer.id, strategy_id=strategy_id)
        check_allowed(transition, current.status)
        if transition.needs_credentials and (
            credentials is None or current.broker != credentials.broker
        ):
            raise _credentials_error(transition, current, credentials)
        data = {"from": current.status, "to": transition.to, "name": current.name}
        events = [outbox.event(viewer.id, transition.event, subject_id=current.id, data=data)]
        record = await _change_status(ctx, current, transition, credentials, events)
        if record is not None:
            break
        # It changed between the read and the write: read it again.
    else:
        raise Conflict("The strategy kept changing; try again.")
    await deliver(ctx.sources, ctx.sources.strategies, COLLECTION, record.id, events)
    remember(ctx, user_id=viewer.id, strategy_id=record.id, record=record)
    return record
