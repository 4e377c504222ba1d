"""Passwords (Argon2id) and access tokens (JWT, HS256 pinned)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.errors import Unauthenticated
from gateway.settings import Settings

ALGORITHM = "HS256"
ACCESS = "access"
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# Verified against when an email is unknown, so a miss costs the same time as a hit.
_DUMMY_HASH = _hasher.hash("not-a-password-" + uuid.uuid4().hex)


async def hash_password(password: str) -> str:
    """The Argon2id hash of `password`, computed off the event loop."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; a missing hash still costs one verification."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says about its bearer."""

    user_id: str
    token_version: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly signed access token and when it expires."""

    token: str
    expires_at: datetime


class TokenService:
    """Signs and verifies access tokens with the configured secret, issuer and audience."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._ttl = timedelta(seconds=settings.access_token_ttl_seconds)

    def issue(self, *, user_id: str, token_version: int) -> IssuedToken:
        """A signed access token for the user at its current token version."""
        issued = datetime.now(UTC).replace(microsecond=0)
        expires = issued + self._ttl
        claims = {
            "sub": user_id,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": issued,
            "exp": expires,
            "jti": uuid.uuid4().hex,
            "typ": ACCESS,
            "ver": token_version,
        }
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires)

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; anything else is UNAUTHENTICATED."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("The access token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("The access token is invalid.") from exc
        if claims.get("typ") != ACCESS or not isinstance(claims.get("ver"), int):
            raise Unauthenticated("The access token is invalid.")
        subject = claims["sub"]
        if not isinstance(subject, str):
            raise Unauthenticated("The access token is invalid.")
        return AccessClaims(
            user_id=subject,
            token_version=claims["ver"],
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
