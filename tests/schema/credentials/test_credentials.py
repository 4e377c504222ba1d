"""Broker credentials over HTTP: saveCredentials, deleteCredentials, sealing at rest, and
`gateway credentials rotate`.

Every plaintext a test stores goes to the suite-wide `secrets_spy`, which fails the run
if any response body of the whole suite ever holds one.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pydantic import SecretStr
from pymongo import AsyncMongoClient, MongoClient, monitoring

from datasources import Sources
from datasources import credentials as credentials_source
from datasources._mongo import get_database
from datasources.credentials import SECRET_FIELDS, rotate_credentials
from datasources.users import UserRecord
from gateway.core.crypto import SecretBox, UnsealError
from gateway.core.settings import Settings
from tests.helpers import (
    GATEWAY,
    ROOT,
    SecretsSpy,
    environment,
    error_codes,
    gql,
    make_credentials,
    make_user,
    signed_in,
    token_for,
)

SAVE = """
mutation Save($input: SaveCredentialsInput!) {
  saveCredentials(input: $input) {
    broker clientId configuredFields apiKeyHint updatedAt configured
  }
}
"""
DELETE = "mutation { deleteCredentials }"
STATUS = "{ me { credentials { broker clientId configuredFields apiKeyHint updatedAt } } }"
ACTIVITY = "{ dashboard { recentActivity { kind subjectId data } } }"
ALL_FIELDS = [
    "ACCESS_TOKEN",
    "BROKER_USERNAME",
    "BROKER_PASSWORD",
    "TOTP_SECRET",
    "API_KEY",
    "API_SECRET",
]
OLD_KEY = ("old", b"O" * 32)
NEW_KEY = ("new", b"N" * 32)


# Helpers -------------------------------------------------------------------------------------


def six_secrets(tag: str) -> dict[str, str]:
    """Distinctive plaintexts for every secret field."""
    return {
        "accessToken": f"ACCESS-{tag}-plaintext",
        "brokerUsername": f"USERNAME-{tag}-plaintext",
        "brokerPassword": f"PASSWORD-{tag}-plaintext",
        "totpSecret": f"TOTP-{tag}-plaintext",
        "apiKey": f"APIKEY-{tag}-plaintext-{tag[-4:]}",
        "apiSecret": f"APISECRET-{tag}-plaintext",
    }


def credentials_input(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"broker": "binance", "clientId": "CLIENT-1"}
    values.update(overrides)
    return values


async def save(client, token: str, spy: SecretsSpy, **fields: Any) -> dict[str, Any]:
    """Call saveCredentials with `fields` (defaults: broker binance, clientId CLIENT-1),
    telling the spy about every secret sent first."""
    spy.add(*(value for name, value in fields.items() if name in SECRET_FIELDS and value))
    return await gql(client, SAVE, {"input": credentials_input(**fields)}, token=token)


def saved(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"]["saveCredentials"]
    return result


async def raw(sources: Sources, user: UserRecord) -> dict[str, Any] | None:
    """The user's credentials document exactly as stored."""
    return await sources.credentials.db["credentials"].find_one({"userId": ObjectId(user.id)})


async def document_of(sources: Sources, user: UserRecord) -> dict[str, Any]:
    """The user's credentials document, which must exist."""
    document = await raw(sources, user)
    assert document is not None
    return document


async def events(client, token: str, kind: str) -> list[dict[str, Any]]:
    body = await gql(client, ACTIVITY, token=token)
    found: list[dict[str, Any]] = [
        event for event in body["data"]["dashboard"]["recentActivity"] if event["kind"] == kind
    ]
    return found


def keys_setting(*keys: tuple[str, bytes]) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in keys)


def with_keys(settings: Settings, *keys: tuple[str, bytes]) -> Settings:
    return settings.model_copy(
        update={"credentials_encryption_keys": SecretStr(keys_setting(*keys))}
    )


# saveCredentials: the happy path ----------------------------------------------------------------


