"""Sign-up, sign-in and access tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from jwt.utils import base64url_encode

from gateway.core.auth import key_id
from tests.helpers import PASSWORD, error_codes, gid, gql, make_user, signed_token, token_for

REGISTER = """
mutation Register($email: String!, $password: String!, $first: String!, $last: String!,
                  $phone: String) {
  register(email: $email, password: $password, firstName: $first, lastName: $last,
           phone: $phone) {
    accessToken tokenType expiresAt
    user { id email firstName lastName phone role }
  }
}
"""
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken user { id email } }
}
"""
ME = "{ me { id email } }"


def registration(**overrides: str) -> dict[str, str]:
    values = {
        "email": "Trader@Example.com",
        "password": "a long enough password",
        "first": "Ada",
        "last": "Lovelace",
        "phone": "+44 20 7946 0958",
    }
    values.update(overrides)
    return values


async def test_register_creates_a_user_and_returns_a_working_token(client):
    body = await gql(client, REGISTER, registration())

    payload = body["data"]["register"]
    assert payload["tokenType"] == "Bearer"
    assert payload["user"]["email"] == "trader@example.com"
    assert payload["user"]["role"] == "USER"
    me = await gql(client, ME, token=payload["accessToken"])
    assert me["data"]["me"] == {"id": payload["user"]["id"], "email": "trader@example.com"}


async def test_register_names_every_bad_argument_in_one_answer(client, sources):
    body = await gql(
        client, REGISTER, registration(email="not an email", password="short", last="")
    )

    assert body["data"] is None
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [
        ("BAD_USER_INPUT", "email"),
        ("BAD_USER_INPUT", "password"),
        ("BAD_USER_INPUT", "lastName"),
    ]
    assert await sources.users.db["users"].count_documents({}) == 0


async def test_register_stores_an_argon2id_hash_never_the_password(client, sources):
    await gql(client, REGISTER, registration())

    stored = await sources.users.db["users"].find_one({"email": "trader@example.com"})
    assert stored["password"].startswith("$argon2id$")
    assert "a long enough password" not in str(stored)


async def test_register_with_a_taken_email_is_a_conflict_that_writes_nothing(client, sources):
    await gql(client, REGISTER, registration())

    body = await gql(client, REGISTER, registration(email=" TRADER@example.com "))

    assert error_codes(body) == ["CONFLICT"]
    assert body["data"] is None
    assert await sources.users.db["users"].count_documents({}) == 1


async def test_register_rejects_bad_input_naming_the_field_and_writes_nothing(client, sources):
    cases = {
        "email": registration(email="not-an-email"),
        "password": registration(password="short"),
        "firstName": registration(first="   "),
        "phone": registration(phone="call me maybe"),
    }
    for field, variables in cases.items():
        body = await gql(client, REGISTER, variables)
        assert error_codes(body) == ["BAD_USER_INPUT"], field
        assert body["errors"][0]["extensions"]["field"] == field

    assert await sources.users.db["users"].count_documents({}) == 0


@pytest.mark.parametrize("name", ["Ada\u0000", "Ada\nLovelace", "\u0007Ada", "Ada\u009f"])
async def test_register_refuses_a_name_with_a_control_character_as_strategy_names_are(
    client, sources, name
):
    for field, variables in (
        ("firstName", registration(first=name)),
        ("lastName", registration(last=name)),
    ):
        body = await gql(client, REGISTER, variables)
        assert error_codes(body) == ["BAD_USER_INPUT"], field
        assert body["errors"][0]["extensions"]["field"] == field
        assert "control characters" in body["errors"][0]["message"], field

    assert await sources.users.db["users"].count_documents({}) == 0


async def test_register_refuses_a_password_equal_to_the_email(client):
    body = await gql(
        client, REGISTER, registration(email="same@example.com", password="same@example.com")
    )

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "password"


async def test_login_with_the_right_password_signs_in(client, sources):
    user = await make_user(sources, email="login@example.com")

    body = await gql(client, LOGIN, {"email": "LOGIN@example.com", "password": PASSWORD})

    assert body["data"]["login"]["user"]["id"] == gid(user)
    me = await gql(client, ME, token=body["data"]["login"]["accessToken"])
    assert me["data"]["me"]["id"] == gid(user)


async def test_login_fails_the_same_way_for_a_wrong_password_and_an_unknown_email(client, sources):
    await make_user(sources, email="login@example.com")

    wrong_password = await gql(client, LOGIN, {"email": "login@example.com", "password": "nope"})
    unknown_email = await gql(client, LOGIN, {"email": "nobody@example.com", "password": "x"})

    assert error_codes(wrong_password) == error_codes(unknown_email) == ["UNAUTHENTICATED"]
    assert wrong_password["errors"][0]["message"] == unknown_email["errors"][0]["message"]


async def test_login_records_a_sign_in_activity_event(client, sources):
    await make_user(sources, email="login@example.com")
    body = await gql(client, LOGIN, {"email": "login@example.com", "password": PASSWORD})
    token = body["data"]["login"]["accessToken"]

    dashboard = await gql(client, "{ dashboard { recentActivity { kind } } }", token=token)

    assert dashboard["data"]["dashboard"]["recentActivity"] == [{"kind": "SIGNED_IN"}]


