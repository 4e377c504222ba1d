"""Upgrading a stored password hash (datasources/users.py `update_password_hash`): a
compare-and-set on the hash it replaces."""

from __future__ import annotations

from bson import ObjectId

from datasources import users as users_source
from tests.helpers import make_user


async def test_an_upgrade_replaces_the_hash_it_was_computed_from(sources):
    user = await make_user(sources, password_hash="$2b$04$" + "a" * 53)

    upgraded = await users_source.update_password_hash(
        db=sources.users.db,
        user_id=user.id,
        replacing=user.password_hash,
        password_hash="$argon2id$new",
    )

    stored = await sources.users.db.users.find_one({"_id": ObjectId(user.id)})
    assert upgraded is True
    assert stored["password"] == "$argon2id$new"
    assert stored["tokenVersion"] == user.token_version  # no session revoked
    assert stored["updatedAt"] == user.updated_at


async def test_an_upgrade_never_overwrites_a_password_changed_meanwhile(sources):
    user = await make_user(sources, password_hash="$argon2id$changed-meanwhile")

    upgraded = await users_source.update_password_hash(
        db=sources.users.db,
        user_id=user.id,
        replacing="$2b$04$" + "a" * 53,
        password_hash="$argon2id$from-the-old-password",
    )

    stored = await sources.users.db.users.find_one({"_id": ObjectId(user.id)})
    assert upgraded is False
    assert stored["password"] == "$argon2id$changed-meanwhile"
