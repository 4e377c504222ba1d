"""Accounts: signing up and in, rotating refresh tokens, signing out, profile and password."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import NoReturn

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from datasources import Document, StoredField, now, outbox
from datasources import refresh_tokens as tokens_source
from datasources import users as users_source
from datasources.outbox import Event
from datasources.refresh_tokens import RefreshTokenRecord
from datasources.users import UserRecord, normalize_email
from gateway.core.auth import (
    hash_password,
    hash_refresh_token,
    looks_like_refresh_token,
    needs_rehash,
    new_refresh_token,
    verify_password,
)
from gateway.core.errors import BadUserInput, Conflict, GatewayError, Unauthenticated
from resolvers.activity import deliver
from resolvers.checks import Refusals, check_text_field
from resolvers.context import Context

log = logging.getLogger("gateway.accounts")

MIN_PASSWORD = 10
MAX_PASSWORD = 256  # Argon2 cost grows with input; nobody types more
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]{5,19}$")


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A user with a fresh access token and the refresh token that renews it."""

    user: UserRecord
    access_token: str
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


def _check_email(email: str) -> str:
    normalized = normalize_email(email)
    # Control characters (NUL among them) and format characters (the bidirectional
    # overrides such as U+202E, zero-width joiners) would let one address pass for another.
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in normalized):
        raise BadUserInput(
            "'email' must not contain control or formatting characters.", field="email"
        )
    if len(normalized) > 254 or not _EMAIL.match(normalized):
        raise BadUserInput("'email' is not a valid email address.", field="email")
    return normalized


