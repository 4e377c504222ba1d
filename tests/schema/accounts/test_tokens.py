"""Access tokens with a kid, rotating single-use refresh tokens, and signing out."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from datasources import refresh_tokens
from gateway.app import create_app
from gateway.core.auth import TokenService, key_id
from gateway.core.errors import Unauthenticated
from gateway.core.settings import Settings
from tests.helpers import PASSWORD, error_codes, gid, gql, key, make_user, signed_token, token_for

LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    accessToken expiresAt refreshToken refreshTokenExpiresAt user { id }
  }
}
"""
REGISTER = """
mutation {
  register(email: "new@example.com", password: "a long enough password",
           firstName: "Ada", lastName: "Lovelace") {
    accessToken refreshToken refreshTokenExpiresAt user { id }
  }
}
"""
REFRESH = """
mutation Refresh($token: String!) {
  refreshToken(refreshToken: $token) {
    accessToken tokenType expiresAt refreshToken refreshTokenExpiresAt user { id email }
  }
}
"""
LOGOUT = "mutation Logout($token: String!) { logout(refreshToken: $token) }"
ME = "{ me { id } }"
OLD_SECRET = "old-secret-" + "o" * 48


async def sign_in(client: httpx.AsyncClient, sources, **overrides: Any) -> dict[str, Any]:
    """A user signed in through `login`: the AuthPayload, with the user record under 'record'."""
    user = await make_user(sources, **overrides)
    body = await gql(client, LOGIN, {"email": user.email, "password": PASSWORD})
    return {**body["data"]["login"], "record": user}


