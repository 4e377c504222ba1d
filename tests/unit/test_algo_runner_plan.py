"""What a legacy algo-runner user becomes (gateway/imports/algo_runner.py), without a
database: names made unique, statuses mapped, ids kept or derived, refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bcrypt
import pytest
from bson import ObjectId

from gateway.imports.algo_runner import PlannedUser, normalize_status, plan_user, unique_names
from gateway.imports.common import Refusal

HASH = bcrypt.hashpw(b"old password", bcrypt.gensalt(4)).decode()


def legacy_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": ObjectId(),
        "email": " Ada@Example.COM",
        "password": HASH,
        "firstName": "Ada",
        "lastName": "Lovelace",
        "strategies": [],
        "broker": "TradeHull",
    }
    return {**doc, **overrides}


def planned(**overrides: Any) -> PlannedUser:
    plan = plan_user(legacy_doc(**overrides))
    assert isinstance(plan, PlannedUser), plan
    return plan


def test_repeated_names_get_the_first_free_number_never_a_later_strategys_name():
    names = ["Momentum", "Momentum", "Momentum (2)", "  ", "Momentum", "momentum"]

    assert unique_names(names) == [
        "Momentum",
        "Momentum (3)",
        "Momentum (2)",
        "Strategy 4",
        "Momentum (4)",
        "momentum",
    ]


def test_a_repeated_name_at_the_longest_allowed_is_cut_to_fit_its_number():
    long = "x" * 150

    first, second = unique_names([long, long])

    assert first == "x" * 100
    assert second == "x" * 96 + " (2)"


@pytest.mark.parametrize(
    ("old", "ours"),
    [
        ("running", "active"),
        ("Running", "active"),
        ("deployed", "active"),
        ("STOPPED", "stopped"),
        ("", "stopped"),
        (None, "stopped"),
        ("on hold", "paused"),
        ("crashed", "error"),
        ("weird-status", "stopped"),
    ],
)
def test_old_statuses_are_mapped_to_ours(old, ours):
    assert normalize_status(old) == ours


def test_strategies_keep_their_ids_and_an_entry_without_one_gets_the_same_id_every_run():
    own = ObjectId()
    strategies = [{"name": "A", "_id": own}, {"name": "B"}, {"name": "C", "_id": own}]

    first = planned(strategies=strategies, _id=ObjectId("65a000000000000000000001"))
    again = planned(strategies=strategies, _id=ObjectId("65a000000000000000000001"))

    ids = [strategy.id for strategy in first.strategies]
    assert ids[0] == str(own)
    assert len(set(ids)) == 3  # the copied id is not reused
    assert ids == [strategy.id for strategy in again.strategies]
    # Derived ids carry their user's timestamp, so they sort with it.
    assert ObjectId(ids[1]).generation_time == ObjectId(first.id).generation_time


def test_credentials_take_what_is_set_as_text_and_the_default_broker():
    plan = planned(broker=None, clientId=40213, accessToken="tok", apiKey="", totpSecret=None)

    assert plan.broker == "TradeHull"
    assert dict(plan.credentials) == {"clientId": "40213", "accessToken": "tok"}
    assert "tok" not in repr(plan)
    assert HASH not in repr(plan)


def test_a_user_keeps_its_times_and_an_email_normalised():
    created = datetime(2022, 5, 1, 12, tzinfo=UTC).replace(tzinfo=None)  # naive, as stored

    plan = planned(createdAt=created)

    assert plan.email == "ada@example.com"
    assert plan.created_at == created.replace(tzinfo=UTC)
    assert plan.updated_at == plan.created_at


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"_id": "a-string-id"}, "its _id is not an ObjectId"),
        ({"email": None}, "no email address"),
        ({"password": "hunter2"}, "unknown format"),
        ({"password": "$2x$04$" + HASH[7:]}, "unknown format"),
        ({"password": None}, "unknown format"),
        ({"apiSecret": {"nested": "value"}}, "a field holds a dict"),
        ({"strategies": ["not an object"]}, "not a list of objects"),
        ({"strategies": [{"name": ["a", "list"]}]}, "a strategy field holds a list"),
    ],
)
def test_users_that_cannot_be_stored_as_they_are_are_refused_with_a_reason(overrides, reason):
    refusal = plan_user(legacy_doc(**overrides))

    assert isinstance(refusal, Refusal)
    assert reason in refusal.reason
    assert "hunter2" not in refusal.reason
