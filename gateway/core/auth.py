"""Passwords (Argon2id), access tokens (JWT, HS256 pinned, a `kid` per key) and the
opaque refresh tokens exchanged for new ones."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import ARGON2_VERSION

from gateway.core.errors import Unauthenticated
from gateway.core.settings import Settings

ALGORITHM = "HS256"
ACCESS = "access"
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
# Refresh tokens are opaque random strings under this prefix: never a JWT (no dots, no
# header), so neither kind of token can pass for the other.
REFRESH_PREFIX = "rt_"
_REFRESH_BYTES = 32

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters


def _unguessable_hash(hasher: PasswordHasher) -> str:
    """A hash in `hasher`'s format and parameters that no password matches: a random salt
    and a random digest. Verifying against it costs one full Argon2id computation, as a
    real hash does; making it costs none (hashing a password at import took a quarter of
    a second of every start)."""

    def b64(data: bytes) -> str:  # Argon2's PHC encoding: base64 without padding
        return base64.b64encode(data).decode("ascii").rstrip("=")

    salt, digest = secrets.token_bytes(hasher.salt_len), secrets.token_bytes(hasher.hash_len)
    return (
        f"$argon2{hasher.type.name.lower()}$v={ARGON2_VERSION}"
        f"$m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
        f"${b64(salt)}${b64(digest)}"
    )


# Verified against when an email is unknown, so a miss costs the same time as a hit.
_DUMMY_HASH = _unguessable_hash(_hasher)


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


def key_id(secret: str) -> str:
    """The `kid` of a signing secret: derived from it, so rotating needs no extra setting.

    A labelled digest, so the header never carries a plain hash of the secret itself.
    """
    return hashlib.sha256(b"trading-gateway jwt kid:" + secret.encode()).hexdigest()[:16]


def new_refresh_token() -> str:
    """A fresh opaque refresh token (256 random bits); only its hash is ever stored."""
    return REFRESH_PREFIX + secrets.token_urlsafe(_REFRESH_BYTES)


def hash_refresh_token(token: str) -> str:
    """The SHA-256 digest a refresh token is stored and looked up by.

    A fast hash is enough: the token is 256 random bits, not a guessable password.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_refresh_token(token: str) -> bool:
    """Whether `token` has the shape of a refresh token (cheap check before any lookup)."""
    return token.startswith(REFRESH_PREFIX) and "." not in token and len(token) <= 128


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
    """Signs and verifies access tokens with the configured secrets, issuer and audience.

    Tokens are signed with the current secret (`JWT_SECRET`) and name it in their
    `kid` header; a token naming the previous secret (`JWT_PREVIOUS_SECRET`) still
    verifies, so rotating (previous := old current) logs nobody out.
    """

    def __init__(self, settings: Settings) -> None:
        current = settings.jwt_secret.get_secret_value()
        self._secret = current
        self.kid = key_id(current)
        self._keys = {self.kid: current}
        if settings.jwt_previous_secret is not None:
            previous = settings.jwt_previous_secret.get_secret_value()
            self._keys.setdefault(key_id(previous), previous)
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
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM, headers={"kid": self.kid})
        return IssuedToken(token, expires)

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; anything else is UNAUTHENTICATED."""
        if looks_like_refresh_token(token):
            raise Unauthenticated(
                "A refresh token is not an access token: exchange it with refreshToken."
            )
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise Unauthenticated("The access token is invalid.") from exc
        secret = self._keys.get(kid) if isinstance(kid, str) else None
        if secret is None:
            # No kid, or a key that is neither current nor previous: retired or forged.
            raise Unauthenticated("The access token is invalid.")
        try:
            claims = jwt.decode(
                token,
                secret,
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
