"""`gateway import algo-runner` in-process against the suite's Mongo server: thousands of
generated legacy users moved into the three Mongo sources, verified, run again, dry-run,
the source cleared, and an old bcrypt password signing in over HTTP."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from bson import ObjectId
from sqlalchemy import func, select

from datasources import Sources, imported
from datasources.analytics import activity_events
from datasources.credentials import SECRET_FIELDS
from datasources.strategies import STATUSES
from gateway.core.crypto import SecretBox
from gateway.imports.algo_runner import (
    CLEARED_FIELDS,
    ImportOptions,
    ImportReport,
    import_algo_runner,
)
from tests.helpers import body_of
from tests.imports.conftest import Legacy, snapshot
from tests.imports.legacy import LegacyUser, legacy_users

USERS = 2000


@pytest.fixture(scope="module")
def generated() -> list[LegacyUser]:
    return legacy_users(USERS)


def refused_ids(users: list[LegacyUser]) -> set[str]:
    """The users the import must refuse, by the generator's own rules: no verifiable hash,
    or an email an earlier user has."""
    refused, seen = set(), set()
    for user in users:
        email = user.doc["email"].strip().lower()
        if user.password is None or email in seen:
            refused.add(str(user.doc["_id"]))
        seen.add(email)
    return refused


async def run_import(legacy: Legacy, sources: Sources, settings, **options: Any) -> ImportReport:
    return await import_algo_runner(
        sources=sources,
        box=SecretBox.from_settings(settings),
        options=ImportOptions(source_uri=legacy.uri, **{"batch_size": 150, **options}),
    )


async def test_an_import_moves_every_valid_user_into_our_shapes_and_verifies_it(
    legacy, sources, settings, generated
):
    await legacy.fill(generated)
    box = SecretBox.from_settings(settings)

    report = await run_import(legacy, sources, settings)

    refused = refused_ids(generated)
    assert {r.user_id for r in report.refused} == refused
    assert report.ok is False  # refusals are reported as a problem
    assert report.verified
    assert report.failed == []
    imported = [user for user in generated if str(user.doc["_id"]) not in refused]
    planned_strategies = sum(len(user.doc["strategies"]) for user in imported)
    assert report.tallies["users"].legacy == report.tallies["users"].stored == len(imported)
    assert report.tallies["strategies"].legacy == planned_strategies
    assert report.tallies["strategies"].stored == planned_strategies
    assert report.tallies["credentials"].legacy == report.tallies["credentials"].stored
    assert report.renamed, "the generated data has duplicate and blank names"

    stored = await snapshot(sources, box)
    users = {str(doc["_id"]): doc for doc in stored["users"]}
    assert set(users) == {str(user.doc["_id"]) for user in imported}  # ids kept
    by_owner: dict[str, list[dict[str, Any]]] = {}
    for strategy in stored["strategies"]:
        by_owner.setdefault(str(strategy["userId"]), []).append(strategy)
    credentials = {str(doc["userId"]): doc for doc in stored["credentials"]}
    for user in imported:
        doc, user_id = user.doc, str(user.doc["_id"])
        assert users[user_id]["email"] == doc["email"].strip().lower()
        assert users[user_id]["password"] == doc["password"]  # upgraded at sign-in, not here
        created = doc.get("createdAt", doc["_id"].generation_time).replace(tzinfo=UTC)
        assert users[user_id]["createdAt"] == created  # kept (a naive time read as UTC)
        mine = by_owner.get(user_id, [])
        assert len(mine) == len(doc["strategies"])
        assert len({s["name"] for s in mine}) == len(mine)  # unique per user
        assert {s["status"] for s in mine} <= {status.lower() for status in STATUSES}
        assert [s["code"] for s in sorted(mine, key=lambda s: s["code"])] == sorted(
            s["code"] for s in doc["strategies"]
        )
        expected = {
            name: str(doc[name])
            for name in ("clientId", *SECRET_FIELDS)
            if doc.get(name) not in (None, "")
        }
        if expected:
            got = {k: v for k, v in credentials[user_id].items() if k in expected}
            assert got == expected
            assert credentials[user_id]["broker"] == doc["broker"]
        else:
            assert user_id not in credentials

    # Plaintext never reached the new databases; no activity was recorded.
    secrets = {
        str(user.doc[name]) for user in generated for name in SECRET_FIELDS if user.doc.get(name)
    }
    raw = []
    for db in (sources.users.db, sources.strategies.db, sources.credentials.db):
        for name in await db.list_collection_names():
            raw += [doc async for doc in db[name].find({})]
    assert not secrets & set(_strings(raw))
    assert not any("outbox" in doc for doc in raw)
    async with sources.analytics.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(activity_events))).scalar() == 0


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


async def test_running_it_again_changes_nothing(legacy, sources, settings, generated):
    await legacy.fill(generated[:600])
    box = SecretBox.from_settings(settings)
    first = await run_import(legacy, sources, settings)
    before = await snapshot(sources, box)
    sealed = [doc async for doc in sources.credentials.db.credentials.find({})]

    second = await run_import(legacy, sources, settings)

    assert await snapshot(sources, box) == before
    assert [doc async for doc in sources.credentials.db.credentials.find({})] == sealed
    assert (second.users_written, second.strategies_written, second.credentials_written) == (
        0,
        0,
        0,
    )
    assert second.users_present == first.users_written
    assert second.tallies == first.tallies
    assert second.refused == first.refused


async def test_a_dry_run_writes_nothing_and_reports_what_the_import_then_writes(
    legacy, sources, settings, generated
):
    await legacy.fill(generated[:600])

    dry = await run_import(legacy, sources, settings, dry_run=True)
    empty = await snapshot(sources, SecretBox.from_settings(settings))
    real = await run_import(legacy, sources, settings)

    assert empty == {"users": [], "strategies": [], "credentials": []}
    assert await sources.users.db.imports.count_documents({}) == 0
    assert (dry.users_written, dry.strategies_written, dry.credentials_written) == (
        real.users_written,
        real.strategies_written,
        real.credentials_written,
    )
    assert dry.refused == real.refused
    assert dry.renamed == real.renamed
    assert dry.statuses == real.statuses


async def test_clearing_the_source_spares_every_user_whose_verification_failed(
    legacy, sources, settings, generated
):
    users = generated[:300]
    await legacy.fill(users)
    await run_import(legacy, sources, settings)
    # One imported user has a strategy fewer (deleted through the gateway since): its
    # verification fails.
    victim = next(u for u in users if len(u.doc["strategies"]) > 1 and u.password is not None)
    victim_id = victim.doc["_id"]
    await sources.strategies.db.strategies.delete_one({"userId": victim_id})

    cleared = await run_import(legacy, sources, settings, clear_source=True)

    assert [r.user_id for r in cleared.failed] == [str(victim_id)]
    assert "strategies are stored" in cleared.failed[0].reason
    docs = await legacy.docs()
    assert docs[str(victim_id)]["strategies"] == victim.doc["strategies"]  # untouched
    refused = refused_ids(users)
    for user_id, doc in docs.items():
        if user_id == str(victim_id) or user_id in refused:
            assert "gatewayImport" not in doc
            continue
        assert not set(CLEARED_FIELDS) & set(doc), user_id  # no plaintext left behind
        assert doc["gatewayImport"]["clearedAt"]
        assert doc["email"]
        assert doc.get("password")
    assert cleared.cleared == len(users) - len(refused) - 1

    # A user present is never written again (its strategy may have been deleted through
    # the gateway on purpose): a rerun fails it again and still spares it.
    again = await run_import(legacy, sources, settings, clear_source=True)

    assert [r.user_id for r in again.failed] == [str(victim_id)]
    assert again.strategies_written == 0
    assert again.cleared == 0
    assert again.cleared_before == len(users) - len(refused) - 1
    assert (await legacy.docs())[str(victim_id)]["strategies"] == victim.doc["strategies"]


LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    accessToken
    user { email strategies { totalCount } credentials { broker configuredFields } }
  }
}
"""