async def test_save_credentials_stores_every_secret_and_returns_only_the_status_view(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    secrets = six_secrets(user.id[-8:])
    secrets_spy.add(*secrets.values())

    response = await client.post(
        "/graphql",
        json={"query": SAVE, "variables": {"input": credentials_input(**secrets)}},
        headers={"Authorization": f"Bearer {token}"},
    )

    result = saved(response.json())
    assert result.pop("updatedAt").endswith("+00:00")
    assert result == {
        "broker": "binance",
        "clientId": "CLIENT-1",
        "configuredFields": ALL_FIELDS,
        "apiKeyHint": "••••" + secrets["apiKey"][-4:],
        "configured": True,
    }
    for secret in secrets.values():
        assert secret not in response.text


async def test_save_credentials_names_every_bad_field_in_one_answer(
    client, sources, settings, secrets_spy
):
    _user, token = await signed_in(sources, settings)

    body = await save(client, token, secrets_spy, broker="nowhere", clientId="", apiKey="k" * 5000)

    assert body["data"] is None
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [
        ("BAD_USER_INPUT", "broker"),
        ("BAD_USER_INPUT", "clientId"),
        ("BAD_USER_INPUT", "apiKey"),
    ]
    assert await sources.credentials.db["credentials"].count_documents({}) == 0


async def test_saved_credentials_read_back_as_the_viewers_credentials(
    client, sources, settings, secrets_spy
):
    _user, token = await signed_in(sources, settings)
    first = saved(await save(client, token, secrets_spy, broker="zerodha", apiKey="KEY-0-wxyz"))

    body = await gql(client, STATUS, token=token)

    assert body["data"]["me"]["credentials"] == {
        "broker": "zerodha",
        "clientId": "CLIENT-1",
        "configuredFields": ["API_KEY"],
        "apiKeyHint": "••••wxyz",
        "updatedAt": first["updatedAt"],
    }


async def test_saved_credentials_are_what_the_profile_and_dashboard_see(
    client, sources, settings, secrets_spy
):
    _user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, apiKey="KEY-1-abcd")

    body = await gql(
        client,
        "{ profile { credentials { broker configured } } dashboard { credentialsConfigured } }",
        token=token,
    )

    assert body["data"] == {
        "profile": {"credentials": {"broker": "binance", "configured": True}},
        "dashboard": {"credentialsConfigured": True},
    }


async def test_credentials_without_secrets_can_be_saved_and_are_not_configured(
    client, sources, settings, secrets_spy
):
    _user, token = await signed_in(sources, settings)

    result = saved(await save(client, token, secrets_spy))

    assert result["configuredFields"] == []
    assert result["configured"] is False
    assert result["apiKeyHint"] is None


async def test_the_broker_is_matched_without_regard_to_case_and_stored_as_configured(
    client, sources, settings, secrets_spy
):
    _user, token = await signed_in(sources, settings)

    result = saved(await save(client, token, secrets_spy, broker="  Zerodha "))

    assert result["broker"] == "zerodha"


async def test_saving_records_a_credentials_saved_event_naming_fields_never_values(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, apiKey="KEY-2-efgh", accessToken="TOKEN-2-x")
    await save(client, token, secrets_spy, accessToken=None)

    found = await events(client, token, "CREDENTIALS_SAVED")

    stored = await document_of(sources, user)
    assert [event["data"] for event in found] == [
        {"broker": "binance", "set": ["clientId"], "cleared": ["accessToken"]},
        {"broker": "binance", "set": ["accessToken", "apiKey", "clientId"], "cleared": []},
    ]
    assert {event["subjectId"] for event in found} == {str(stored["_id"])}


# saveCredentials: partial updates ----------------------------------------------------------------