async def test_a_missing_token_is_unauthenticated(client):
    body = await gql(client, ME)

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] == {"me": None}


async def test_every_viewer_query_requires_a_token(client):
    for query, data in (
        # Fed by the users source: non-null, so the whole answer is null.
        ("{ profile { tradeCount } }", None),
        ("{ dashboard { pnl { today } } }", None),
        # Fed by other sources: nullable, so only the field is null.
        ('{ strategy(id: "0123456789abcdef01234567") { id } }', {"strategy": None}),
        ("{ strategies { totalCount } }", {"strategies": None}),
        ("{ trades { totalCount } }", {"trades": None}),
        ("{ analytics { netPnl } }", {"analytics": None}),
    ):
        body = await gql(client, query)
        assert error_codes(body) == ["UNAUTHENTICATED"], query
        assert body["data"] == data, query


async def test_an_expired_token_is_unauthenticated(client, sources, settings):
    user = await make_user(sources)
    issued = datetime.now(UTC) - timedelta(hours=2)
    claims = {
        "sub": user.id,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued,
        "exp": issued + timedelta(minutes=15),
        "typ": "access",
        "ver": 0,
    }
    token = signed_token(settings, claims)

    body = await gql(client, ME, token=token)

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "expired" in body["errors"][0]["message"]


async def test_a_tampered_token_is_unauthenticated(client, sources, settings):
    victim = await make_user(sources)
    attacker = await make_user(sources)
    header, _payload, signature = token_for(settings, attacker).split(".")
    forged_claims = jwt.decode(token_for(settings, victim), options={"verify_signature": False})
    forged_payload = base64url_encode(json.dumps(forged_claims).encode()).decode()

    body = await gql(client, ME, token=f"{header}.{forged_payload}.{signature}")

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] == {"me": None}


async def test_tokens_signed_otherwise_are_refused(client, sources, settings):
    user = await make_user(sources)
    base = {
        "sub": user.id,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": datetime.now(UTC),
        "exp": datetime.now(UTC) + timedelta(minutes=5),
        "typ": "access",
        "ver": 0,
    }
    # Each names the current key's kid, so each is refused for its own flaw.
    kid = key_id(settings.jwt_secret.get_secret_value())
    forged = {
        "unsigned (alg none)": jwt.encode(base, "", algorithm="none", headers={"kid": kid}),
        "another secret": signed_token(settings, base, secret="x" * 48, kid=kid),
        "another algorithm": signed_token(settings, base, algorithm="HS512"),
        "another audience": signed_token(settings, {**base, "aud": "elsewhere"}),
        "another issuer": signed_token(settings, {**base, "iss": "elsewhere"}),
        "no expiry": signed_token(settings, {k: v for k, v in base.items() if k != "exp"}),
        "not an access token": signed_token(settings, {**base, "typ": "refresh"}),
        "no kid": jwt.encode(base, settings.jwt_secret.get_secret_value(), algorithm="HS256"),
    }
    for why, token in forged.items():
        body = await gql(client, ME, token=token)
        assert error_codes(body) == ["UNAUTHENTICATED"], why


async def test_a_malformed_authorization_header_is_unauthenticated(client):
    response = await client.post(
        "/graphql", json={"query": ME}, headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )

    assert error_codes(response.json()) == ["UNAUTHENTICATED"]


async def test_a_token_of_a_bumped_token_version_is_revoked(client, sources, settings):
    user = await make_user(sources)
    token = token_for(settings, user)
    await sources.users.db["users"].update_one({"email": user.email}, {"$inc": {"tokenVersion": 1}})

    body = await gql(client, ME, token=token)

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "revoked" in body["errors"][0]["message"]


async def test_a_token_of_a_deleted_user_is_refused(client, sources, settings):
    user = await make_user(sources)
    token = token_for(settings, user)
    await sources.users.db["users"].delete_many({})

    body = await gql(client, ME, token=token)

    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_revoked_token_gets_no_dashboard_or_profile_and_one_error(
    client, sources, settings
):
    user = await make_user(sources)
    token = token_for(settings, user)
    await sources.users.db["users"].update_one({"email": user.email}, {"$inc": {"tokenVersion": 1}})
    query = """{ dashboard { user { id } strategyCounts { total } pnl { allTime }
                 credentialsConfigured recentActivity { kind } }
                 profile { memberSince tradeCount credentials { broker } } }"""

    body = await gql(client, query, token=token)

    assert body["data"] is None
    assert error_codes(body) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    "email",
    [
        "ada\u0000@example.com",
        "ada@exa\u0007mple.com",
        "ada\u202e@example.com",  # right-to-left override: "ada@…" shown reversed
        "ada@example\u202d.com",  # left-to-right override
        "ada\u2066@example.com",  # left-to-right isolate
        "a\u200bda@example.com",  # zero-width space
        "ada@exam\u009fple.com",  # a C1 control
    ],
)
async def test_register_refuses_an_email_with_a_control_or_bidi_character(client, sources, email):
    body = await gql(client, REGISTER, registration(email=email))

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "email"
    assert await sources.users.db["users"].count_documents({}) == 0