async def login(client, email: str, password: str) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": LOGIN, "variables": {"email": email, "password": password}}
    )
    return body_of(response)


async def test_an_old_bcrypt_password_signs_in_over_http_and_becomes_argon2id(
    client, legacy, sources, settings, generated
):
    users = generated[:40]
    await legacy.fill(users)
    await run_import(legacy, sources, settings)
    old = next(u for u in users if u.password and u.doc["strategies"] and u.doc.get("accessToken"))
    email, stored_before = old.doc["email"], old.doc["password"]
    assert stored_before[:4] in ("$2a$", "$2b$", "$2y$")

    wrong = await login(client, email, old.password + "!")
    signed_in = await login(client, email.upper(), old.password)

    assert wrong["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    user = signed_in["data"]["login"]["user"]
    assert user["email"] == email.lower()
    assert user["strategies"]["totalCount"] == len(old.doc["strategies"])
    assert "ACCESS_TOKEN" in user["credentials"]["configuredFields"]
    stored = await sources.users.db.users.find_one({"_id": ObjectId(old.doc["_id"])})
    assert stored["password"].startswith("$argon2id$")
    assert stored["tokenVersion"] == 0  # the same password: no session was revoked
    # The upgraded hash signs in with the same password; the old one is gone.
    assert "errors" not in await login(client, email, old.password)
    assert "errors" in await login(client, email, old.password + "!")


async def test_a_resumed_run_gives_a_shared_email_to_the_same_user_as_a_whole_run(
    legacy, sources, settings
):
    # The first holder of the email is refused for its hash: the second one gets it.
    first = {**legacy_users(1, seed=3)[0].doc, "password": "plaintext"}
    second = {**legacy_users(2, seed=3)[1].doc, "email": first["email"].upper()}
    await legacy.fill([LegacyUser(first, None), LegacyUser(second, "x")])
    whole = await run_import(legacy, sources, settings, batch_size=1)
    await sources.clear()
    # As if killed right after the first batch.
    await imported.save_checkpoint(
        db=sources.users.db,
        key=f"algo-runner:{legacy.db.name}",
        values={"lastUserId": first["_id"]},
    )

    resumed = await run_import(legacy, sources, settings, batch_size=1)

    assert resumed.resumed_after == str(first["_id"])
    assert [doc["_id"] async for doc in sources.users.db.users.find({})] == [second["_id"]]
    assert resumed.refused == whole.refused
    assert [r.user_id for r in resumed.refused] == [str(first["_id"])]