async def test_fields_left_out_keep_their_stored_values(client, sources, settings, secrets_spy):
    user, token = await signed_in(sources, settings)
    secrets_spy.add("TOTP-3-secret")
    await save(client, token, secrets_spy, apiKey="KEY-3-ijkl", apiSecret="SECRET-3-x")
    before = await document_of(sources, user)

    result = saved(
        await gql(
            client,
            SAVE,
            {"input": {"broker": "binance", "totpSecret": "TOTP-3-secret"}},
            token=token,
        )
    )

    after = await document_of(sources, user)
    assert result["configuredFields"] == ["TOTP_SECRET", "API_KEY", "API_SECRET"]
    assert result["clientId"] == "CLIENT-1"
    assert result["apiKeyHint"] == "••••ijkl"
    assert after["apiKey"] == before["apiKey"]
    assert after["apiSecret"] == before["apiSecret"]
    assert after["apiKeyHint"] == before["apiKeyHint"]


async def test_an_explicit_null_clears_a_secret_and_the_api_key_takes_its_hint_along(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, apiKey="KEY-4-mnop", apiSecret="SECRET-4-x")

    result = saved(await save(client, token, secrets_spy, apiKey=None))

    assert result["configuredFields"] == ["API_SECRET"]
    assert result["apiKeyHint"] is None
    stored = await document_of(sources, user)
    assert "apiKey" not in stored
    assert "apiKeyHint" not in stored
    assert "apiSecret" in stored


async def test_a_new_api_key_replaces_the_hint(client, sources, settings, secrets_spy):
    _user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, apiKey="KEY-5-qrst")

    result = saved(await save(client, token, secrets_spy, apiKey="KEY-5-uvwx"))

    assert result["apiKeyHint"] == "••••uvwx"


async def test_an_explicit_null_clears_the_client_id_and_leaving_it_out_keeps_it(
    client, sources, settings, secrets_spy
):
    _user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, clientId="ZR-77")

    kept = saved(await gql(client, SAVE, {"input": {"broker": "zerodha"}}, token=token))
    cleared = saved(await save(client, token, secrets_spy, clientId=None))

    assert (kept["broker"], kept["clientId"]) == ("zerodha", "ZR-77")
    assert cleared["clientId"] is None


async def test_clearing_every_secret_leaves_credentials_that_are_not_configured(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, **six_secrets(user.id[-8:]))

    result = saved(await save(client, token, secrets_spy, **dict.fromkeys(SECRET_FIELDS)))

    assert result["configuredFields"] == []
    assert result["configured"] is False
    stored = await document_of(sources, user)
    assert not set(stored) & {*SECRET_FIELDS, "apiKeyHint"}


async def test_saving_changes_updated_at(client, sources, settings, secrets_spy):
    _user, token = await signed_in(sources, settings)
    first = saved(await save(client, token, secrets_spy, apiKey="KEY-6-aaaa"))

    second = saved(await save(client, token, secrets_spy, apiKey="KEY-6-bbbb"))

    assert second["updatedAt"] >= first["updatedAt"]


# saveCredentials: errors -----------------------------------------------------------------------


async def test_saving_requires_a_token(client, sources):
    body = await gql(client, SAVE, {"input": credentials_input()})

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None
    assert await sources.credentials.db["credentials"].count_documents({}) == 0


async def test_an_unknown_broker_is_bad_user_input_naming_broker_and_writes_nothing(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)

    body = await save(client, token, secrets_spy, broker="mt-gox", apiKey="KEY-7-plaintext")

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "broker"
    assert "binance" in body["errors"][0]["message"]
    assert await raw(sources, user) is None
    assert await events(client, token, "CREDENTIALS_SAVED") == []


async def test_secrets_out_of_bounds_are_rejected_naming_the_field_and_change_nothing(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, **six_secrets(user.id[-8:]))
    before = await raw(sources, user)

    for field in SECRET_FIELDS:
        for bad in ("", "TOO-LONG-SECRET-" + "q7" * 2041):
            fields = {"apiSecret": "NEW-SECRET-8", field: bad}
            body = await save(client, token, secrets_spy, **fields)
            assert error_codes(body) == ["BAD_USER_INPUT"], field
            assert body["errors"][0]["extensions"]["field"] == field

    assert await raw(sources, user) == before