async def refresh(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    return await gql(client, REFRESH, {"token": token})


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def stored(sources, token: str) -> Any:
    """The stored document of a refresh token (None when there is none)."""
    return await sources.users.db["refresh_tokens"].find_one({"tokenHash": token_hash(token)})


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second app over the same databases, configured with `settings`."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield http


# Access tokens and signing keys


async def test_an_access_token_names_the_current_key_in_its_kid_header(client, sources, settings):
    session = await sign_in(client, sources)

    header = jwt.get_unverified_header(session["accessToken"])

    assert header["kid"] == key_id(settings.jwt_secret.get_secret_value())
    assert header["alg"] == "HS256"


async def test_a_token_with_an_unknown_kid_is_unauthenticated(client, sources, settings):
    user = await make_user(sources)
    claims = jwt.decode(token_for(settings, user), options={"verify_signature": False})

    body = await gql(client, ME, token=signed_token(settings, claims, kid="0123456789abcdef"))

    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_token_signed_with_the_previous_secret_verifies_when_it_is_configured(
    client, sources, settings
):
    user = await make_user(sources)
    old = settings.model_copy(update={"jwt_secret": SecretStr(OLD_SECRET)})
    token = token_for(old, user)
    rotated = settings.model_copy(update={"jwt_previous_secret": SecretStr(OLD_SECRET)})

    async with serving(rotated) as rotated_client:
        accepted = await gql(rotated_client, ME, token=token)
    refused = await gql(client, ME, token=token)

    assert accepted["data"]["me"] == {"id": gid(user)}
    assert error_codes(refused) == ["UNAUTHENTICATED"]


async def test_rotating_the_secret_logs_nobody_out_and_signs_with_the_new_key(
    client, sources, settings
):
    session = await sign_in(client, sources)
    new_secret = "new-secret-" + "n" * 48
    rotated = settings.model_copy(
        update={"jwt_secret": SecretStr(new_secret), "jwt_previous_secret": settings.jwt_secret}
    )
    dropped = rotated.model_copy(update={"jwt_previous_secret": None})

    async with serving(rotated) as rotated_client:
        still_signed_in = await gql(rotated_client, ME, token=session["accessToken"])
        renewed = await refresh(rotated_client, session["refreshToken"])
    async with serving(dropped) as dropped_client:
        old_key_dropped = await gql(dropped_client, ME, token=session["accessToken"])
        new_key_kept = await gql(
            dropped_client, ME, token=renewed["data"]["refreshToken"]["accessToken"]
        )

    assert still_signed_in["data"]["me"]["id"] == session["user"]["id"]
    new_token = renewed["data"]["refreshToken"]["accessToken"]
    assert jwt.get_unverified_header(new_token)["kid"] == key_id(new_secret)
    assert error_codes(old_key_dropped) == ["UNAUTHENTICATED"]
    assert new_key_kept["data"]["me"]["id"] == session["user"]["id"]


def test_the_token_service_verifies_current_and_previous_keys_only(settings):
    current = TokenService(settings)
    old = TokenService(settings.model_copy(update={"jwt_secret": SecretStr(OLD_SECRET)}))
    both = TokenService(settings.model_copy(update={"jwt_previous_secret": SecretStr(OLD_SECRET)}))
    issued = old.issue(user_id="u1", token_version=3)

    claims = both.verify(issued.token)

    assert (claims.user_id, claims.token_version) == ("u1", 3)
    assert both.verify(current.issue(user_id="u2", token_version=0).token).user_id == "u2"
    with pytest.raises(Unauthenticated):
        current.verify(issued.token)


# Refresh tokens


async def test_login_returns_an_opaque_refresh_token_stored_only_as_its_hash(
    client, sources, settings
):
    session = await sign_in(client, sources)

    token = session["refreshToken"]
    doc = await stored(sources, token)
    assert token.startswith("rt_")
    assert "." not in token
    assert doc is not None
    assert token not in str(doc)
    assert str(doc["userId"]) == key(session["user"]["id"])
    assert doc["tokenVersion"] == 0
    assert doc["usedAt"] is None
    assert doc["revokedAt"] is None
    assert doc["familyId"] is not None
    lifetime = doc["expiresAt"] - doc["createdAt"]
    assert abs(lifetime.total_seconds() - settings.refresh_token_ttl_seconds) < 5
    expires = datetime.fromisoformat(session["refreshTokenExpiresAt"])
    assert abs((expires - doc["expiresAt"]).total_seconds()) < 1


async def test_the_access_token_lives_fifteen_minutes_by_default(client, sources):
    session = await sign_in(client, sources)

    claims = jwt.decode(session["accessToken"], options={"verify_signature": False})

    assert claims["exp"] - claims["iat"] == 15 * 60


async def test_register_also_returns_a_working_refresh_token(client):
    body = await gql(client, REGISTER)

    renewed = await refresh(client, body["data"]["register"]["refreshToken"])

    assert renewed["data"]["refreshToken"]["user"]["id"] == body["data"]["register"]["user"]["id"]


async def test_refreshing_returns_a_new_working_pair_in_the_same_family(client, sources):
    session = await sign_in(client, sources)

    body = await refresh(client, session["refreshToken"])

    payload = body["data"]["refreshToken"]
    assert payload["tokenType"] == "Bearer"
    assert payload["user"]["id"] == session["user"]["id"]
    assert payload["refreshToken"] != session["refreshToken"]
    me = await gql(client, ME, token=payload["accessToken"])
    assert me["data"]["me"]["id"] == session["user"]["id"]
    old, new = (
        await stored(sources, session["refreshToken"]),
        await stored(sources, payload["refreshToken"]),
    )
    assert old["usedAt"] is not None
    assert new["usedAt"] is None
    assert new["familyId"] == old["familyId"]
    again = await refresh(client, payload["refreshToken"])
    assert again["data"]["refreshToken"]["user"]["id"] == session["user"]["id"]


async def test_reusing_a_refresh_token_is_refused_and_revokes_its_whole_family(client, sources):
    session = await sign_in(client, sources)
    other_sign_in = await gql(
        client, LOGIN, {"email": session["record"].email, "password": PASSWORD}
    )
    first = await refresh(client, session["refreshToken"])
    second = await refresh(client, first["data"]["refreshToken"]["refreshToken"])

    reused = await refresh(client, session["refreshToken"])

    assert error_codes(reused) == ["UNAUTHENTICATED"]
    assert "already used" in reused["errors"][0]["message"]
    latest = await refresh(client, second["data"]["refreshToken"]["refreshToken"])
    assert error_codes(latest) == ["UNAUTHENTICATED"]
    family = (await stored(sources, session["refreshToken"]))["familyId"]
    docs = await sources.users.db["refresh_tokens"].find({"familyId": family}).to_list()
    assert len(docs) == 3
    assert all(doc["revokedAt"] is not None for doc in docs)
    # Another sign-in of the same user is another family, untouched.
    untouched = await refresh(client, other_sign_in["data"]["login"]["refreshToken"])
    assert untouched["data"]["refreshToken"]["user"]["id"] == session["user"]["id"]


async def test_of_concurrent_refreshes_with_one_token_exactly_one_succeeds(client, sources):
    session = await sign_in(client, sources)

    bodies = await asyncio.gather(*(refresh(client, session["refreshToken"]) for _ in range(5)))

    succeeded = [body for body in bodies if not body.get("errors")]
    refused = [body for body in bodies if body.get("errors")]
    assert len(succeeded) == 1
    assert [error_codes(body) for body in refused] == [["UNAUTHENTICATED"]] * 4
    family = (await stored(sources, session["refreshToken"]))["familyId"]
    assert await sources.users.db["refresh_tokens"].count_documents({"familyId": family}) == 2
    # The others were reuses of a used token: the family, the winner's new token
    # included, is revoked.
    winner = succeeded[0]["data"]["refreshToken"]["refreshToken"]
    assert error_codes(await refresh(client, winner)) == ["UNAUTHENTICATED"]


async def test_a_refresh_token_is_not_accepted_as_an_access_token(client, sources):
    session = await sign_in(client, sources)

    body = await gql(client, ME, token=session["refreshToken"])

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] == {"me": None}
    assert (await stored(sources, session["refreshToken"]))["usedAt"] is None


async def test_an_access_token_is_not_accepted_as_a_refresh_token(client, sources):
    session = await sign_in(client, sources)

    body = await refresh(client, session["accessToken"])

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None
    assert await sources.users.db["refresh_tokens"].count_documents({}) == 1


