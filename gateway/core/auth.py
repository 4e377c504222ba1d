"""Passwords (Argon2id; bcrypt hashes imported from a Node backend verify until upgraded),
access tokens (JWT, HS256 pinned, a `kid` per key) and the opaque refresh tokens exchanged
for new ones."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

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

# bcrypt as a Node backend's bcrypt or bcryptjs writes it ($2a$, $2b$, $2y$; cost 04-31,
# 22 characters of salt, 31 of hash). `$2x$` (crypt_blowfish's known-buggy variant) and
# anything else is no format we accept: `gateway import` refuses it.
_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
_ARGON2ID = re.compile(r"^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")
# bcrypt reads at most 72 bytes; Node's bcrypt and bcryptjs silently ignore the rest, so
# the same truncation keeps a longer password working.
_BCRYPT_MAX_BYTES = 72
# A bcrypt hash of a random password nobody knows, at cost 10 (the cost Node backends
# use by default): checked against on every sign-in that does not check a real bcrypt
# hash, so that every sign-in does one Argon2 and one bcrypt verification whatever the
# user's hash (or no user at all), and timing does not tell which kind a user has.
_DUMMY_BCRYPT_HASH = b"$2b$10$jwHphWF4azxtE1lWqWQkMOzx6.4keexzpHGWOzOgNZxkly.7.6w6i"

HashScheme = Literal["argon2id", "bcrypt"]


def hash_scheme(password_hash: str | None) -> HashScheme | None:
    """The scheme of a stored password hash; None for any format the gateway cannot verify."""
    if not isinstance(password_hash, str):
        return None
    if _ARGON2ID.match(password_hash):
        return "argon2id"
    if _BCRYPT.match(password_hash):
        return "bcrypt"
    return None


def needs_rehash(password_hash: str) -> bool:
    """Whether a hash that just verified should be replaced by a fresh Argon2id one: a
    bcrypt hash, or Argon2 under parameters other than the current ones."""
    if hash_scheme(password_hash) == "bcrypt":
        return True
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return False


async def hash_password(password: str) -> str:
    """The Argon2id hash of `password`, computed off the event loop."""
    return await asyncio.to_thread(_hasher.hash, password)


def _argon2_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _bcrypt_matches(password_hash: bytes, password: str) -> bool:
    import bcrypt  # noqa: PLC0415 - only a sign-in needs it, not the server's start-up

    try:
        return bcrypt.checkpw(password.encode()[:_BCRYPT_MAX_BYTES], password_hash)
    except ValueError:
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches an Argon2id or bcrypt hash.

    Every call does one Argon2 and one bcrypt verification, against the stored hash
    where it is of that kind and against a dummy otherwise (a missing hash checks
    both dummies), so a failure takes as long for a bcrypt user, an Argon2 one and an
    unknown email, as long as the bcrypt hash is of the dummy's cost (10, a Node
    backend's default; a costlier imported hash takes longer, and shows); off the event
    loop.
    """
    scheme = hash_scheme(password_hash)

    def check() -> bool:
        if scheme == "bcrypt" and password_hash is not None:
            matched = _bcrypt_matches(password_hash.encode(), password)
            _argon2_matches(_DUMMY_HASH, password)
            return matched
        # Not a recognised format (never stored by the gateway): Argon2 refuses it.
        matched = _argon2_matches(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        _bcrypt_matches(_DUMMY_BCRYPT_HASH, password)
        return matched

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
