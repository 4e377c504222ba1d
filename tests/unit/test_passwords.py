"""Password hashes: Argon2id, and bcrypt hashes imported from a Node backend, verified at the
same cost whichever a user has (gateway/core/auth.py); the hash an unknown email is verified
against costs what a real one costs."""

from __future__ import annotations

import bcrypt
import pytest
from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import VerifyMismatchError

from gateway.core import auth
from gateway.core.auth import hash_password, hash_scheme, needs_rehash, verify_password

PASSWORD = "an old password"
# Cost 4 (the least bcrypt allows), so the tests hash quickly; verification is the same.
BCRYPT_2B = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


def as_variant(bcrypt_hash: str, prefix: str) -> str:
    """The same hash under another prefix: $2a$, $2b$ and $2y$ differ only in how old
    implementations handled non-ASCII input, so an ASCII password verifies under each."""
    return prefix + bcrypt_hash[4:]


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
async def test_a_node_bcrypt_hash_verifies_its_password_and_no_other(prefix):
    stored = as_variant(BCRYPT_2B, prefix)

    assert hash_scheme(stored) == "bcrypt"
    assert await verify_password(stored, PASSWORD)
    assert not await verify_password(stored, PASSWORD + "!")


async def test_a_password_over_72_bytes_verifies_as_node_bcrypt_truncates_it():
    long_password = "x" * 72
    stored = bcrypt.hashpw(long_password.encode(), bcrypt.gensalt(4)).decode()

    assert await verify_password(stored, long_password + "ignored by bcrypt")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plaintext password",
        "$2x$04$" + "a" * 53,  # crypt_blowfish's buggy variant
        "$2b$03$" + "a" * 53,  # cost below bcrypt's minimum
        "$2b$10$tooshort",
        "$1$salt$md5cryptdigest",
        "5f4dcc3b5aa765d61d8327deb882cf99",
        "$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
    ],
)
async def test_other_formats_are_no_scheme_and_verify_nothing(stored):
    assert hash_scheme(stored) is None
    assert not await verify_password(stored, stored)


async def test_argon2id_hashes_are_recognised_and_a_bcrypt_one_needs_an_upgrade():
    argon2 = await hash_password(PASSWORD)

    assert hash_scheme(argon2) == "argon2id"
    assert not needs_rehash(argon2)
    assert needs_rehash(BCRYPT_2B)
    assert needs_rehash(PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(PASSWORD))


@pytest.fixture
def verifications(monkeypatch) -> list[tuple[str, bool]]:
    """Spy: every Argon2 and bcrypt verification, with whether it was against the stored
    hash (True) or a dummy (False)."""
    seen: list[tuple[str, bool]] = []
    argon2, check_bcrypt = auth._argon2_matches, auth._bcrypt_matches

    def spy_argon2(stored: str, password: str) -> bool:
        seen.append(("argon2", stored != auth._DUMMY_HASH))
        return argon2(stored, password)

    def spy_bcrypt(stored: bytes, password: str) -> bool:
        seen.append(("bcrypt", stored != auth._DUMMY_BCRYPT_HASH))
        return check_bcrypt(stored, password)

    monkeypatch.setattr(auth, "_argon2_matches", spy_argon2)
    monkeypatch.setattr(auth, "_bcrypt_matches", spy_bcrypt)
    return seen


async def test_every_verification_does_one_argon2_and_one_bcrypt_check_whatever_the_hash(
    verifications,
):
    argon2 = await hash_password(PASSWORD)
    verifications.clear()
    for stored in (argon2, BCRYPT_2B, None, "unknown format"):
        await verify_password(stored, "a wrong password")

    # So timing does not tell a bcrypt user from an Argon2 one, or from no user at all.
    assert verifications == [
        ("argon2", True),
        ("bcrypt", False),
        ("bcrypt", True),
        ("argon2", False),
        ("argon2", False),
        ("bcrypt", False),
        ("argon2", True),  # checked (and refused) by Argon2, like any hash it cannot read
        ("bcrypt", False),
    ]


def test_the_dummy_bcrypt_hash_is_a_real_one_at_the_node_default_cost():
    dummy = auth._DUMMY_BCRYPT_HASH.decode()

    assert hash_scheme(dummy) == "bcrypt"
    assert dummy.startswith("$2b$10$")


def test_the_unknown_email_hash_has_the_parameters_of_a_real_hash():
    real = auth._hasher.hash("a real password")

    assert extract_parameters(auth._DUMMY_HASH) == extract_parameters(real)
    assert not auth._hasher.check_needs_rehash(auth._DUMMY_HASH)


def test_verifying_against_the_unknown_email_hash_computes_a_hash_and_mismatches():
    # A mismatch, not an invalid hash: Argon2 ran in full before comparing (an invalid
    # hash would be refused at once, and an unknown email answered faster than a known).
    with pytest.raises(VerifyMismatchError):
        auth._hasher.verify(auth._DUMMY_HASH, "")


def test_each_process_gets_its_own_unknown_email_hash():
    hasher = PasswordHasher()

    assert auth._unguessable_hash(hasher) != auth._unguessable_hash(hasher)


async def test_a_missing_hash_never_verifies():
    assert not await auth.verify_password(None, "")
    assert not await auth.verify_password(None, "any password")
