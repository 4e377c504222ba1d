"""Saving and deleting the viewer's broker credentials.

Secrets are write-only: they go in sealed (the datasource seals them with the
gateway's `SecretBox`) and come out only as the status view.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from datasources import credentials as credentials_source
from datasources import idempotency, outbox
from datasources.credentials import CLIENT_ID, SECRET_FIELDS, CredentialsRecord
from gateway.core.crypto import SecretBox
from gateway.core.errors import BadUserInput, GatewayError, NotFound
from resolvers.activity import deliver
from resolvers.checks import Refusals
from resolvers.context import Context

log = logging.getLogger("gateway.credentials")

OPERATION = "saveCredentials"
MAX_SECRET = 4096
MAX_CLIENT_ID = 128


@dataclass(frozen=True, slots=True)
class CredentialsInput:
    """A checked saveCredentials input: `changes` holds only the fields the client sent
    (None clears a field; a field left out keeps its stored value)."""

    broker: str
    changes: Mapping[str, str | None]


def check_input(
    brokers: tuple[str, ...], *, broker: str, changes: Mapping[str, str | None]
) -> CredentialsInput:
    """Validate a saveCredentials input, naming every bad field; nothing is written here."""
    refusals = Refusals()
    known = {name.lower(): name for name in brokers}
    chosen = known.get(broker.strip().lower(), "")
    if not chosen:
        refusals.refuse(
            BadUserInput(f"'broker' must be one of: {', '.join(brokers)}.", field="broker")
        )
    checked: dict[str, str | None] = {}
    for name, value in changes.items():
        if name == CLIENT_ID:
            checked[name] = refusals.check(partial(_check_client_id, value), refused=None)
        elif name in SECRET_FIELDS:
            checked[name] = refusals.check(partial(_check_secret, name, value), refused=None)
        else:  # the schema only sends known fields; anything else is a programming error
            raise ValueError(f"unknown credentials field {name!r}")
    refusals.raise_any()
    return CredentialsInput(broker=chosen, changes=checked)


def _check_client_id(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not 1 <= len(value) <= MAX_CLIENT_ID:
        raise BadUserInput(
            f"'clientId' must be 1 to {MAX_CLIENT_ID} characters long (null clears it).",
            field=CLIENT_ID,
        )
    return value


def _check_secret(name: str, value: str | None) -> str | None:
    # Secrets are stored exactly as given: no trimming, a broker may mean every character.
    if value is not None and not 1 <= len(value) <= MAX_SECRET:
        raise BadUserInput(
            f"'{name}' must be 1 to {MAX_SECRET} characters long (null clears it).", field=name
        )
    return value


def _fingerprint(box: SecretBox, user_id: str, checked: CredentialsInput) -> str:
    # Secrets enter the fingerprint only as keyed digests: the key collection must not hold
    # anything that would let a reader guess a secret offline.
    changes: dict[str, Any] = {}
    for name, value in checked.changes.items():
        if value is not None and name in SECRET_FIELDS:
            changes[name] = box.digest(value, user_id=user_id, field=name)
        else:
            changes[name] = value
    return idempotency.fingerprint({"broker": checked.broker, "changes": changes})


async def credentials_of(ctx: Context, user_id: str) -> CredentialsRecord | None:
    """A user's credentials status (never a secret), batched with the request's other lookups."""
    return await ctx.loaders.credentials.by_user.load(user_id)


async def _status(ctx: Context, user_id: str) -> CredentialsRecord | None:
    """The viewer's credentials as stored now, bypassing (and then refreshing) the loader."""
    record = await ctx.sources.credentials.status_of(user_id)
    loader = ctx.loaders.credentials.by_user
    loader.clear(user_id)
    loader.prime(user_id, record)
    return record