async def test_a_client_id_out_of_bounds_is_rejected_naming_it_and_changes_nothing(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, apiKey="KEY-9-cccc")
    before = await raw(sources, user)

    for bad in ("   ", "c" * 129):
        body = await save(client, token, secrets_spy, clientId=bad, apiKey="KEY-9-dddd")
        assert error_codes(body) == ["BAD_USER_INPUT"], bad
        assert body["errors"][0]["extensions"]["field"] == "clientId"

    assert await raw(sources, user) == before


async def test_the_longest_allowed_values_are_accepted(client, sources, settings, secrets_spy):
    _user, token = await signed_in(sources, settings)
    longest = "L" * 4095 + "Z"

    result = saved(await save(client, token, secrets_spy, clientId="c" * 128, apiSecret=longest))

    assert result["configuredFields"] == ["API_SECRET"]


async def test_a_missing_broker_is_refused_by_the_schema(client, sources, settings):
    _user, token = await signed_in(sources, settings)

    body = await gql(client, SAVE, {"input": {"clientId": "X"}}, token=token)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await sources.credentials.db["credentials"].count_documents({}) == 0


# saveCredentials: idempotency ------------------------------------------------------------------


async def test_repeating_a_save_with_the_same_key_returns_the_first_result_and_writes_once(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    fields = {"apiKey": "KEY-10-eeee", "clientMutationId": "save-10"}
    first = saved(await save(client, token, secrets_spy, **fields))
    stored = await raw(sources, user)

    second = saved(await save(client, token, secrets_spy, **fields))

    assert second == first
    # A second write would have sealed again, with a fresh nonce.
    assert await raw(sources, user) == stored
    assert len(await events(client, token, "CREDENTIALS_SAVED")) == 1


async def test_the_same_key_with_a_different_input_is_a_conflict_that_changes_nothing(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, apiKey="KEY-11-ffff", clientMutationId="save-11")
    stored = await raw(sources, user)

    body = await save(client, token, secrets_spy, apiKey="KEY-11-gggg", clientMutationId="save-11")

    assert error_codes(body) == ["CONFLICT"]
    assert body["errors"][0]["extensions"]["field"] == "clientMutationId"
    assert await raw(sources, user) == stored


async def test_a_key_is_scoped_to_its_user(client, sources, settings, secrets_spy):
    first_user, first_token = await signed_in(sources, settings)
    second_user, second_token = await signed_in(sources, settings)
    await save(client, first_token, secrets_spy, apiKey="KEY-12-hhhh", clientMutationId="k")

    result = saved(
        await save(client, second_token, secrets_spy, apiKey="KEY-12-iiii", clientMutationId="k")
    )

    assert result["apiKeyHint"] == "••••iiii"
    assert (await document_of(sources, first_user))["apiKeyHint"] == "••••hhhh"
    assert (await document_of(sources, second_user))["apiKeyHint"] == "••••iiii"


async def test_a_rejected_input_does_not_use_up_its_key(client, sources, settings, secrets_spy):
    _user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, broker="nope", clientMutationId="save-13")

    body = await save(client, token, secrets_spy, apiKey="KEY-13-jjjj", clientMutationId="save-13")

    assert saved(body)["apiKeyHint"] == "••••jjjj"


async def test_a_key_out_of_bounds_is_bad_user_input_and_writes_nothing(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)

    body = await save(client, token, secrets_spy, clientMutationId="k" * 129)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "clientMutationId"
    assert await raw(sources, user) is None


