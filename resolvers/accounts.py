"""Signing up and signing in."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from datasources import users as users_source
from datasources._guard import guard
from datasources.users import UserRecord, normalize_email
from gateway.auth import hash_password, verify_password
from gateway.context import Context
from gateway.errors import BadUserInput, Conflict, Unauthenticated
from resolvers.activity import record_event

log = logging.getLogger("gateway.accounts")

MIN_PASSWORD = 10
MAX_PASSWORD = 256  # Argon2 cost grows with input; nobody types more
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]{5,19}$")


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A user with a fresh access token."""

    user: UserRecord
    access_token: str
    expires_at: datetime


def _check_email(email: str) -> str:
    normalized = normalize_email(email)
    if len(normalized) > 254 or not _EMAIL.match(normalized):
        raise BadUserInput("'email' is not a valid email address.", field="email")
    return normalized


def _check_password(password: str, email: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadUserInput(
            f"'password' must be at least {MIN_PASSWORD} characters long.", field="password"
        )
    if len(password) > MAX_PASSWORD:
        raise BadUserInput(
            f"'password' must be at most {MAX_PASSWORD} characters long.", field="password"
        )
    if normalize_email(password) == email:
        raise BadUserInput("'password' must not be the email address.", field="password")


def _check_name(value: str, field: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 100:
        raise BadUserInput(f"'{field}' must be 1 to 100 characters long.", field=field)
    return value


def _check_phone(phone: str | None) -> str | None:
    if phone is None or not phone.strip():
        return None
    phone = phone.strip()
    if not _PHONE.match(phone):
        raise BadUserInput("'phone' is not a valid phone number.", field="phone")
    return phone


def _sign_in(ctx: Context, user: UserRecord) -> SignedIn:
    issued = ctx.tokens.issue(user_id=user.id, token_version=user.token_version)
    ctx.sign_in(user)
    return SignedIn(user=user, access_token=issued.token, expires_at=issued.expires_at)


async def register(
    ctx: Context,
    *,
    email: str,
    password: str,
    first_name: str,
    last_name: str,
    phone: str | None,
) -> SignedIn:
    """Create an account and sign it in; every input is checked before anything is written."""
    normalized = _check_email(email)
    _check_password(password, normalized)
    first = _check_name(first_name, "firstName")
    last = _check_name(last_name, "lastName")
    checked_phone = _check_phone(phone)
    password_hash = await hash_password(password)
    try:
        async with guard(users_source.SOURCE, timeout=ctx.sources.timeout):
            user = await users_source.insert_user(
                db=ctx.sources.users,
                email=normalized,
                password_hash=password_hash,
                first_name=first,
                last_name=last,
                phone=checked_phone,
            )
    except Conflict as exc:
        raise Conflict("This email cannot be registered.", field="email") from exc
    await record_event(ctx, user.id, "ACCOUNT_CREATED")
    return _sign_in(ctx, user)


async def login(ctx: Context, *, email: str, password: str) -> SignedIn:
    """Sign in with email and password; a wrong pair is UNAUTHENTICATED, whichever was wrong."""
    async with guard(users_source.SOURCE, timeout=ctx.sources.timeout):
        user = await users_source.find_user_by_email(db=ctx.sources.users, email=email)
    if not await verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthenticated("Invalid email or password.")
    await record_event(ctx, user.id, "SIGNED_IN")
    return _sign_in(ctx, user)
