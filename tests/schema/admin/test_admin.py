"""The ADMIN role: any user by id, the users list with a search, and the role commands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from gateway.seed import ADMIN_EMAIL, DEMO_PASSWORD, seed_demo
from schema._ids import global_id
from tests.helpers import (
    error_codes,
    gid,
    gql,
    make_credentials,
    make_strategy,
    make_trades,
    make_user,
    run,
    token_for,
    trade_row,
)

USER = """
query User($id: ID!) {
  user(id: $id) {
    id email firstName role
    strategies { totalCount edges { node { name owner { id } } } }
    trades { totalCount }
    credentials { broker clientId configured configuredFields apiKeyHint }
  }
}
"""
USERS = """
query Users($search: String, $first: Int, $after: String) {
  users(search: $search, first: $first, after: $after) {
    totalCount
    edges { cursor node { id email } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""
MISSING_ID = "0123456789abcdef01234567"


async def make_admin(sources, **overrides: Any):
    return await make_user(sources, role="ADMIN", **overrides)


async def users(client, token: str, **variables: Any) -> dict[str, Any]:
    return await gql(client, USERS, variables, token=token)


def emails(body: dict[str, Any]) -> list[str]:
    return [edge["node"]["email"] for edge in body["data"]["users"]["edges"]]


# Who may ask


async def test_a_user_who_is_not_an_admin_is_forbidden_and_learns_nothing(
    client, sources, settings
):
    viewer = await make_user(sources)
    other = await make_user(sources)
    token = token_for(settings, viewer)

    existing = await gql(client, USER, {"id": gid(other)}, token=token)
    missing = await gql(client, USER, {"id": MISSING_ID}, token=token)
    listing = await users(client, token)

    assert error_codes(existing) == error_codes(missing) == ["FORBIDDEN"]
    assert existing == {**missing, "errors": existing["errors"]}
    assert existing["data"] == {"user": None}
    assert existing["errors"][0]["message"] == missing["errors"][0]["message"]
    assert "ADMIN" in existing["errors"][0]["message"]
    assert error_codes(listing) == ["FORBIDDEN"]
    assert listing["data"] is None


async def test_without_a_token_the_admin_queries_are_unauthenticated(client, sources):
    other = await make_user(sources)

    single = await gql(client, USER, {"id": gid(other)})
    listing = await gql(client, USERS)

    assert error_codes(single) == error_codes(listing) == ["UNAUTHENTICATED"]


async def test_the_role_is_read_on_every_request_so_a_demotion_applies_at_once(
    client, sources, settings
):
    admin = await make_admin(sources)
    token = token_for(settings, admin)
    assert (await users(client, token))["data"]["users"]["totalCount"] == 1

    await sources.users.db["users"].update_one(
        {"_id": ObjectId(admin.id)}, {"$set": {"role": "user"}}
    )

    assert error_codes(await users(client, token)) == ["FORBIDDEN"]


@pytest.mark.slow
async def test_gateway_accounts_promote_and_demote_set_the_role(client, sources, settings):
    user = await make_user(sources, email="promote-me@example.com")
    token = token_for(settings, user)

    promoted = run(settings, "accounts", "promote", "Promote-Me@example.com")
    as_admin = await users(client, token)
    demoted = run(settings, "accounts", "demote", "promote-me@example.com")
    as_user = await users(client, token)
    unknown = run(settings, "accounts", "promote", "nobody@example.com")

    assert promoted.returncode == 0, promoted.stderr
    assert "promote-me@example.com is now ADMIN" in promoted.stderr
    assert as_admin["data"]["users"]["totalCount"] == 1
    assert demoted.returncode == 0, demoted.stderr
    assert error_codes(as_user) == ["FORBIDDEN"]
    assert unknown.returncode == 1
    assert "no user" in unknown.stderr
    doc = await sources.users.db["users"].find_one({"_id": ObjectId(user.id)})
    assert doc["role"] == "user"


async def test_the_demo_seed_has_an_admin(client, sources):
    await seed_demo(sources, trades_per_strategy=1)

    body = await gql(
        client,
        "mutation L($e: String!, $p: String!) { login(email: $e, password: $p) "
        "{ user { email role } } }",
        {"e": ADMIN_EMAIL, "p": DEMO_PASSWORD},
    )

    assert body["data"]["login"]["user"] == {"email": ADMIN_EMAIL, "role": "ADMIN"}


# One user by id


async def test_an_admin_reads_any_user_with_their_strategies_trades_and_credentials_status(
    client, sources, settings, secrets_spy
):
    admin = await make_admin(sources)
    trader = await make_user(sources, first_name="Tess")
    strategy = await make_strategy(sources, trader, name="alpha")
    await make_trades(sources, [trade_row(strategy), trade_row(strategy)])
    secrets = await make_credentials(sources, trader, secrets_spy)

    response = await client.post(
        "/graphql",
        json={"query": USER, "variables": {"id": gid(trader)}},
        headers={"Authorization": f"Bearer {token_for(settings, admin)}"},
    )

    found = response.json()["data"]["user"]
    assert found["email"] == trader.email
    assert found["role"] == "USER"
    assert found["strategies"] == {
        "totalCount": 1,
        "edges": [{"node": {"name": "alpha", "owner": {"id": gid(trader)}}}],
    }
    assert found["trades"] == {"totalCount": 2}
    assert found["credentials"]["configured"] is True
    assert found["credentials"]["apiKeyHint"].endswith(secrets["apiKey"][-4:])
    assert not any(secret in response.text for secret in secrets.values())


async def test_user_lookups_are_batched_through_the_users_loader(
    client, sources, settings, round_trips
):
    admin = await make_admin(sources)
    others = [await make_user(sources) for _ in range(4)]
    query = (
        "{ " + " ".join(f'u{i}: user(id: "{gid(u)}") {{ id }}' for i, u in enumerate(others)) + " }"
    )

    round_trips.reset()
    body = await gql(client, query, token=token_for(settings, admin))

    assert [body["data"][f"u{i}"]["id"] for i in range(4)] == [gid(u) for u in others]
    # One for the viewer check, one for all four users.
    assert round_trips.counts["users"] == 2


async def test_an_unknown_user_id_is_not_found(client, sources, settings):
    token = token_for(settings, await make_admin(sources))

    body = await gql(client, USER, {"id": str(global_id("User", MISSING_ID))}, token=token)

    assert error_codes(body) == ["NOT_FOUND"]
    assert body["data"] == {"user": None}


async def test_an_id_that_is_not_a_users_is_bad_user_input(client, sources, settings):
    admin = await make_admin(sources)
    strategy = await make_strategy(sources, admin)
    token = token_for(settings, admin)

    for user_id in (MISSING_ID, "not-an-id", gid(strategy)):
        body = await gql(client, USER, {"id": user_id}, token=token)
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"}
        assert body["data"] == {"user": None}


async def test_a_user_being_deleted_is_invisible_to_admins(client, sources, settings):
    token = token_for(settings, await make_admin(sources))
    leaving = await make_user(sources, email="leaving@example.com")
    await sources.users.db["users"].update_one(
        {"_id": ObjectId(leaving.id)}, {"$set": {"deletingAt": datetime.now(UTC)}}
    )

    single = await gql(client, USER, {"id": gid(leaving)}, token=token)
    listing = await users(client, token)
    searched = await users(client, token, search="leaving")

    assert error_codes(single) == ["NOT_FOUND"]
    assert "leaving@example.com" not in emails(listing)
    assert listing["data"]["users"]["totalCount"] == 1
    assert searched["data"]["users"] == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {"hasNextPage": False, "hasPreviousPage": False, "endCursor": None},
    }


async def test_an_admins_own_queries_stay_its_own(client, sources, settings):
    admin = await make_admin(sources)
    other = await make_user(sources)
    theirs = await make_strategy(sources, other)
    token = token_for(settings, admin)

    strategy = await gql(
        client, "query S($id: ID!) { strategy(id: $id) { id } }", {"id": gid(theirs)}, token=token
    )
    strategies = await gql(client, "{ strategies { totalCount } }", token=token)
    me = await gql(client, "{ me { id role } }", token=token)

    assert error_codes(strategy) == ["NOT_FOUND"]
    assert strategies["data"]["strategies"]["totalCount"] == 0
    assert me["data"]["me"] == {"id": gid(admin), "role": "ADMIN"}


# The users list


async def test_users_lists_everyone_newest_first_in_pages(client, sources, settings):
    admin = await make_admin(sources, email="admin@example.com")
    created = [await make_user(sources, email=f"user{i}@example.com") for i in range(5)]
    token = token_for(settings, admin)

    first = await users(client, token, first=4)
    rest = await users(
        client, token, first=4, after=first["data"]["users"]["pageInfo"]["endCursor"]
    )

    newest_first = [user.email for user in reversed(created)] + [admin.email]
    assert emails(first) + emails(rest) == newest_first
    assert first["data"]["users"]["totalCount"] == rest["data"]["users"]["totalCount"] == 6
    assert first["data"]["users"]["pageInfo"]["hasNextPage"] is True
    assert rest["data"]["users"]["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "endCursor": rest["data"]["users"]["edges"][-1]["cursor"],
    }


async def test_search_matches_email_or_names_case_insensitively(client, sources, settings):
    token = token_for(settings, await make_admin(sources, email="root@example.com"))
    await make_user(sources, email="ada@example.com", first_name="Ada", last_name="Lovelace")
    await make_user(sources, email="grace@example.com", first_name="Grace", last_name="Hopper")
    await make_user(sources, email="alan@example.org", first_name="Alan", last_name="Turing")

    by_email = await users(client, token, search="EXAMPLE.ORG")
    by_first = await users(client, token, search="gRaC")
    by_last = await users(client, token, search="lace")
    by_all = await users(client, token, search="  a  ")

    assert emails(by_email) == ["alan@example.org"]
    assert emails(by_first) == ["grace@example.com"]
    assert emails(by_last) == ["ada@example.com"]
    assert by_all["data"]["users"]["totalCount"] == 4
    assert by_email["data"]["users"]["totalCount"] == 1


async def test_search_is_plain_text_never_a_pattern(client, sources, settings):
    token = token_for(settings, await make_admin(sources))
    await make_user(sources, email="abc@example.com", first_name="A(b", last_name="C")

    for pattern, found in ((".*", []), ("a.c", []), ("a(b", ["abc@example.com"]), ("[", [])):
        body = await users(client, token, search=pattern)
        assert error_codes(body) == [], pattern
        assert emails(body) == found, pattern


async def test_users_rejects_bad_arguments_naming_them(client, sources, settings):
    token = token_for(settings, await make_admin(sources))

    for variables, field in (
        ({"search": "x" * 101}, "search"),
        ({"first": 101}, "first"),
        ({"first": -1}, "first"),
        ({"after": "bm90LWEtY3Vyc29y"}, "after"),
        ({"after": "c3RyYXRlZ3k6MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"}, "after"),
    ):
        body = await users(client, token, **variables)
        assert error_codes(body) == ["BAD_USER_INPUT"], variables
        assert body["errors"][0]["extensions"]["field"] == field, variables


async def test_users_nodes_join_other_sources_in_batches(client, sources, settings, round_trips):
    token = token_for(settings, await make_admin(sources))
    for index in range(6):
        user = await make_user(sources)
        await make_strategy(sources, user, name=f"s{index}")

    round_trips.reset()
    body = await gql(
        client,
        "{ users(first: 10) { edges { node { strategies { totalCount } } } } }",
        token=token,
    )

    counts = [edge["node"]["strategies"]["totalCount"] for edge in body["data"]["users"]["edges"]]
    assert sorted(counts) == [0, 1, 1, 1, 1, 1, 1]
    assert round_trips.counts["strategies"] == 2