async def test_replaying_a_key_after_the_credentials_were_deleted_is_not_found(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    fields = {"apiKey": "KEY-14-kkkk", "clientMutationId": "save-14"}
    await save(client, token, secrets_spy, **fields)
    await gql(client, DELETE, token=token)

    body = await save(client, token, secrets_spy, **fields)

    assert error_codes(body) == ["NOT_FOUND"]
    assert await raw(sources, user) is None


async def abandon_save(
    sources: Sources, user: UserRecord, key: str, *, lease_left: timedelta
) -> None:
    """Turn a completed saveCredentials key back into a claim of a request in another
    process, whose lease ends `lease_left` from now, before saving anything (the request
    died right after claiming)."""
    keys = sources.credentials.db["idempotency_keys"]
    key_id = f"{user.id}:saveCredentials:{key}"
    await sources.credentials.db["credentials"].delete_one({"userId": ObjectId(user.id)})
    changed = await keys.update_one(
        {"_id": key_id},
        {
            "$set": {
                "resultId": None,
                "claimedAt": datetime.now(UTC) - timedelta(seconds=1),
                "owner": "another-process:1",
                "leaseUntil": datetime.now(UTC) + lease_left,
            }
        },
    )
    assert changed.modified_count == 1


async def test_a_save_abandoned_after_claiming_its_key_is_taken_over_once_its_lease_ends(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    fields = {"apiKey": "KEY-16-llll", "clientMutationId": "save-16"}
    saved(await save(client, token, secrets_spy, **fields))
    await abandon_save(sources, user, "save-16", lease_left=-timedelta(seconds=1))

    retried = saved(await save(client, token, secrets_spy, **fields))
    stored = await raw(sources, user)
    again = saved(await save(client, token, secrets_spy, **fields))

    assert retried["apiKeyHint"] == "••••llll"
    assert again == retried
    assert await raw(sources, user) == stored


async def test_a_save_whose_owner_elsewhere_holds_its_lease_is_still_in_progress(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    fields = {"apiKey": "KEY-17-mmmm", "clientMutationId": "save-17"}
    saved(await save(client, token, secrets_spy, **fields))
    await abandon_save(sources, user, "save-17", lease_left=timedelta(seconds=30))

    body = await save(client, token, secrets_spy, **fields)

    assert error_codes(body) == ["CONFLICT"]
    assert body["errors"][0]["extensions"]["field"] == "clientMutationId"
    assert await raw(sources, user) is None


async def test_concurrent_retries_of_a_stale_save_take_it_over_once(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    fields = {"apiKey": "KEY-18-nnnn", "clientMutationId": "save-18"}
    saved(await save(client, token, secrets_spy, **fields))
    await abandon_save(sources, user, "save-18", lease_left=-timedelta(seconds=1))

    bodies = await asyncio.gather(*(save(client, token, secrets_spy, **fields) for _ in range(6)))

    answered = [saved(body) for body in bodies if "errors" not in body]
    assert answered
    assert all(result["apiKeyHint"] == "••••nnnn" for result in answered)
    assert all(error_codes(body) == ["CONFLICT"] for body in bodies if "errors" in body)
    # The first save and the retry that took its key over saved the same input under
    # one key: one event.
    assert len(await events(client, token, "CREDENTIALS_SAVED")) == 1


async def test_the_key_collection_holds_no_plaintext_secret(client, sources, settings, secrets_spy):
    user, token = await signed_in(sources, settings)
    secrets = six_secrets(user.id[-8:])
    await save(client, token, secrets_spy, clientMutationId="save-15", **secrets)

    keys = await sources.credentials.db["idempotency_keys"].find({"userId": user.id}).to_list()

    assert len(keys) == 1
    for secret in secrets.values():
        assert secret not in str(keys)


# deleteCredentials ----------------------------------------------------------------------------


async def test_delete_credentials_removes_them_and_records_an_event(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, apiKey="KEY-16-llll")

    body = await gql(client, DELETE, token=token)

    assert body == {"data": {"deleteCredentials": True}}
    assert await raw(sources, user) is None
    status = await gql(
        client, "{ me { credentials { broker } } dashboard { credentialsConfigured } }", token=token
    )
    assert status["data"] == {
        "me": {"credentials": None},
        "dashboard": {"credentialsConfigured": False},
    }
    assert len(await events(client, token, "CREDENTIALS_DELETED")) == 1


async def test_deleting_twice_is_harmless_and_the_second_time_says_there_was_nothing(
    client, sources, settings, secrets_spy
):
    _user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, apiKey="KEY-17-mmmm")
    await gql(client, DELETE, token=token)

    body = await gql(client, DELETE, token=token)

    assert body == {"data": {"deleteCredentials": False}}
    assert len(await events(client, token, "CREDENTIALS_DELETED")) == 1


async def test_deleting_requires_a_token(client, sources, settings):
    user = await make_user(sources)
    await make_credentials(sources, user)

    body = await gql(client, DELETE)

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await raw(sources, user) is not None


async def test_a_users_writes_never_touch_another_users_credentials(
    client, sources, settings, secrets_spy
):
    other = await make_user(sources)
    await make_credentials(sources, other, secrets_spy)
    theirs = await raw(sources, other)
    _user, token = await signed_in(sources, settings)

    await save(client, token, secrets_spy, apiKey="KEY-18-nnnn", clientMutationId="same")
    await save(client, token, secrets_spy, apiKey=None, apiSecret="SECRET-18-x")
    deleted = await gql(client, DELETE, token=token)

    assert deleted["data"] == {"deleteCredentials": True}
    assert await raw(sources, other) == theirs
    other_view = await gql(client, STATUS, token=token_for(settings, other))
    assert other_view["data"]["me"]["credentials"]["configuredFields"] == [
        "ACCESS_TOKEN",
        "API_KEY",
        "API_SECRET",
    ]


# At rest -------------------------------------------------------------------------------------


async def test_the_raw_documents_hold_no_plaintext_and_name_the_key_of_every_secret(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    secrets = six_secrets(user.id[-8:])
    await save(client, token, secrets_spy, **secrets)
    other = await make_user(sources)
    other_secrets = await make_credentials(sources, other, secrets_spy)
    box = SecretBox.from_settings(settings)

    documents = await sources.credentials.db["credentials"].find({}).to_list()

    assert len(documents) == 2
    dump = repr(documents)
    for secret in [*secrets.values(), *other_secrets.values()]:
        assert secret not in dump
        assert secret[:10] not in dump
    for document in documents:
        for field in SECRET_FIELDS:
            if field in document:
                assert document[field].startswith(f"v1:{box.current_kid}:"), field
                assert box.key_id(document[field]) == box.current_kid
    mine = next(doc for doc in documents if str(doc["userId"]) == user.id)
    assert {field: box.open(mine[field], user_id=user.id, field=field) for field in secrets} == (
        secrets
    )


async def test_a_ciphertext_copied_to_another_user_or_field_does_not_open(
    client, sources, settings, secrets_spy
):
    user, token = await signed_in(sources, settings)
    await save(client, token, secrets_spy, apiKey="KEY-19-oooo", apiSecret="SECRET-19-x")
    other = await make_user(sources)
    stored = await document_of(sources, user)
    box = SecretBox.from_settings(settings)

    with pytest.raises(UnsealError):
        box.open(stored["apiKey"], user_id=other.id, field="apiKey")
    with pytest.raises(UnsealError):
        box.open(stored["apiKey"], user_id=user.id, field="apiSecret")
    assert box.open(stored["apiKey"], user_id=user.id, field="apiKey") == "KEY-19-oooo"


# gateway credentials rotate ----------------------------------------------------------------------


async def stored_kids(sources: Sources, box: SecretBox) -> list[str]:
    """The key id of every stored secret."""
    documents = await sources.credentials.db["credentials"].find({}).to_list()
    return [box.key_id(doc[field]) for doc in documents for field in SECRET_FIELDS if field in doc]


async def opened(sources: Sources, box: SecretBox, user: UserRecord) -> dict[str, str]:
    document = await document_of(sources, user)
    return {
        field: box.open(document[field], user_id=user.id, field=field)
        for field in SECRET_FIELDS
        if field in document
    }


async def test_rotation_reseals_every_secret_under_the_new_key_and_a_rerun_changes_nothing(
    client, sources, settings, secrets_spy
):
    old = with_keys(settings, OLD_KEY)
    new = with_keys(settings, NEW_KEY, OLD_KEY)
    old_box, new_box = SecretBox.from_settings(old), SecretBox.from_settings(new)
    users = [await make_user(sources) for _ in range(3)]
    plaintexts = {}
    for user in users:
        plaintexts[user.id] = await make_credentials(
            sources, user, secrets_spy, box=old_box, secrets=six_secrets(user.id[-8:])
        )
    # One document already half under the new key: only its stale secrets move.
    await credentials_source.upsert_credentials(
        db=sources.credentials.db,
        box=new_box,
        user_id=users[0].id,
        broker="binance",
        changes={"totpSecret": plaintexts[users[0].id]["totpSecret"]},
    )
    before = {user.id: await document_of(sources, user) for user in users}
    view_before = await gql(client, STATUS, token=token_for(settings, users[1]))

    first = await rotate_credentials(db=sources.credentials.db, box=new_box)
    after_first = {user.id: await document_of(sources, user) for user in users}
    second = await rotate_credentials(db=sources.credentials.db, box=new_box)

    assert (first.documents_checked, first.documents_rotated, first.secrets_rotated) == (3, 3, 17)
    assert first.unreadable_secrets == 0
    assert (second.documents_rotated, second.secrets_rotated) == (0, 0)
    assert {user.id: await raw(sources, user) for user in users} == after_first
    assert set(await stored_kids(sources, new_box)) == {"new"}
    for user in users:
        assert await opened(sources, SecretBox([NEW_KEY]), user) == plaintexts[user.id]
        # Rotation is not an edit: updatedAt and the hint stay as they were.
        assert after_first[user.id]["updatedAt"] == before[user.id]["updatedAt"]
        assert after_first[user.id]["apiKeyHint"] == before[user.id]["apiKeyHint"]
    assert after_first[users[0].id]["totpSecret"] == before[users[0].id]["totpSecret"]
    assert await gql(client, STATUS, token=token_for(settings, users[1])) == view_before


async def test_rotation_reports_secrets_it_cannot_open_and_leaves_them_alone(
    sources, settings, secrets_spy
):
    new_box = SecretBox.from_settings(with_keys(settings, NEW_KEY, OLD_KEY))
    old_box = SecretBox([OLD_KEY])
    healthy, copied, lost = [await make_user(sources) for _ in range(3)]
    for user in (healthy, copied, lost):
        await make_credentials(sources, user, secrets_spy, box=old_box)
    healthy_doc = await document_of(sources, healthy)
    collection = sources.credentials.db["credentials"]
    # A ciphertext copied from another user, and one under a key nobody has any more.
    await collection.update_one(
        {"userId": ObjectId(copied.id)}, {"$set": {"apiKey": healthy_doc["apiKey"]}}
    )
    gone = SecretBox([("gone", b"G" * 32)]).seal(
        "LOST-plaintext-20", user_id=lost.id, field="apiSecret"
    )
    secrets_spy.add("LOST-plaintext-20")
    await collection.update_one({"userId": ObjectId(lost.id)}, {"$set": {"apiSecret": gone}})

    result = await rotate_credentials(db=sources.credentials.db, box=new_box)
    again = await rotate_credentials(db=sources.credentials.db, box=new_box)

    assert result.unreadable_secrets == 2
    assert sorted(result.unreadable_user_ids) == sorted([copied.id, lost.id])
    assert (result.documents_rotated, result.secrets_rotated) == (3, 7)
    assert (again.unreadable_secrets, again.secrets_rotated) == (2, 0)
    copied_doc, lost_doc = await document_of(sources, copied), await document_of(sources, lost)
    assert copied_doc["apiKey"] == healthy_doc["apiKey"]
    assert lost_doc["apiSecret"] == gone


class _SaveBeforeUpdate(monitoring.CommandListener):
    """Makes a concurrent save land between the rotation's read and its compare-and-set."""

    def __init__(self, uri: str, user: UserRecord, box: SecretBox, plaintext: str) -> None:
        self.uri, self.user, self.box, self.plaintext = uri, user, box, plaintext
        self.fired = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name != "update" or self.fired:
            return
        query = event.command["updates"][0]["q"]
        if "apiKey" not in query:
            return
        self.fired = True
        # A plain (blocking) client: the listener runs inside the rotation's event loop.
        sync: MongoClient[dict[str, Any]] = MongoClient(self.uri)
        with sync:
            database = sync.get_database(event.database_name)
            database["credentials"].update_one(
                {"_id": query["_id"]},
                {
                    "$set": {
                        "apiKey": self.box.seal(
                            self.plaintext, user_id=self.user.id, field="apiKey"
                        )
                    }
                },
            )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_rotation_never_overwrites_a_save_that_lands_while_it_runs(
    sources, settings, secrets_spy
):
    old_box = SecretBox([OLD_KEY])
    new_box = SecretBox.from_settings(with_keys(settings, NEW_KEY, OLD_KEY))
    user = await make_user(sources)
    secrets = await make_credentials(sources, user, secrets_spy, box=old_box)
    secrets_spy.add("KEY-21-saved-meanwhile")
    # The concurrent writer still runs with the old key: the rerun inside the pass moves it.
    listener = _SaveBeforeUpdate(
        settings.mongo_credentials_uri, user, old_box, "KEY-21-saved-meanwhile"
    )
    watched: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo_credentials_uri, event_listeners=[listener], tz_aware=True
    )
    try:
        result = await rotate_credentials(
            db=get_database(watched, settings.mongo_credentials_uri), box=new_box
        )
    finally:
        await watched.close()

    assert listener.fired
    assert result.documents_rotated == 1
    assert result.documents_skipped == 0
    assert await opened(sources, new_box, user) == {**secrets, "apiKey": "KEY-21-saved-meanwhile"}
    assert set(await stored_kids(sources, new_box)) == {"new"}


def rotate_command(
    settings: Settings, *keys: tuple[str, bytes]
) -> subprocess.CompletedProcess[str]:
    env = environment(settings)
    env["CREDENTIALS_ENCRYPTION_KEYS"] = keys_setting(*keys)
    return subprocess.run(
        [*GATEWAY, "credentials", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.slow
async def test_the_rotate_command_reseals_and_a_second_run_reseals_nothing(
    sources, settings, secrets_spy
):
    old_box = SecretBox([OLD_KEY])
    users = [await make_user(sources) for _ in range(2)]
    plaintexts = {
        user.id: await make_credentials(sources, user, secrets_spy, box=old_box) for user in users
    }

    first = rotate_command(settings, NEW_KEY, OLD_KEY)
    second = rotate_command(settings, NEW_KEY, OLD_KEY)

    assert first.returncode == 0, first.stderr
    assert "rotated: 6 secrets in 2 documents re-encrypted under key 'new'" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "rotated: 0 secrets in 0 documents" in second.stderr
    for user in users:
        assert await opened(sources, SecretBox([NEW_KEY]), user) == plaintexts[user.id]
    for secret in (s for found in plaintexts.values() for s in found.values()):
        assert secret not in first.stderr + first.stdout


@pytest.mark.slow
async def test_the_rotate_command_names_the_users_whose_secrets_it_cannot_open(
    sources, settings, secrets_spy
):
    user = await make_user(sources)
    await make_credentials(sources, user, secrets_spy, box=SecretBox([("gone", b"G" * 32)]))

    result = rotate_command(settings, NEW_KEY, OLD_KEY)

    assert result.returncode == 1
    assert "3 secrets of 1 users could not be decrypted" in result.stderr
    assert user.id in result.stderr