async def save_credentials(
    ctx: Context,
    *,
    broker: str,
    changes: Mapping[str, str | None],
    client_mutation_id: str | None,
) -> CredentialsRecord:
    """Upsert the viewer's broker credentials and return their status view.

    Every input is checked before anything is written. With a `client_mutation_id`,
    a repeat of a completed request returns the credentials it saved instead of
    saving again; the same key with another input is a CONFLICT.
    """
    viewer = ctx.checked_viewer
    refusals = Refusals()
    nothing = CredentialsInput(broker="", changes={})
    check = partial(check_input, ctx.settings.brokers, broker=broker, changes=changes)
    checked = refusals.check(check, refused=nothing)
    if client_mutation_id is not None:
        refusals.check(partial(idempotency.check_key, client_mutation_id), refused="")
    refusals.raise_any()
    box = SecretBox.from_settings(ctx.settings)
    source = ctx.sources.credentials
    with idempotency.owning() as owner:
        claim: idempotency.Claim | None = None
        if client_mutation_id is not None:
            claim = await source.run(
                lambda db: idempotency.claim_key(
                    db=db,
                    user_id=viewer.id,
                    operation=OPERATION,
                    key=client_mutation_id,
                    request_fingerprint=_fingerprint(box, viewer.id, checked),
                    ttl_seconds=ctx.settings.idempotency_ttl_seconds,
                    owner=owner,
                ),
                kind="write",
            )
            if claim.result_id is not None:
                return await _replay(ctx, viewer.id, claim.result_id)
        # A retry under the same claimed key writes the same event id: recorded once.
        saved = [_saved_event(viewer.id, checked, claim)]
        try:
            document_id = await source.run(
                lambda db: credentials_source.upsert_credentials(
                    db=db,
                    box=box,
                    user_id=viewer.id,
                    broker=checked.broker,
                    changes=checked.changes,
                    events=saved,
                ),
                kind="write",
            )
        except BaseException as exc:
            # Refused: nothing saved, the key is free again. Failed without knowing whether
            # it landed: left for the retry to take over (the same change, the same event).
            if claim is not None and not idempotency.ambiguous(exc):
                await idempotency.release_key_quietly(source=source, claim=claim)
            raise
        if claim is not None:
            await _complete(ctx, claim, document_id)
    await deliver(ctx.sources, source, credentials_source.COLLECTION, document_id, saved)
    record = await _status(ctx, viewer.id)
    if record is None:  # deleted by a concurrent deleteCredentials in between
        raise NotFound("The credentials were deleted while they were being saved.")
    return record


def _saved_event(
    user_id: str, checked: CredentialsInput, claim: idempotency.Claim | None
) -> outbox.Event:
    return outbox.event(
        user_id,
        "CREDENTIALS_SAVED",
        subject_id=outbox.THIS_DOCUMENT,
        data={
            "broker": checked.broker,
            # Names only, never values.
            "set": sorted(name for name, value in checked.changes.items() if value is not None),
            "cleared": sorted(name for name, value in checked.changes.items() if value is None),
        },
        once_per=claim.change if claim is not None else None,
    )


async def _replay(ctx: Context, user_id: str, document_id: str) -> CredentialsRecord:
    record = await _status(ctx, user_id)
    if record is None or record.id != document_id:
        raise NotFound("The credentials saved under this clientMutationId have since been deleted.")
    return record


async def _complete(ctx: Context, claim: idempotency.Claim, document_id: str) -> None:
    # The credentials are saved: a failure to note it must not turn success into an error.
    # The key then reads as "in progress" (CONFLICT on a retry) until the claim goes stale;
    # a later retry takes it over and saves the same input again, which changes nothing.
    # A claim taken over meanwhile is left to the retry that took it (same input, same
    # document).
    try:
        await ctx.sources.credentials.run(
            lambda db: idempotency.complete_key(db=db, claim=claim, result_id=document_id),
            kind="write",
        )
    except GatewayError:
        log.warning("could not complete idempotency key %s", claim.id)


async def delete_credentials(ctx: Context) -> bool:
    """Remove the viewer's credentials; True when there were some, False when there were none."""
    viewer = ctx.checked_viewer
    deleted = [outbox.event(viewer.id, "CREDENTIALS_DELETED")]
    removed = await ctx.sources.credentials.run(
        lambda db: credentials_source.remove_credentials(db=db, user_id=viewer.id, events=deleted),
        kind="write",
    )
    ctx.loaders.credentials.by_user.clear(viewer.id).prime(viewer.id, None)
    if removed is None:
        return False
    source = ctx.sources.credentials
    await deliver(ctx.sources, source, credentials_source.COLLECTION, removed, deleted)
    return True
