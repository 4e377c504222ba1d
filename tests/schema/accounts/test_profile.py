"""Changing one's own profile and password."""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from bson import ObjectId

from tests.helpers import PASSWORD, error_codes, gid, gql, make_user, token_for

UPDATE = """
mutation Update($input: UpdateProfileInput!) {
  updateProfile(input: $input) { id email firstName lastName phone updatedAt }
}
"""
CHANGE = """
mutation Change($current: String!, $new: String!) {
  changePassword(currentPassword: $current, newPassword: $new) {
    accessToken refreshToken tokenType user { id email }
  }
}
"""
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken refreshToken }
}
"""
REFRESH = "mutation R($t: String!) { refreshToken(refreshToken: $t) { accessToken } }"
ME = "{ me { id firstName lastName phone } }"
ACTIVITY = "{ dashboard { recentActivity { kind data } } }"
NEW_PASSWORD = "a brand new passphrase"


async def stored_user(sources, user) -> dict[str, Any]:
    doc: dict[str, Any] = await sources.users.db["users"].find_one({"_id": ObjectId(user.id)})
    return doc


async def update(client, token: str, **fields: Any) -> dict[str, Any]:
    return await gql(client, UPDATE, {"input": fields}, token=token)


async def change(client, token: str, **overrides: str) -> dict[str, Any]:
    variables = {"current": PASSWORD, "new": NEW_PASSWORD, **overrides}
    return await gql(client, CHANGE, variables, token=token)


# updateProfile


async def test_update_profile_changes_only_the_fields_given(client, sources, settings):
    user = await make_user(sources, first_name="Ada", last_name="Lovelace", phone="+44 20 7946")
    before = await stored_user(sources, user)

    body = await update(client, token_for(settings, user), firstName="  Augusta ")

    assert body["data"]["updateProfile"]["firstName"] == "Augusta"
    after = await stored_user(sources, user)
    assert after["firstName"] == "Augusta"
    assert (after["lastName"], after["phone"]) == ("Lovelace", "+44 20 7946")
    assert after["updatedAt"] > before["updatedAt"]
    assert after["tokenVersion"] == before["tokenVersion"]


async def test_update_profile_sets_every_field_at_once(client, sources, settings):
    user = await make_user(sources)

    body = await update(
        client, token_for(settings, user), firstName="Grace", lastName="Hopper", phone="+1 555 0199"
    )

    assert body["data"]["updateProfile"] == {
        "id": gid(user),
        "email": user.email,
        "firstName": "Grace",
        "lastName": "Hopper",
        "phone": "+1 555 0199",
        "updatedAt": body["data"]["updateProfile"]["updatedAt"],
    }
    me = await gql(client, ME, token=token_for(settings, user))
    assert me["data"]["me"] == {
        "id": gid(user),
        "firstName": "Grace",
        "lastName": "Hopper",
        "phone": "+1 555 0199",
    }


async def test_an_explicit_null_phone_clears_it(client, sources, settings):
    user = await make_user(sources, phone="+44 20 7946 0958")

    body = await update(client, token_for(settings, user), phone=None)

    assert body["data"]["updateProfile"]["phone"] is None
    assert (await stored_user(sources, user))["phone"] is None


async def test_an_empty_input_changes_nothing(client, sources, settings):
    user = await make_user(sources, first_name="Ada")
    before = await stored_user(sources, user)

    body = await update(client, token_for(settings, user))

    assert body["data"]["updateProfile"]["firstName"] == "Ada"
    assert await stored_user(sources, user) == before


async def test_update_profile_refuses_a_name_with_a_control_character(client, sources, settings):
    user = await make_user(sources, first_name="Ada", last_name="Lovelace")
    before = await stored_user(sources, user)
    token = token_for(settings, user)

    for field in ("firstName", "lastName"):
        body = await update(client, token, **{field: "Byron\u0000"})
        assert error_codes(body) == ["BAD_USER_INPUT"], field
        assert body["errors"][0]["extensions"]["field"] == field
        assert "control characters" in body["errors"][0]["message"], field

    assert await stored_user(sources, user) == before


async def test_update_profile_rejects_bad_input_naming_the_field_and_changes_nothing(
    client, sources, settings
):
    user = await make_user(sources, first_name="Ada", last_name="Lovelace", phone="+44 20 7946")
    before = await stored_user(sources, user)
    token = token_for(settings, user)
    cases: dict[str, dict[str, Any]] = {
        "firstName": {"firstName": None, "lastName": "Byron"},
        "lastName": {"firstName": "Augusta", "lastName": "   "},
        "phone": {"firstName": "Augusta", "phone": "call me maybe"},
        "firstName ": {"firstName": "x" * 101},
    }

    for field, fields in cases.items():
        body = await update(client, token, **fields)
        assert error_codes(body) == ["BAD_USER_INPUT"], field
        assert body["errors"][0]["extensions"]["field"] == field.strip()
        assert body["data"] is None

    assert await stored_user(sources, user) == before


async def test_update_profile_needs_a_valid_token_and_changes_nothing_without_one(
    client, sources, settings
):
    user = await make_user(sources, first_name="Ada")
    revoked = token_for(settings, user)
    await sources.users.db["users"].update_one(
        {"_id": ObjectId(user.id)}, {"$inc": {"tokenVersion": 1}}
    )
    before = await stored_user(sources, user)

    anonymous = await gql(client, UPDATE, {"input": {"firstName": "Eve"}})
    stale = await update(client, revoked, firstName="Eve")

    assert error_codes(anonymous) == error_codes(stale) == ["UNAUTHENTICATED"]
    assert await stored_user(sources, user) == before


async def test_update_profile_changes_only_the_viewers_own_account(client, sources, settings):
    me = await make_user(sources)
    other = await make_user(sources, first_name="Bob")
    others_before = await stored_user(sources, other)

    await update(client, token_for(settings, me), firstName="Mallory", phone="+1 555 0100")

    assert await stored_user(sources, other) == others_before


async def test_update_profile_records_which_fields_changed_never_their_values(
    client, sources, settings
):
    user = await make_user(sources)
    token = token_for(settings, user)

    await update(client, token, lastName="Secretname", phone=None)

    activity = await gql(client, ACTIVITY, token=token)
    events = activity["data"]["dashboard"]["recentActivity"]
    assert events == [{"kind": "PROFILE_UPDATED", "data": {"fields": ["lastName", "phone"]}}]


# changePassword


async def test_change_password_stores_a_new_hash_and_returns_a_working_session(
    client, sources, settings
):
    user = await make_user(sources)
    before = await stored_user(sources, user)

    body = await change(client, token_for(settings, user))

    payload = body["data"]["changePassword"]
    assert payload["tokenType"] == "Bearer"
    assert payload["user"] == {"id": gid(user), "email": user.email}
    after = await stored_user(sources, user)
    assert after["password"].startswith("$argon2id$")
    assert PasswordHasher().verify(after["password"], NEW_PASSWORD)
    assert NEW_PASSWORD not in str(after)
    assert after["tokenVersion"] == before["tokenVersion"] + 1
    me = await gql(client, ME, token=payload["accessToken"])
    assert me["data"]["me"]["id"] == gid(user)
    refreshed = await gql(client, REFRESH, {"t": payload["refreshToken"]})
    assert refreshed["data"]["refreshToken"]["accessToken"]


async def test_after_a_password_change_only_the_new_password_signs_in(client, sources, settings):
    user = await make_user(sources)
    await change(client, token_for(settings, user))

    old = await gql(client, LOGIN, {"email": user.email, "password": PASSWORD})
    new = await gql(client, LOGIN, {"email": user.email, "password": NEW_PASSWORD})

    assert error_codes(old) == ["UNAUTHENTICATED"]
    assert new["data"]["login"]["accessToken"]


async def test_a_password_change_signs_every_earlier_token_out(client, sources, settings):
    user = await make_user(sources)
    other_device = await gql(client, LOGIN, {"email": user.email, "password": PASSWORD})
    own = token_for(settings, user)

    await change(client, own)

    for token in (own, other_device["data"]["login"]["accessToken"]):
        body = await gql(client, ME, token=token)
        assert error_codes(body) == ["UNAUTHENTICATED"]
        assert "revoked" in body["errors"][0]["message"]
    stale_refresh = await gql(client, REFRESH, {"t": other_device["data"]["login"]["refreshToken"]})
    assert error_codes(stale_refresh) == ["UNAUTHENTICATED"]
    docs = (
        await sources.users.db["refresh_tokens"]
        .find({"userId": ObjectId(user.id)})
        .sort("_id", 1)
        .to_list()
    )
    assert [doc["revokedAt"] is not None for doc in docs] == [True, False]


async def test_a_wrong_current_password_is_unauthenticated_and_changes_nothing(
    client, sources, settings
):
    user = await make_user(sources)
    session = await gql(client, LOGIN, {"email": user.email, "password": PASSWORD})
    token = session["data"]["login"]["accessToken"]
    before = await stored_user(sources, user)

    body = await change(client, token, current="not my password")

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None
    assert await stored_user(sources, user) == before
    assert (await gql(client, ME, token=token))["data"]["me"]["id"] == gid(user)
    refreshed = await gql(client, REFRESH, {"t": session["data"]["login"]["refreshToken"]})
    assert refreshed["data"]["refreshToken"]["accessToken"]


async def test_a_new_password_must_pass_the_policy_and_a_refused_one_changes_nothing(
    client, sources, settings
):
    user = await make_user(sources, email="policy@example.com")
    token = token_for(settings, user)
    before = await stored_user(sources, user)

    for new, why in (
        ("short", "at least 10"),
        ("x" * 257, "at most 256"),
        ("Policy@Example.com", "email"),
        (PASSWORD, "differ"),
    ):
        body = await change(client, token, new=new)
        assert error_codes(body) == ["BAD_USER_INPUT"], why
        assert body["errors"][0]["extensions"]["field"] == "newPassword", why
        assert why in body["errors"][0]["message"], why

    assert await stored_user(sources, user) == before


async def test_change_password_needs_a_token(client, sources):
    await make_user(sources)

    body = await gql(client, CHANGE, {"current": PASSWORD, "new": NEW_PASSWORD})

    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_password_change_leaves_other_users_signed_in(client, sources, settings):
    me = await make_user(sources)
    other = await make_user(sources)
    others_session = await gql(client, LOGIN, {"email": other.email, "password": PASSWORD})
    others_before = await stored_user(sources, other)

    await change(client, token_for(settings, me))

    assert await stored_user(sources, other) == others_before
    assert (await gql(client, ME, token=token_for(settings, other)))["data"]["me"]["id"] == gid(
        other
    )
    refreshed = await gql(client, REFRESH, {"t": others_session["data"]["login"]["refreshToken"]})
    assert refreshed["data"]["refreshToken"]["accessToken"]


async def test_a_password_change_is_recorded_as_activity(client, sources, settings):
    user = await make_user(sources)

    body = await change(client, token_for(settings, user))

    token = body["data"]["changePassword"]["accessToken"]
    activity = await gql(client, ACTIVITY, token=token)
    assert activity["data"]["dashboard"]["recentActivity"] == [
        {"kind": "PASSWORD_CHANGED", "data": {}}
    ]