def _check_password(password: str, email: str, *, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        raise BadUserInput(
            f"'{field}' must be at least {MIN_PASSWORD} characters long.", field=field
        )
    if len(password) > MAX_PASSWORD:
        raise BadUserInput(
            f"'{field}' must be at most {MAX_PASSWORD} characters long.", field=field
        )
    if normalize_email(password) == email:
        raise BadUserInput(f"'{field}' must not be the email address.", field=field)


def _check_phone(phone: str | None) -> str | None:
    if phone is None or not phone.strip():
        return None
    phone = phone.strip()
    if not _PHONE.match(phone):
        raise BadUserInput("'phone' is not a valid phone number.", field="phone")
    return phone


# The input rules of the user table's editable fields (`StoredField.rule`).
_PROFILE_RULES: dict[str, Callable[[str | None, StoredField], str | None]] = {
    "name": check_text_field,
    "phone": lambda value, _field: _check_phone(value),
}


async def _sign_in(
    ctx: Context, user: UserRecord, *, family_id: str | None = None, events: Sequence[Event] = ()
) -> SignedIn:
    """Issue an access token and a refresh token (of a new family unless one is given); the
    refresh token's document carries `events` (a sign-in)."""
    issued = ctx.tokens.issue(user_id=user.id, token_version=user.token_version)
    refresh = new_refresh_token()
    refresh_expires = now() + timedelta(seconds=ctx.settings.refresh_token_ttl_seconds)
    stored = await ctx.sources.users.run(
        lambda db: tokens_source.insert_refresh_token(
            db=db,
            token_hash=hash_refresh_token(refresh),
            user_id=user.id,
            family_id=family_id or tokens_source.new_family_id(),
            token_version=user.token_version,
            expires_at=refresh_expires,
            events=events,
        ),
        kind="write",
    )
    await deliver(ctx.sources, ctx.sources.users, tokens_source.COLLECTION, stored.id, events)
    ctx.sign_in(user)
    return SignedIn(
        user=user,
        access_token=issued.token,
        expires_at=issued.expires_at,
        refresh_token=refresh,
        refresh_expires_at=refresh_expires,
    )


async def register(
    ctx: Context,
    *,
    email: str,
    password: str,
    first_name: str,
    last_name: str,
    phone: str | None,
) -> SignedIn:
    """Create an account and sign it in; every input is checked before anything is written,
    and every bad one named."""
    refusals = Refusals()
    normalized = refusals.check(partial(_check_email, email), refused="")
    refusals.check(partial(_check_password, password, normalized), refused=None)
    first = refusals.check(
        partial(check_text_field, first_name, users_source.BY_ATTR["first_name"]), refused=""
    )
    last = refusals.check(
        partial(check_text_field, last_name, users_source.BY_ATTR["last_name"]), refused=""
    )
    checked_phone = refusals.check(partial(_check_phone, phone), refused=None)
    refusals.raise_any()
    password_hash = await hash_password(password)
    user_id = str(ObjectId())
    created = [outbox.event(user_id, "ACCOUNT_CREATED", once_per=user_id)]
    try:
        user = await ctx.sources.users.run(
            lambda db: users_source.insert_user(
                db=db,
                email=normalized,
                password_hash=password_hash,
                first_name=first,
                last_name=last,
                phone=checked_phone,
                user_id=user_id,
                events=created,
            ),
            kind="write",
        )
    except Conflict as exc:
        raise Conflict("This email cannot be registered.", field="email") from exc
    await deliver(ctx.sources, ctx.sources.users, users_source.COLLECTION, user.id, created)
    await ctx.limits.signed_in(normalized)  # this address is now one the account is known at
    return await _sign_in(ctx, user)


async def login(ctx: Context, *, email: str, password: str) -> SignedIn:
    """Sign in with email and password; a wrong pair is UNAUTHENTICATED, whichever was wrong.

    An account being deleted fails the same way, so a sign-in reveals nothing about it.
    Failed sign-ins lock the email (known or not, alike) and the client IP for a while
    (gateway/core/ratelimit.py): checked before the lookup and the password hash.
    """
    account = normalize_email(email)
    await ctx.limits.check_sign_in(account)
    user = await ctx.sources.users.run(
        lambda db: users_source.find_user_by_email(db=db, email=email), kind="lookup"
    )
    verified = await verify_password(user.password_hash if user else None, password)
    if not verified or user is None or user.deleting:
        await ctx.limits.sign_in_failed(account)
        raise Unauthenticated("Invalid email or password.")
    await ctx.limits.signed_in(account)
    if needs_rehash(user.password_hash):
        await _upgrade_password_hash(ctx, user, password)
    return await _sign_in(ctx, user, events=[outbox.event(user.id, "SIGNED_IN")])


async def _upgrade_password_hash(ctx: Context, user: UserRecord, password: str) -> None:
    """Store the Argon2id hash of a password that just verified against an older hash (a
    bcrypt one imported from a Node backend). Only if that hash is still the stored one: a
    password changed meanwhile stays changed."""
    upgraded = await hash_password(password)
    try:
        await ctx.sources.users.run(
            lambda db: users_source.update_password_hash(
                db=db, user_id=user.id, replacing=user.password_hash, password_hash=upgraded
            ),
            kind="write",
        )
    except GatewayError as exc:  # the sign-in stands: the next one upgrades it
        log.warning("password hash not upgraded for user %s: %s", user.id, exc.code)


async def password_matches(ctx: Context, user: UserRecord, password: str) -> bool:
    """Whether `password` is the signed-in user's own, counted as a sign-in: a wrong one is
    a failed sign-in (gateway/core/ratelimit.py), and while failures lock this address out
    of the account, it is RATE_LIMITED before any hashing. For the mutations that ask for
    the password again (changePassword, deleteAccount), so a stolen token cannot be used
    to guess it any faster than `login` allows."""
    account = normalize_email(user.email)
    await ctx.limits.check_sign_in(account)
    if not await verify_password(user.password_hash, password):
        await ctx.limits.sign_in_failed(account)
        return False
    await ctx.limits.signed_in(account)
    return True


async def refresh(ctx: Context, *, refresh_token: str) -> SignedIn:
    """Exchange a refresh token for a new access token and a new refresh token.

    The token is single use (a compare-and-set marks it used, so of two
    concurrent exchanges exactly one succeeds); the new one joins its family.
    Presenting a used token revokes the whole family: a used token coming back
    means a copy of it is in someone else's hands.
    """
    if not looks_like_refresh_token(refresh_token):
        raise Unauthenticated("The refresh token is invalid.")
    token_hash = hash_refresh_token(refresh_token)

    async def consume(db: AsyncDatabase[Document]) -> tuple[RefreshTokenRecord, UserRecord | None]:
        record = await tokens_source.consume_refresh_token(db=db, token_hash=token_hash)
        if record is None:
            await _refuse_refresh(db=db, token_hash=token_hash)
        found = await users_source.find_users(db=db, ids=[record.user_id])
        return record, found[0] if found else None

    record, user = await ctx.sources.users.run(consume, kind="write")
    if user is None or user.deleting or user.token_version != record.token_version:
        raise Unauthenticated("The refresh token has been revoked.")
    # A session kept alive by refresh tokens keeps its address known to the sign-in limits.
    await ctx.limits.signed_in(normalize_email(user.email))
    signed_in = await _sign_in(ctx, user, family_id=record.family_id)

    async def settle(db: AsyncDatabase[Document]) -> None:
        # A concurrent reuse may have revoked the family while the new token was being
        # stored; if so, the new token shares the family's fate.
        consumed = await tokens_source.find_refresh_token(db=db, token_hash=token_hash)
        if consumed is None or consumed.revoked_at is not None:
            await tokens_source.revoke_family(db=db, family_id=record.family_id)

    await ctx.sources.users.run(settle, kind="write")
    return signed_in


async def _refuse_refresh(*, db: AsyncDatabase[Document], token_hash: str) -> NoReturn:
    """Raise the reason a refresh token was not accepted; a reused one revokes its family."""
    found = await tokens_source.find_refresh_token(db=db, token_hash=token_hash)
    if found is None:
        raise Unauthenticated("The refresh token is invalid.")
    if found.used_at is not None:
        revoked = await tokens_source.revoke_family(db=db, family_id=found.family_id)
        if revoked:
            log.warning(
                "refresh token reused for user %s: %d tokens of its family revoked",
                found.user_id,
                revoked,
            )
        raise Unauthenticated(
            "The refresh token was already used; every session it belongs to is revoked."
        )
    if found.revoked_at is not None:
        raise Unauthenticated("The refresh token has been revoked.")
    raise Unauthenticated("The refresh token has expired.")


async def logout(ctx: Context, *, refresh_token: str) -> bool:
    """Revoke the family of a refresh token (this sign-in and every token rotated from it).

    Idempotent, and true for any token, known or not (as in RFC 7009), so the
    answer tells nothing about a token. Access tokens already issued run out
    on their own within their short lifetime.
    """
    if not looks_like_refresh_token(refresh_token):
        return True

    async def revoke(db: AsyncDatabase[Document]) -> None:
        found = await tokens_source.find_refresh_token(
            db=db, token_hash=hash_refresh_token(refresh_token)
        )
        if found is not None:
            await tokens_source.revoke_family(db=db, family_id=found.family_id)

    await ctx.sources.users.run(revoke, kind="write")
    return True


async def update_profile(ctx: Context, *, changes: Mapping[str, str | None]) -> UserRecord:
    """Change the viewer's names and phone; a field left out keeps its value.

    `changes` holds only the fields given (the user table's editable fields, by
    attribute); the names may not be null or blank, the phone may be cleared with
    null. Every field is checked, in the table's order, before anything is written; every
    bad one is named.
    """
    viewer = ctx.checked_viewer
    checked: dict[str, str | None] = {}
    refusals = Refusals()
    for field in users_source.EDITABLE:
        if field.attr in changes:
            rule = partial(_PROFILE_RULES[str(field.rule)], changes[field.attr], field)
            checked[field.attr] = refusals.check(rule, refused=None)
    refusals.raise_any()
    if not checked:
        return viewer.user
    names = sorted(field.api for field in users_source.EDITABLE if field.attr in checked)
    updated_event = [outbox.event(viewer.id, "PROFILE_UPDATED", data={"fields": names})]
    updated = await ctx.sources.users.run(
        lambda db: users_source.update_user_profile(
            db=db,
            user_id=viewer.id,
            token_version=viewer.user.token_version,
            changes=checked,
            events=updated_event,
        ),
        kind="write",
    )
    if updated is None:
        raise Unauthenticated("The access token has been revoked.")
    await deliver(ctx.sources, ctx.sources.users, users_source.COLLECTION, viewer.id, updated_event)
    ctx.update_viewer(updated)
    return updated


async def change_password(ctx: Context, *, current_password: str, new_password: str) -> SignedIn:
    """Replace the viewer's password and sign every other session out.

    A wrong current password is UNAUTHENTICATED (as for deleteAccount) and
    changes nothing. On success the token version is bumped (every earlier
    access token stops working), every refresh token of the user is revoked,
    and the caller gets a fresh session.
    """
    viewer = ctx.checked_viewer
    user = viewer.user
    _check_password(new_password, user.email, field="newPassword")
    if not await password_matches(ctx, user, current_password):
        raise Unauthenticated("The current password is not correct.")
    if new_password == current_password:
        raise BadUserInput(
            "'newPassword' must differ from the current password.", field="newPassword"
        )
    password_hash = await hash_password(new_password)
    changed = [outbox.event(user.id, "PASSWORD_CHANGED")]

    async def replace(db: AsyncDatabase[Document]) -> UserRecord:
        updated = await users_source.replace_password(
            db=db,
            user_id=user.id,
            token_version=user.token_version,
            password_hash=password_hash,
            events=changed,
        )
        if updated is None:
            raise Unauthenticated("The access token has been revoked.")
        # Already refused for their stale token version; revoked too, to be plain about it.
        await tokens_source.revoke_user_refresh_tokens(db=db, user_id=user.id)
        return updated

    updated = await ctx.sources.users.run(replace, kind="write")
    await deliver(ctx.sources, ctx.sources.users, users_source.COLLECTION, user.id, changed)
    return await _sign_in(ctx, updated)
