"""Passwords: the hash an unknown email is verified against costs what a real one costs."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import VerifyMismatchError

from gateway.core import auth


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
