"""SecretBox: AES-256-GCM sealing with named keys, bound to a user and a field."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import SecretStr

from gateway.core.crypto import SecretBox, UnsealError
from gateway.core.settings import Settings

OLD = ("old", b"o" * 32)
NEW = ("new", b"n" * 32)
USER = "65f0a1b2c3d4e5f6a7b8c9d0"
OTHER_USER = "65f0a1b2c3d4e5f6a7b8c9d1"
SECRET = "s3cr3t-api-key-ABCD"


def keys_setting(*keys: tuple[str, bytes]) -> SecretStr:
    return SecretStr(",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in keys))


def test_a_sealed_value_opens_to_its_plaintext():
    box = SecretBox([NEW])

    sealed = box.seal(SECRET, user_id=USER, field="apiKey")

    assert box.open(sealed, user_id=USER, field="apiKey") == SECRET


def test_a_sealed_value_is_versioned_names_its_key_and_holds_no_plaintext():
    box = SecretBox([NEW, OLD])

    sealed = box.seal(SECRET, user_id=USER, field="apiKey")

    version, kid, nonce, ciphertext = sealed.split(":")
    assert (version, kid) == ("v1", "new")
    assert len(base64.b64decode(nonce)) == 12
    assert len(base64.b64decode(ciphertext)) == len(SECRET) + 16
    assert box.key_id(sealed) == "new"
    assert SECRET not in sealed
    assert SECRET.encode() not in base64.b64decode(ciphertext)


def test_every_seal_uses_a_fresh_nonce():
    box = SecretBox([NEW])

    sealed = {box.seal(SECRET, user_id=USER, field="apiKey") for _ in range(50)}

    assert len(sealed) == 50
    assert len({value.split(":")[2] for value in sealed}) == 50


def test_unicode_and_empty_plaintexts_round_trip():
    box = SecretBox([NEW])

    for plaintext in ("", "pässwörd-🔑", "x" * 4096):
        sealed = box.seal(plaintext, user_id=USER, field="brokerPassword")
        assert box.open(sealed, user_id=USER, field="brokerPassword") == plaintext


def test_a_ciphertext_copied_to_another_user_does_not_open():
    box = SecretBox([NEW])
    sealed = box.seal(SECRET, user_id=USER, field="apiKey")

    with pytest.raises(UnsealError) as caught:
        box.open(sealed, user_id=OTHER_USER, field="apiKey")

    assert caught.value.reason == "rejected"


def test_a_ciphertext_copied_to_another_field_does_not_open():
    box = SecretBox([NEW])
    sealed = box.seal(SECRET, user_id=USER, field="apiKey")

    with pytest.raises(UnsealError) as caught:
        box.open(sealed, user_id=USER, field="apiSecret")

    assert caught.value.reason == "rejected"


def test_a_tampered_ciphertext_or_nonce_does_not_open():
    box = SecretBox([NEW])
    version, kid, nonce, ciphertext = box.seal(SECRET, user_id=USER, field="apiKey").split(":")
    flipped = bytearray(base64.b64decode(ciphertext))
    flipped[0] ^= 1
    other_nonce = base64.b64encode(os.urandom(12)).decode()

    for tampered in (
        f"{version}:{kid}:{nonce}:{base64.b64encode(bytes(flipped)).decode()}",
        f"{version}:{kid}:{other_nonce}:{ciphertext}",
    ):
        with pytest.raises(UnsealError) as caught:
            box.open(tampered, user_id=USER, field="apiKey")
        assert caught.value.reason == "rejected"


def test_a_ciphertext_relabelled_with_another_configured_key_does_not_open():
    box = SecretBox([NEW, OLD])
    _, _, nonce, ciphertext = box.seal(SECRET, user_id=USER, field="apiKey").split(":")

    with pytest.raises(UnsealError) as caught:
        box.open(f"v1:old:{nonce}:{ciphertext}", user_id=USER, field="apiKey")

    assert caught.value.reason == "rejected"


def test_a_value_sealed_under_a_key_no_longer_configured_reports_the_unknown_key():
    sealed = SecretBox([OLD]).seal(SECRET, user_id=USER, field="apiKey")

    with pytest.raises(UnsealError) as caught:
        SecretBox([NEW]).open(sealed, user_id=USER, field="apiKey")

    assert caught.value.reason == "unknown-key"
    assert "'old'" in str(caught.value)


def test_values_that_are_not_sealed_secrets_are_malformed():
    box = SecretBox([NEW])
    good = box.seal(SECRET, user_id=USER, field="apiKey")
    _, kid, nonce, ciphertext = good.split(":")

    for value in (
        "",
        SECRET,
        f"v2:{kid}:{nonce}:{ciphertext}",
        f"v1::{nonce}:{ciphertext}",
        f"v1:{kid}:not*base64:{ciphertext}",
        f"v1:{kid}:{base64.b64encode(b'short').decode()}:{ciphertext}",
        f"v1:{kid}:{nonce}:{base64.b64encode(b'tiny').decode()}",
        f"{good}:extra",
    ):
        with pytest.raises(UnsealError) as caught:
            box.open(value, user_id=USER, field="apiKey")
        assert caught.value.reason == "malformed", value
    with pytest.raises(UnsealError):
        box.key_id("plaintext")


def test_no_error_message_holds_the_value_or_its_plaintext():
    box = SecretBox([NEW])
    sealed = box.seal(SECRET, user_id=USER, field="apiKey")

    with pytest.raises(UnsealError) as wrong_user:
        box.open(sealed, user_id=OTHER_USER, field="apiKey")
    with pytest.raises(UnsealError) as not_sealed:
        box.open(SECRET, user_id=USER, field="apiKey")

    for caught in (wrong_user, not_sealed):
        assert SECRET not in str(caught.value)
        assert sealed.split(":")[3] not in str(caught.value)


def test_the_first_key_seals_and_every_key_opens():
    old_box = SecretBox([OLD])
    rotated_box = SecretBox([NEW, OLD])
    sealed_before = old_box.seal(SECRET, user_id=USER, field="apiKey")

    sealed_after = rotated_box.seal(SECRET, user_id=USER, field="apiKey")

    assert rotated_box.current_kid == "new"
    assert rotated_box.key_ids == ("new", "old")
    assert rotated_box.key_id(sealed_after) == "new"
    assert rotated_box.open(sealed_before, user_id=USER, field="apiKey") == SECRET
    assert rotated_box.is_current(sealed_after)
    assert not rotated_box.is_current(sealed_before)
    assert not rotated_box.is_current("not sealed")


def test_reseal_moves_a_value_to_the_current_key():
    sealed = SecretBox([OLD]).seal(SECRET, user_id=USER, field="totpSecret")
    box = SecretBox([NEW, OLD])

    resealed = box.reseal(sealed, user_id=USER, field="totpSecret")

    assert box.key_id(resealed) == "new"
    assert SecretBox([NEW]).open(resealed, user_id=USER, field="totpSecret") == SECRET


def test_digests_are_stable_keyed_and_bound_to_user_and_field():
    box = SecretBox([NEW])
    digest = box.digest(SECRET, user_id=USER, field="apiKey")

    assert digest == SecretBox([NEW]).digest(SECRET, user_id=USER, field="apiKey")
    assert SECRET not in digest
    assert digest != box.digest(SECRET + "x", user_id=USER, field="apiKey")
    assert digest != box.digest(SECRET, user_id=OTHER_USER, field="apiKey")
    assert digest != box.digest(SECRET, user_id=USER, field="apiSecret")
    assert digest != SecretBox([OLD]).digest(SECRET, user_id=USER, field="apiKey")


def test_a_box_refuses_bad_keys():
    for keys in ([], [("k", b"short")], [NEW, ("new", b"m" * 32)], [("a:b", b"k" * 32)]):
        with pytest.raises(ValueError, match=r"key"):
            SecretBox(keys)


def test_a_box_is_built_from_the_settings_keys():
    rotated = Settings(_env_file=None, credentials_encryption_keys=keys_setting(NEW, OLD))

    box = SecretBox.from_settings(rotated)

    assert box.key_ids == ("new", "old")
    sealed = SecretBox([OLD]).seal(SECRET, user_id=USER, field="apiKey")
    assert box.open(sealed, user_id=USER, field="apiKey") == SECRET