async def test_an_unknown_refresh_token_is_unauthenticated(client, sources):
    await sign_in(client, sources)

    for token in ("rt_" + "A" * 43, "rt_", "", "not a token at all"):
        body = await refresh(client, token)
        assert error_codes(body) == ["UNAUTHENTICATED"], token


async def test_an_expired_refresh_token_is_refused(client, sources):
    session = await sign_in(client, sources)
    await sources.users.db["refresh_tokens"].update_one(
        {"tokenHash": token_hash(session["refreshToken"])},
        {"$set": {"expiresAt": datetime.now(UTC) - timedelta(seconds=1)}},
    )

    body = await refresh(client, session["refreshToken"])

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "expired" in body["errors"][0]["message"]


async def test_a_refresh_token_of_a_bumped_token_version_is_refused(client, sources):
    session = await sign_in(client, sources)
    await sources.users.db["users"].update_one(
        {"email": session["record"].email}, {"$inc": {"tokenVersion": 1}}
    )

    body = await refresh(client, session["refreshToken"])

    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_refresh_token_of_a_deleted_user_is_refused(client, sources):
    session = await sign_in(client, sources)
    await sources.users.db["users"].delete_many({})

    body = await refresh(client, session["refreshToken"])

    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_user_being_deleted_cannot_refresh_sign_in_or_be_the_viewer(client, sources):
    session = await sign_in(client, sources)
    # Only the mark, not the token-version bump that comes with it, to show each check.
    await sources.users.db["users"].update_one(
        {"email": session["record"].email}, {"$set": {"deletingAt": datetime.now(UTC)}}
    )

    refreshed = await refresh(client, session["refreshToken"])
    signed_in = await gql(client, LOGIN, {"email": session["record"].email, "password": PASSWORD})
    wrong_password = await gql(
        client, LOGIN, {"email": session["record"].email, "password": "not the password"}
    )
    me = await gql(client, ME, token=session["accessToken"])

    assert error_codes(refreshed) == ["UNAUTHENTICATED"]
    assert error_codes(signed_in) == ["UNAUTHENTICATED"]
    assert signed_in["errors"][0]["message"] == wrong_password["errors"][0]["message"]
    assert error_codes(me) == ["UNAUTHENTICATED"]


# Signing out


async def test_logout_revokes_the_family_of_the_refresh_token(client, sources):
    session = await sign_in(client, sources)
    renewed = await refresh(client, session["refreshToken"])
    latest = renewed["data"]["refreshToken"]["refreshToken"]

    body = await gql(client, LOGOUT, {"token": latest})

    assert body == {"data": {"logout": True}}
    assert error_codes(await refresh(client, latest)) == ["UNAUTHENTICATED"]
    family = (await stored(sources, latest))["familyId"]
    docs = await sources.users.db["refresh_tokens"].find({"familyId": family}).to_list()
    assert all(doc["revokedAt"] is not None for doc in docs)


async def test_logout_is_idempotent_and_true_for_any_token(client, sources):
    session = await sign_in(client, sources)

    answers = [
        await gql(client, LOGOUT, {"token": session["refreshToken"]}),
        await gql(client, LOGOUT, {"token": session["refreshToken"]}),
        await gql(client, LOGOUT, {"token": "rt_" + "B" * 43}),
        await gql(client, LOGOUT, {"token": session["accessToken"]}),
    ]

    assert answers == [{"data": {"logout": True}}] * 4


async def test_logout_leaves_other_sign_ins_and_other_users_signed_in(client, sources):
    mine = await sign_in(client, sources)
    second_device = await gql(client, LOGIN, {"email": mine["record"].email, "password": PASSWORD})
    theirs = await sign_in(client, sources)

    await gql(client, LOGOUT, {"token": mine["refreshToken"]})

    kept = await refresh(client, second_device["data"]["login"]["refreshToken"])
    other = await refresh(client, theirs["refreshToken"])
    assert kept["data"]["refreshToken"]["user"]["id"] == mine["user"]["id"]
    assert other["data"]["refreshToken"]["user"]["id"] == theirs["user"]["id"]


async def test_migrate_indexes_refresh_tokens_with_a_ttl_on_expiry(sources):
    await sources.migrate()

    indexes = {
        index["name"]: index
        async for index in await sources.users.db["refresh_tokens"].list_indexes()
    }

    assert indexes["tokenHash_1"]["unique"] is True
    assert indexes["expiresAt_1"]["expireAfterSeconds"] == 0
    assert {"familyId_1", "userId_1"} <= set(indexes)


async def test_marking_a_token_used_is_a_compare_and_set(sources):
    user = await make_user(sources)
    await refresh_tokens.insert_refresh_token(
        db=sources.users.db,
        token_hash="h" * 64,
        user_id=user.id,
        family_id=refresh_tokens.new_family_id(),
        token_version=0,
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )

    results = await asyncio.gather(
        *(
            refresh_tokens.consume_refresh_token(db=sources.users.db, token_hash="h" * 64)
            for _ in range(20)
        )
    )

    assert sum(result is not None for result in results) == 1
