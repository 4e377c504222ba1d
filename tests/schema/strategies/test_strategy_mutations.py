"""createStrategy, updateStrategy and deleteStrategy over HTTP, and createStrategy's
idempotency key. Every rejected request is shown to change nothing, by reading Mongo back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from bson import ObjectId
from sqlalchemy import select

from datasources import idempotency
from datasources.trades import trades as trades_table
from gateway.core.errors import Conflict
from schema._ids import global_id
from tests.helpers import (
    NOW,
    error_codes,
    gid,
    gql,
    key,
    make_strategy,
    make_trades,
    make_user,
    signed_in,
    trade_row,
)
from tests.schema.strategies.ops import (
    CREATE,
    create,
    create_input,
    delete,
    error_of,
    stored,
    stored_of,
    strategy_events,
    update,
)


def created(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body["errors"]
    strategy: dict[str, Any] = body["data"]["createStrategy"]["strategy"]
    return strategy


def updated(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body["errors"]
    strategy: dict[str, Any] = body["data"]["updateStrategy"]
    return strategy


def rejected(body: dict[str, Any], code: str, field: str | None = None) -> dict[str, Any]:
    """The single error of a rejected mutation, checked for its code and field."""
    error = error_of(body)
    assert body["data"] is None
    assert error["extensions"]["code"] == code, error
    if field is not None:
        assert error["extensions"].get("field") == field, error
    return error


# createStrategy ----------------------------------------------------------------------------


async def test_create_strategy_stores_a_stopped_strategy_in_the_platforms_shape(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)

    strategy = created(await create(client, token, name="Breakout", environment="LIVE"))

    assert strategy["name"] == "Breakout"
    assert strategy["status"] == "STOPPED"
    assert strategy["environment"] == "LIVE"
    assert strategy["config"] == {"timeframe": "5m", "risk": {"maxPosition": 2}}
    assert strategy["autoReconnect"] is True
    assert strategy["lastAction"] is None
    assert strategy["errorCount"] == 0
    assert strategy["createdAt"] == strategy["updatedAt"]
    doc = await stored(sources, strategy["id"])
    assert doc is not None
    assert doc["userId"] == ObjectId(user.id)
    assert doc["status"] == "stopped"
    assert doc["environment"] == "live"
    assert doc["broker"] == "binance"
    assert doc["instrument"] == "BTCUSDT"
    assert doc["code"] == create_input()["code"]
    assert doc["autoReconnect"] is True
    assert isinstance(doc["createdAt"], datetime)


async def test_a_created_strategy_is_readable_and_listed(client, sources, settings):
    _user, token = await signed_in(sources, settings)
    strategy = created(await create(client, token))

    body = await gql(
        client,
        "query($id: ID!) { strategy(id: $id) { id name } strategies { totalCount } }",
        {"id": strategy["id"]},
        token=token,
    )

    assert body["data"] == {
        "strategy": {"id": strategy["id"], "name": strategy["name"]},
        "strategies": {"totalCount": 1},
    }


async def test_create_strategy_defaults_environment_config_and_auto_reconnect(
    client, sources, settings
):
    _user, token = await signed_in(sources, settings)
    values = create_input()
    for optional in ("environment", "config", "autoReconnect"):
        del values[optional]

    strategy = created(await gql(client, CREATE, {"input": values}, token=token))

    assert strategy["environment"] == "TESTNET"
    assert strategy["config"] == {}
    assert strategy["autoReconnect"] is False


async def test_create_strategy_trims_the_name_and_instrument(client, sources, settings):
    _user, token = await signed_in(sources, settings)

    strategy = created(await create(client, token, name="  Grid  ", instrument=" ETHUSDT "))

    assert strategy["name"] == "Grid"
    assert strategy["instrument"] == "ETHUSDT"


async def test_create_strategy_takes_the_broker_in_its_configured_spelling(
    client, sources, settings
):
    _user, token = await signed_in(sources, settings)

    strategy = created(await create(client, token, broker="Interactive-Brokers"))

    assert strategy["broker"] == "interactive-brokers"


async def test_create_strategy_accepts_values_at_their_limits(client, sources, settings):
    _user, token = await signed_in(sources, settings)
    padding = 64 * 1024 - len('{"k":""}')

    strategy = created(
        await create(
            client,
            token,
            name="n" * 100,
            code="é" * (128 * 1024),  # two bytes each: exactly 256 KiB
            instrument="i" * 64,
            config={"k": "v" * padding},
        )
    )

    assert len(strategy["name"]) == 100
    assert len(strategy["code"]) == 128 * 1024


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


INVALID_CREATE_INPUTS = [
    ("name", {"name": ""}),
    ("name", {"name": "   "}),
    ("name", {"name": "n" * 101}),
    ("name", {"name": "two\nlines"}),
    ("code", {"code": "é" * (128 * 1024) + "x"}),
    ("config", {"config": [1, 2]}),
    ("config", {"config": "a string"}),
    ("config", {"config": 42}),
    ("config", {"config": {"k": "v" * (64 * 1024)}}),
    ("config", {"config": {"$where": "1"}}),
    ("config", {"config": {"a.b": 1}}),
    ("config", {"config": {"big": 2**63}}),
    ("config", {"config": {"deep": nested(40)}}),
    ("broker", {"broker": "nyse"}),
    ("broker", {"broker": ""}),
    ("instrument", {"instrument": ""}),
    ("instrument", {"instrument": "i" * 65}),
]


@pytest.mark.parametrize(("field", "overrides"), INVALID_CREATE_INPUTS)
async def test_create_strategy_refuses_invalid_input_naming_the_field(
    client, sources, settings, field, overrides
):
    user, token = await signed_in(sources, settings)

    body = await create(client, token, **overrides)

    error = rejected(body, "BAD_USER_INPUT", field)
    assert f"'{field}'" in error["message"]
    assert await stored_of(sources, user) == []
    assert await strategy_events(sources, user) == []


@pytest.mark.parametrize(
    ("field", "overrides"),
    [("environment", {"environment": "PAPER"}), ("config", {"config": None})],
)
async def test_create_strategy_refuses_what_the_schema_types_rule_out(
    client, sources, settings, field, overrides
):
    user, token = await signed_in(sources, settings)

    body = await create(client, token, **overrides)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert field in body["errors"][0]["message"]
    assert await stored_of(sources, user) == []


async def test_create_strategy_refuses_a_name_the_user_already_has(client, sources, settings):
    user, token = await signed_in(sources, settings)
    first = created(await create(client, token, name="Scalper"))

    body = await create(client, token, name="  Scalper ", code="other code")

    rejected(body, "CONFLICT", "name")
    docs = await stored_of(sources, user)
    assert [(str(doc["_id"]), doc["code"]) for doc in docs] == [(key(first["id"]), first["code"])]


async def test_an_account_holds_at_most_the_setting_of_strategies(sources, settings):
    from tests.helpers import app_client  # noqa: PLC0415

    user, token = await signed_in(sources, settings)
    async with app_client(settings, max_strategies_per_user=2) as client:
        first = created(await create(client, token, name="One"))
        second = created(await create(client, token, name="Two", clientMutationId="two"))

        refused = await create(client, token, name="Three")
        # A retry of a create that landed still answers with its strategy.
        retried = created(await create(client, token, name="Two", clientMutationId="two"))
        held = [global_id("Strategy", str(doc["_id"])) for doc in await stored_of(sources, user)]
        assert "errors" not in await delete(client, token, first["id"])
        after_delete = created(await create(client, token, name="Three"))

    error = rejected(refused, "CONFLICT")
    assert error["message"] == "An account may hold at most 2 strategies; delete one first."
    assert retried["id"] == second["id"]
    assert sorted(held) == sorted([first["id"], second["id"]])  # the refusal wrote nothing
    assert after_delete["name"] == "Three"


async def test_every_bad_field_of_create_strategy_is_reported_in_one_answer(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)

    body = await create(
        client,
        token,
        name="   ",
        broker="no-such-broker",
        config={"blob": "x" * (64 * 1024)},
        clientMutationId="k" * 129,
    )

    assert body["data"] is None
    assert [
        (error["extensions"]["code"], error["extensions"]["field"], error["path"])
        for error in body["errors"]
    ] == [
        ("BAD_USER_INPUT", "name", ["createStrategy"]),
        ("BAD_USER_INPUT", "broker", ["createStrategy"]),
        ("BAD_USER_INPUT", "config", ["createStrategy"]),
        ("BAD_USER_INPUT", "clientMutationId", ["createStrategy"]),
    ]
    assert "64 KiB" in body["errors"][2]["message"]
    assert await stored_of(sources, user) == []
    assert await strategy_events(sources, user) == []


async def test_every_bad_field_of_update_strategy_is_reported_in_one_answer(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user, name="Before")

    body = await update(client, token, strategy, name="", instrument="\x00", code=None)

    assert body["data"] is None
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [
        ("BAD_USER_INPUT", "name"),
        ("BAD_USER_INPUT", "code"),
        ("BAD_USER_INPUT", "instrument"),
    ]
    assert (await stored(sources, strategy) or {})["name"] == "Before"
    assert await strategy_events(sources, user) == []


async def test_two_users_may_use_the_same_name(client, sources, settings):
    _alice, alice_token = await signed_in(sources, settings)
    _bob, bob_token = await signed_in(sources, settings)

    first = created(await create(client, alice_token, name="Scalper"))
    second = created(await create(client, bob_token, name="Scalper"))

    assert first["id"] != second["id"]


async def test_create_strategy_requires_a_token(client, sources):
    body = await create(client, token="")

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await sources.strategies.db["strategies"].count_documents({}) == 0


# createStrategy: the idempotency key -------------------------------------------------------


async def test_the_same_key_twice_creates_one_strategy_and_answers_with_it_both_times(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    values = create_input(clientMutationId="create-1")

    first = created(await gql(client, CREATE, {"input": values}, token=token))
    second = created(await gql(client, CREATE, {"input": values}, token=token))

    assert second["id"] == first["id"]
    assert len(await stored_of(sources, user)) == 1
    assert [event["kind"] for event in await strategy_events(sources, user)] == ["STRATEGY_CREATED"]


async def test_a_repeated_key_answers_with_the_strategy_as_it_is_now(client, sources, settings):
    _user, token = await signed_in(sources, settings)
    values = create_input(clientMutationId="create-1")
    first = created(await gql(client, CREATE, {"input": values}, token=token))
    updated(await update(client, token, first["id"], name="Renamed"))

    again = created(await gql(client, CREATE, {"input": values}, token=token))

    assert (again["id"], again["name"]) == (first["id"], "Renamed")


async def test_the_same_key_with_another_input_is_a_conflict(client, sources, settings):
    user, token = await signed_in(sources, settings)
    first = created(await create(client, token, name="One", clientMutationId="create-1"))

    body = await create(client, token, name="Two", clientMutationId="create-1")

    rejected(body, "CONFLICT", "clientMutationId")
    assert [str(doc["_id"]) for doc in await stored_of(sources, user)] == [key(first["id"])]


async def test_the_same_key_of_another_user_is_independent(client, sources, settings):
    alice, alice_token = await signed_in(sources, settings)
    bob, bob_token = await signed_in(sources, settings)
    values = create_input(clientMutationId="shared-key")

    first = created(await gql(client, CREATE, {"input": values}, token=alice_token))
    second = created(await gql(client, CREATE, {"input": values}, token=bob_token))

    assert first["id"] != second["id"]
    assert len(await stored_of(sources, alice)) == 1
    assert len(await stored_of(sources, bob)) == 1


async def test_a_taken_name_leaves_the_key_free_for_a_corrected_request(client, sources, settings):
    user, token = await signed_in(sources, settings)
    created(await create(client, token, name="Taken"))

    refused = await create(client, token, name="Taken", clientMutationId="create-1")
    corrected = await create(client, token, name="Free", clientMutationId="create-1")

    rejected(refused, "CONFLICT", "name")
    assert created(corrected)["name"] == "Free"
    assert len(await stored_of(sources, user)) == 2


async def test_an_invalid_input_does_not_use_up_the_key(client, sources, settings):
    _user, token = await signed_in(sources, settings)

    refused = await create(client, token, name="", clientMutationId="create-1")
    corrected = await create(client, token, name="Valid", clientMutationId="create-1")

    rejected(refused, "BAD_USER_INPUT", "name")
    assert created(corrected)["name"] == "Valid"


async def test_a_retry_after_the_first_request_died_before_inserting_creates_it_once(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    values = create_input(clientMutationId="create-1")
    first = created(await gql(client, CREATE, {"input": values}, token=token))
    # As if the first request had recorded its key and id, then died before its insert.
    await sources.strategies.db["strategies"].delete_one({"_id": ObjectId(key(first["id"]))})

    retried = created(await gql(client, CREATE, {"input": values}, token=token))
    again = created(await gql(client, CREATE, {"input": values}, token=token))

    assert retried["id"] == again["id"] == first["id"]
    assert len(await stored_of(sources, user)) == 1


async def test_concurrent_requests_under_one_key_create_one_strategy(client, sources, settings):
    user, token = await signed_in(sources, settings)
    values = create_input(clientMutationId="double-click")

    bodies = await asyncio.gather(
        *(gql(client, CREATE, {"input": values}, token=token) for _ in range(8))
    )

    docs = await stored_of(sources, user)
    assert len(docs) == 1
    for body in bodies:
        if "errors" in body:
            rejected(body, "CONFLICT", "clientMutationId")
        else:
            assert key(created(body)["id"]) == str(docs[0]["_id"])
    assert any("errors" not in body for body in bodies)


async def abandon_claim(sources, user, key: str, *, lease_left: timedelta) -> None:
    """Turn a completed createStrategy key back into a claim of a request in another
    process, whose lease ends `lease_left` from now, before binding an id or inserting
    anything (the request died right after claiming)."""
    keys = sources.strategies.db["idempotency_keys"]
    claim = await keys.find_one({"_id": f"{user.id}:createStrategy:{key}"})
    assert claim is not None
    await sources.strategies.db["strategies"].delete_many({"userId": ObjectId(user.id)})
    await keys.update_one(
        {"_id": claim["_id"]},
        {
            "$set": {
                "resultId": None,
                "claimedAt": datetime.now(UTC) - timedelta(seconds=1),
                "owner": "another-process:1",
                "leaseUntil": datetime.now(UTC) + lease_left,
            }
        },
    )


async def test_a_claim_abandoned_before_binding_an_id_is_taken_over_once_its_lease_ends(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    values = create_input(clientMutationId="create-1")
    created(await gql(client, CREATE, {"input": values}, token=token))
    await abandon_claim(sources, user, "create-1", lease_left=-timedelta(seconds=1))

    retried = created(await gql(client, CREATE, {"input": values}, token=token))
    again = created(await gql(client, CREATE, {"input": values}, token=token))

    assert again["id"] == retried["id"]
    assert [str(doc["_id"]) for doc in await stored_of(sources, user)] == [key(retried["id"])]


async def test_a_claim_whose_owner_elsewhere_holds_its_lease_is_still_in_progress(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    values = create_input(clientMutationId="create-1")
    created(await gql(client, CREATE, {"input": values}, token=token))
    await abandon_claim(sources, user, "create-1", lease_left=timedelta(seconds=30))

    body = await gql(client, CREATE, {"input": values}, token=token)

    rejected(body, "CONFLICT", "clientMutationId")
    assert await stored_of(sources, user) == []


async def test_concurrent_retries_of_a_stale_claim_create_one_strategy(client, sources, settings):
    user, token = await signed_in(sources, settings)
    values = create_input(clientMutationId="create-1")
    created(await gql(client, CREATE, {"input": values}, token=token))
    await abandon_claim(sources, user, "create-1", lease_left=-timedelta(seconds=1))

    bodies = await asyncio.gather(
        *(gql(client, CREATE, {"input": values}, token=token) for _ in range(8))
    )

    docs = await stored_of(sources, user)
    assert len(docs) == 1
    for body in bodies:
        if "errors" in body:
            rejected(body, "CONFLICT", "clientMutationId")
        else:
            assert key(created(body)["id"]) == str(docs[0]["_id"])
    assert any("errors" not in body for body in bodies)


async def test_of_two_takeovers_of_a_stale_claim_one_wins_and_the_late_owner_changes_nothing(
    sources,
):
    db = sources.strategies.db
    user_id = str(ObjectId())
    claim = partial(
        idempotency.claim_key,
        db=db,
        user_id=user_id,
        operation="createStrategy",
        key="k",
        request_fingerprint="f",
        ttl_seconds=60,
        lease=0.05,
    )
    # Three requests of this process, all still running: only leases can run out.
    with idempotency.owning() as one, idempotency.owning() as two, idempotency.owning() as three:
        abandoned = await claim(owner=one)
        await asyncio.sleep(0.1)

        outcomes = await asyncio.gather(
            claim(owner=two), claim(owner=three), return_exceptions=True
        )

        winners = [o for o in outcomes if isinstance(o, idempotency.Claim)]
        assert len(winners) == 1
        assert [type(o) for o in outcomes if o not in winners] == [Conflict]
        # Taken over, the key is still the one first claimed: its change is the same one.
        assert winners[0].change == abandoned.change
        # The request that was presumed dead neither completes nor releases the key...
        await idempotency.release_key(db=db, claim=abandoned)
        assert await idempotency.complete_key(db=db, claim=abandoned, result_id="late") is None
        # ...and once the winner binds its id, the late one is told that id instead.
        assert await idempotency.complete_key(db=db, claim=winners[0], result_id="won") == "won"
        assert await idempotency.complete_key(db=db, claim=abandoned, result_id="late") == "won"
        assert (await claim(owner=one)).result_id == "won"


async def test_a_key_whose_strategy_was_deleted_creates_a_new_one(client, sources, settings):
    user, token = await signed_in(sources, settings)
    values = create_input(clientMutationId="create-1")
    first = created(await gql(client, CREATE, {"input": values}, token=token))
    deleted = await delete(client, token, first["id"])
    assert deleted["data"]["deleteStrategy"]["deletedId"] == first["id"]

    again = created(await gql(client, CREATE, {"input": values}, token=token))

    assert again["id"] != first["id"]
    assert [str(doc["_id"]) for doc in await stored_of(sources, user)] == [key(again["id"])]


@pytest.mark.parametrize("key", ["", "k" * 129])
async def test_a_malformed_key_is_refused(client, sources, settings, key):
    user, token = await signed_in(sources, settings)

    body = await create(client, token, clientMutationId=key)

    rejected(body, "BAD_USER_INPUT", "clientMutationId")
    assert await stored_of(sources, user) == []


# updateStrategy ----------------------------------------------------------------------------


async def test_update_strategy_changes_only_the_given_fields(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(
        sources, user, config={"timeframe": "5m"}, created_at=NOW - timedelta(hours=1)
    )
    before = await stored(sources, strategy)

    result = updated(
        await update(client, token, strategy, code="print(1)", config={"timeframe": "1h"})
    )

    assert result["code"] == "print(1)"
    assert result["config"] == {"timeframe": "1h"}
    after = await stored(sources, strategy)
    assert before is not None
    assert after is not None
    assert after["updatedAt"] > before["updatedAt"]
    untouched = {key for key in before if key not in ("code", "config", "updatedAt")}
    assert {key: after[key] for key in untouched} == {key: before[key] for key in untouched}


async def test_update_strategy_changes_every_editable_field(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)

    result = updated(
        await update(
            client,
            token,
            strategy,
            name=" New name ",
            code="new code",
            instrument="ETHUSDT",
            broker="alpaca",
            environment="LIVE",
            config={"a": [1, 2]},
            autoReconnect=True,
        )
    )

    assert {key: result[key] for key in ("name", "code", "instrument", "broker")} == {
        "name": "New name",
        "code": "new code",
        "instrument": "ETHUSDT",
        "broker": "alpaca",
    }
    assert (result["environment"], result["config"], result["autoReconnect"]) == (
        "LIVE",
        {"a": [1, 2]},
        True,
    )
    doc = await stored(sources, strategy)
    assert doc is not None
    assert (doc["environment"], doc["autoReconnect"]) == ("live", True)


async def test_update_strategy_records_which_fields_changed(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user, name="Old")

    updated(await update(client, token, strategy, name="New", autoReconnect=True))

    assert await strategy_events(sources, user) == [
        {
            "kind": "STRATEGY_UPDATED",
            "subjectId": strategy.id,
            "data": {"name": "New", "fields": ["autoReconnect", "name"]},
        }
    ]


async def test_an_update_without_changes_writes_nothing(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    before = await stored(sources, strategy)

    result = updated(await update(client, token, strategy, name=strategy.name))

    assert result["name"] == strategy.name
    assert await stored(sources, strategy) == before
    assert await strategy_events(sources, user) == []


INVALID_UPDATES = [
    ("name", {"name": ""}),
    ("name", {"name": "n" * 101}),
    ("name", {"name": None}),
    ("code", {"code": "c" * (256 * 1024 + 1)}),
    ("code", {"code": None}),
    ("config", {"config": [1]}),
    ("config", {"config": None}),
    ("config", {"config": {"k": "v" * (64 * 1024)}}),
    ("broker", {"broker": "nyse"}),
    ("broker", {"broker": None}),
    ("instrument", {"instrument": "i" * 65}),
    ("instrument", {"instrument": None}),
    ("environment", {"environment": None}),
    ("autoReconnect", {"autoReconnect": None}),
    # One bad field refuses the whole input: the good one is not applied either.
    ("name", {"code": "fine", "name": ""}),
]


@pytest.mark.parametrize(("field", "changes"), INVALID_UPDATES)
async def test_update_strategy_refuses_invalid_input_naming_the_field_and_changes_nothing(
    client, sources, settings, field, changes
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    before = await stored(sources, strategy)

    body = await update(client, token, strategy, **changes)

    rejected(body, "BAD_USER_INPUT", field)
    assert await stored(sources, strategy) == before
    assert await strategy_events(sources, user) == []


async def test_renaming_to_a_name_the_user_has_is_a_conflict(client, sources, settings):
    user, token = await signed_in(sources, settings)
    await make_strategy(sources, user, name="Taken")
    strategy = await make_strategy(sources, user, name="Mine")
    before = await stored(sources, strategy)

    body = await update(client, token, strategy, name="Taken", code="changed")

    rejected(body, "CONFLICT", "name")
    assert await stored(sources, strategy) == before


@pytest.mark.parametrize("status", ["ACTIVE", "PAUSED"])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("code", "new code"),
        ("config", {"new": True}),
        ("instrument", "ETHUSDT"),
        ("broker", "alpaca"),
        ("environment", "LIVE"),
    ],
)
async def test_a_running_strategys_runtime_fields_do_not_change(
    client, sources, settings, status, field, value
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user, status=status)
    before = await stored(sources, strategy)

    body = await update(client, token, strategy, **{field: value})

    error = rejected(body, "BAD_USER_INPUT", field)
    assert status in error["message"]
    assert "stop it first" in error["message"]
    assert await stored(sources, strategy) == before


async def test_a_running_strategy_may_be_renamed_and_change_auto_reconnect(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user, status="ACTIVE")

    result = updated(await update(client, token, strategy, name="Renamed", autoReconnect=True))

    assert (result["name"], result["autoReconnect"], result["status"]) == (
        "Renamed",
        True,
        "ACTIVE",
    )


async def test_a_running_strategy_accepts_its_unchanged_runtime_fields_back(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user, status="ACTIVE")

    result = updated(await update(client, token, strategy, code=strategy.code, name="Renamed"))

    assert result["name"] == "Renamed"


async def test_a_strategy_in_error_may_have_its_code_fixed(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user, status="ERROR", error_message="boom")

    result = updated(await update(client, token, strategy, code="fixed"))

    assert (result["code"], result["status"]) == ("fixed", "ERROR")


async def test_updating_another_users_strategy_is_not_found_and_changes_nothing(
    client, sources, settings
):
    owner = await make_user(sources)
    strategy = await make_strategy(sources, owner)
    before = await stored(sources, strategy)
    _intruder, token = await signed_in(sources, settings)

    body = await update(client, token, strategy, name="Mine now", code="x")

    error = rejected(body, "NOT_FOUND")
    assert strategy.name not in error["message"]
    assert await stored(sources, strategy) == before
    assert await strategy_events(sources, owner) == []


async def test_updating_an_unknown_strategy_is_not_found(client, sources, settings):
    _user, token = await signed_in(sources, settings)

    body = await update(client, token, str(global_id("Strategy", str(ObjectId()))), name="x")

    rejected(body, "NOT_FOUND")


async def test_an_id_that_is_not_a_strategys_is_bad_input_and_changes_nothing(
    client, sources, settings
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    before = await stored(sources, strategy)

    # A raw database id, not base64 at all, a user's id, a Strategy id with a trade's key.
    for bad in (strategy.id, "not-an-id", gid(user), str(global_id("Strategy", "42"))):
        assert error_codes(await update(client, token, bad, name="x")) == ["BAD_USER_INPUT"]
        assert error_codes(await delete(client, token, bad)) == ["BAD_USER_INPUT"]

    wrong_type = await update(client, token, gid(user), name="x")
    assert wrong_type["errors"][0]["extensions"]["field"] == "id"
    assert await stored(sources, strategy) == before
    assert await strategy_events(sources, user) == []


# deleteStrategy ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["STOPPED", "ERROR"])
async def test_delete_strategy_removes_a_strategy_that_does_not_run(
    client, sources, settings, status
):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user, status=status)
    kept = await make_strategy(sources, user)

    body = await delete(client, token, strategy)

    # The payload names what a client cache drops: the global id, and the strategy as it was.
    assert body == {
        "data": {
            "deleteStrategy": {
                "deletedId": gid(strategy),
                "strategy": {"id": gid(strategy), "name": strategy.name},
            }
        }
    }
    assert [str(doc["_id"]) for doc in await stored_of(sources, user)] == [kept.id]
    assert await strategy_events(sources, user) == [
        {"kind": "STRATEGY_DELETED", "subjectId": strategy.id, "data": {"name": strategy.name}}
    ]


async def test_a_deleted_strategys_trades_stay_under_its_name(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user, name="Retired")
    await make_trades(sources, [trade_row(strategy), trade_row(strategy)])

    await delete(client, token, strategy)

    async with sources.trades.engine.connect() as conn:
        rows = list(await conn.execute(select(trades_table.c.strategy_name)))
    assert [row.strategy_name for row in rows] == ["Retired", "Retired"]
    body = await gql(client, "{ trades { totalCount } }", token=token)
    assert body["data"] == {"trades": {"totalCount": 2}}


@pytest.mark.parametrize("status", ["ACTIVE", "PAUSED"])
async def test_deleting_a_running_strategy_asks_to_stop_it_first(client, sources, settings, status):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user, status=status)
    before = await stored(sources, strategy)

    body = await delete(client, token, strategy)

    error = rejected(body, "BAD_USER_INPUT")
    named = {"ACTIVE": "an ACTIVE", "PAUSED": "a PAUSED"}[status]
    assert error["message"] == f"Cannot delete {named} strategy: stop it first."
    assert await stored(sources, strategy) == before


async def test_deleting_another_users_strategy_is_not_found_and_keeps_it(client, sources, settings):
    owner = await make_user(sources)
    strategy = await make_strategy(sources, owner)
    _intruder, token = await signed_in(sources, settings)

    body = await delete(client, token, strategy)

    rejected(body, "NOT_FOUND")
    assert await stored(sources, strategy) is not None


async def test_deleting_twice_is_not_found_the_second_time(client, sources, settings):
    user, token = await signed_in(sources, settings)
    strategy = await make_strategy(sources, user)
    await delete(client, token, strategy)

    body = await delete(client, token, strategy)

    rejected(body, "NOT_FOUND")


async def test_later_fields_of_the_same_request_see_each_write(client, sources, settings):
    _user, token = await signed_in(sources, settings)

    body = await gql(
        client,
        """
        mutation($one: CreateStrategyInput!, $two: CreateStrategyInput!) {
          one: createStrategy(input: $one) { strategy { owner { strategies { totalCount } } } }
          two: createStrategy(input: $two) { strategy { owner { strategies { totalCount } } } }
        }
        """,
        {"one": create_input(name="One"), "two": create_input(name="Two")},
        token=token,
    )

    assert body == {
        "data": {
            "one": {"strategy": {"owner": {"strategies": {"totalCount": 1}}}},
            "two": {"strategy": {"owner": {"strategies": {"totalCount": 2}}}},
        }
    }


async def test_create_strategy_takes_config_as_an_inline_literal(client, sources, settings):
    _user, token = await signed_in(sources, settings)

    body = await gql(
        client,
        """
        mutation {
          createStrategy(input: {
            name: "BTC breakout", code: "pass", instrument: "BTCUSDT", broker: "binance",
            config: { timeframe: "5m", risk: { maxPosition: 2 } }
          }) { strategy { status environment config } }
        }
        """,
        token=token,
    )

    assert body == {
        "data": {
            "createStrategy": {
                "strategy": {
                    "status": "STOPPED",
                    "environment": "TESTNET",
                    "config": {"timeframe": "5m", "risk": {"maxPosition": 2}},
                }
            }
        }
    }


async def test_a_claim_of_an_ended_request_of_this_process_is_taken_over_at_once(sources):
    db = sources.strategies.db
    claim = partial(
        idempotency.claim_key,
        db=db,
        user_id=str(ObjectId()),
        operation="createStrategy",
        key="k",
        request_fingerprint="f",
        ttl_seconds=60,
        lease=30,
    )
    with idempotency.owning() as owner:
        first = await claim(owner=owner)
        with idempotency.owning() as other, pytest.raises(Conflict):  # still running
            await claim(owner=other)
    # Its request ended (it failed, and could not even release the key).

    with idempotency.owning() as owner:
        second = await claim(owner=owner)

    assert second.result_id is None
    assert second.claimed_at != first.claimed_at
    assert second.change == first.change  # the same change, whichever request makes it
