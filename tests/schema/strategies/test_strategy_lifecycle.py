"""startStrategy, stopStrategy, pauseStrategy and resumeStrategy over HTTP: the checked state
machine, the credentials a start needs, the activity it records, and concurrent transitions."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from schema._ids import global_id
from tests.helpers import NOW, gid, gql, make_credentials, make_strategy, make_user, token_for
from tests.schema.strategies.ops import ACTIONS, error_of, stored, strategy_events, transition

STATUSES = ("STOPPED", "ACTIVE", "PAUSED", "ERROR")
# (action, from) -> to: the whole state machine.
EDGES = {
    ("start", "STOPPED"): "ACTIVE",
    ("pause", "ACTIVE"): "PAUSED",
    ("resume", "PAUSED"): "ACTIVE",
    ("stop", "ACTIVE"): "STOPPED",
    ("stop", "PAUSED"): "STOPPED",
    ("stop", "ERROR"): "STOPPED",
}
EVENTS = {
    "start": "STRATEGY_STARTED",
    "stop": "STRATEGY_STOPPED",
    "pause": "STRATEGY_PAUSED",
    "resume": "STRATEGY_RESUMED",
}
ILLEGAL = [
    (action, status) for action in ACTIONS for status in STATUSES if (action, status) not in EDGES
]
_REFUSAL = re.compile(
    r"^Cannot (start|stop|pause|resume) an? (STOPPED|ACTIVE|PAUSED|ERROR) strategy\.$"
)


async def trader(sources, settings, *, credentials: bool = True):
    """A user (with binance credentials unless told otherwise) and a token for it."""
    user = await make_user(sources)
    if credentials:
        await make_credentials(sources, user)
    return user, token_for(settings, user)


async def strategy_in(sources, user, status: str, **overrides: Any):
    """A strategy of `user` in `status`, last written an hour ago."""
    return await make_strategy(
        sources, user, status=status, created_at=NOW - timedelta(hours=1), **overrides
    )


def moved(body: dict[str, Any], action: str) -> dict[str, Any]:
    assert "errors" not in body, body["errors"]
    strategy: dict[str, Any] = body["data"][f"{action}Strategy"]
    return strategy


def refused(body: dict[str, Any], code: str = "BAD_USER_INPUT") -> str:
    """The message of a transition refused with `code`."""
    error = error_of(body)
    assert body["data"] is None
    assert error["extensions"]["code"] == code, error
    message: str = error["message"]
    return message


# The legal edges ---------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "status"), list(EDGES))
async def test_each_legal_transition_moves_the_strategy_and_records_it(
    client, sources, settings, action, status
):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(sources, user, status)

    result = moved(await transition(client, token, action, strategy), action)

    target = EDGES[(action, status)]
    assert (result["status"], result["lastAction"]) == (target, action)
    doc = await stored(sources, strategy)
    assert doc is not None
    assert (doc["status"], doc["lastAction"]) == (target.lower(), action)
    assert doc["updatedAt"] > strategy.updated_at
    assert doc["createdAt"] == strategy.created_at
    assert await strategy_events(sources, user) == [
        {
            "kind": EVENTS[action],
            "subjectId": strategy.id,
            "data": {"from": status, "to": target, "name": strategy.name},
        }
    ]


async def test_a_strategy_goes_round_its_whole_lifecycle(client, sources, settings):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(sources, user, "STOPPED")

    statuses = [
        moved(await transition(client, token, action, strategy), action)["status"]
        for action in ("start", "pause", "resume", "pause", "stop", "start", "stop")
    ]

    assert statuses == ["ACTIVE", "PAUSED", "ACTIVE", "PAUSED", "STOPPED", "ACTIVE", "STOPPED"]
    kinds = [event["kind"] for event in await strategy_events(sources, user)]
    assert kinds == [
        "STRATEGY_STARTED",
        "STRATEGY_PAUSED",
        "STRATEGY_RESUMED",
        "STRATEGY_PAUSED",
        "STRATEGY_STOPPED",
        "STRATEGY_STARTED",
        "STRATEGY_STOPPED",
    ]


async def test_stopping_a_strategy_in_error_clears_its_message_and_keeps_its_count(
    client, sources, settings
):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(
        sources, user, "ERROR", error_message="broker rejected order", error_count=3
    )

    result = moved(await transition(client, token, "stop", strategy), "stop")

    assert (result["status"], result["errorMessage"], result["errorCount"]) == ("STOPPED", None, 3)
    doc = await stored(sources, strategy)
    assert doc is not None
    assert (doc["errorMessage"], doc["errorCount"]) == (None, 3)


async def test_a_transition_leaves_the_runners_fields_alone(client, sources, settings):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(
        sources, user, "STOPPED", container_id="c-42", last_heartbeat=NOW - timedelta(minutes=1)
    )
    before = await stored(sources, strategy)

    moved(await transition(client, token, "start", strategy), "start")

    after = await stored(sources, strategy)
    assert before is not None
    assert after is not None
    # (`outbox` held the transition's event until it was delivered: empty again.)
    assert after.pop("outbox") == []
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {"status", "lastAction", "updatedAt"}


async def test_transitions_in_one_request_each_see_the_previous_one(client, sources, settings):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(sources, user, "STOPPED")

    body = await gql(
        client,
        """
        mutation($id: ID!) {
          startStrategy(id: $id) { status }
          pauseStrategy(id: $id) { status owner { strategies(status: PAUSED) { totalCount } } }
          resumeStrategy(id: $id) { status owner { strategies(status: PAUSED) { totalCount } } }
        }
        """,
        {"id": gid(strategy)},
        token=token,
    )

    assert body == {
        "data": {
            "startStrategy": {"status": "ACTIVE"},
            "pauseStrategy": {"status": "PAUSED", "owner": {"strategies": {"totalCount": 1}}},
            "resumeStrategy": {"status": "ACTIVE", "owner": {"strategies": {"totalCount": 0}}},
        }
    }


async def test_lifecycle_events_reach_the_dashboard(client, sources, settings):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(sources, user, "STOPPED")
    await transition(client, token, "start", strategy)

    body = await gql(
        client, "{ dashboard { recentActivity { kind subjectId data } } }", token=token
    )

    assert body["data"]["dashboard"]["recentActivity"] == [
        {
            "kind": "STRATEGY_STARTED",
            "subjectId": gid(strategy),
            "data": {"from": "STOPPED", "to": "ACTIVE", "name": strategy.name},
        }
    ]


# The illegal ones --------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "status"), ILLEGAL)
async def test_an_illegal_transition_names_the_current_state_and_changes_nothing(
    client, sources, settings, action, status
):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(sources, user, status)
    before = await stored(sources, strategy)

    message = refused(await transition(client, token, action, strategy))

    named = "an" if status in ("ACTIVE", "ERROR") else "a"
    assert message == f"Cannot {action} {named} {status} strategy."
    assert await stored(sources, strategy) == before
    assert await strategy_events(sources, user) == []


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("intruder_has_credentials", [True, False])
async def test_another_users_strategy_is_not_found_and_unchanged(
    client, sources, settings, action, intruder_has_credentials
):
    owner, _ = await trader(sources, settings)
    status = "STOPPED" if action == "start" else "PAUSED"
    strategy = await strategy_in(sources, owner, status)
    before = await stored(sources, strategy)
    _intruder, token = await trader(sources, settings, credentials=intruder_has_credentials)

    message = refused(await transition(client, token, action, strategy), "NOT_FOUND")

    assert strategy.name not in message
    assert status not in message
    assert await stored(sources, strategy) == before
    assert await strategy_events(sources, owner) == []


@pytest.mark.parametrize("action", ACTIONS)
async def test_an_unknown_strategy_is_not_found(client, sources, settings, action):
    _user, token = await trader(sources, settings)
    missing = str(global_id("Strategy", str(ObjectId())))

    refused(await transition(client, token, action, missing), "NOT_FOUND")


@pytest.mark.parametrize("action", ACTIONS)
async def test_an_id_that_is_not_a_strategys_is_bad_input_and_changes_nothing(
    client, sources, settings, action
):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(sources, user, "STOPPED" if action == "start" else "PAUSED")
    before = await stored(sources, strategy)

    # A raw database id, not base64 at all, a user's id, a Strategy id with a trade's key.
    for bad in (strategy.id, "not-an-id", gid(user), str(global_id("Strategy", "42"))):
        refused(await transition(client, token, action, bad), "BAD_USER_INPUT")

    assert await stored(sources, strategy) == before
    assert await strategy_events(sources, user) == []


async def test_transitions_require_a_token(client, sources):
    owner = await make_user(sources)
    strategy = await strategy_in(sources, owner, "STOPPED")

    body = await transition(client, "", "start", strategy)

    assert refused(body, "UNAUTHENTICATED")
    doc = await stored(sources, strategy)
    assert doc is not None
    assert doc["status"] == "stopped"


# Credentials -------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "status"), [("start", "STOPPED"), ("resume", "PAUSED")])
async def test_entering_active_without_credentials_is_refused(
    client, sources, settings, action, status
):
    user, token = await trader(sources, settings, credentials=False)
    strategy = await strategy_in(sources, user, status)
    before = await stored(sources, strategy)

    message = refused(await transition(client, token, action, strategy))

    assert "credentials" in message
    assert "'binance'" in message
    assert await stored(sources, strategy) == before
    assert await strategy_events(sources, user) == []


@pytest.mark.parametrize(("action", "status"), [("start", "STOPPED"), ("resume", "PAUSED")])
async def test_credentials_for_another_broker_do_not_start_it(
    client, sources, settings, action, status
):
    user, token = await trader(sources, settings, credentials=False)
    await make_credentials(sources, user, broker="zerodha")
    strategy = await strategy_in(sources, user, status, broker="binance")
    before = await stored(sources, strategy)

    message = refused(await transition(client, token, action, strategy))

    assert "credentials" in message
    assert "'zerodha'" in message
    assert "'binance'" in message
    assert await stored(sources, strategy) == before


async def test_credentials_without_any_secret_do_not_start_it(client, sources, settings):
    user, token = await trader(sources, settings, credentials=False)
    await sources.credentials.db["credentials"].insert_one(
        {"userId": ObjectId(user.id), "broker": "binance", "clientId": "client-1"}
    )
    strategy = await strategy_in(sources, user, "STOPPED")

    message = refused(await transition(client, token, "start", strategy))

    assert "credentials" in message
    doc = await stored(sources, strategy)
    assert doc is not None
    assert doc["status"] == "stopped"


async def test_another_users_credentials_do_not_count(client, sources, settings):
    other = await make_user(sources)
    await make_credentials(sources, other)
    user, token = await trader(sources, settings, credentials=False)
    strategy = await strategy_in(sources, user, "STOPPED")

    message = refused(await transition(client, token, "start", strategy))

    assert "credentials" in message


async def test_a_strategy_without_a_broker_cannot_start(client, sources, settings):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(sources, user, "STOPPED", broker=None)

    body = await transition(client, token, "start", strategy)

    assert "broker" in refused(body)
    assert error_of(body)["extensions"]["field"] == "broker"


@pytest.mark.parametrize(("action", "status"), [("pause", "ACTIVE"), ("stop", "ACTIVE")])
async def test_pausing_and_stopping_need_no_credentials(client, sources, settings, action, status):
    user, token = await trader(sources, settings, credentials=False)
    strategy = await strategy_in(sources, user, status)

    result = moved(await transition(client, token, action, strategy), action)

    expected = {"pause": "PAUSED", "stop": "STOPPED"}[action]
    assert result["status"] == expected
    assert (await sources.strategies.db["strategies"].find_one({"name": strategy.name}))[
        "status"
    ] == expected.lower()


async def test_an_illegal_state_is_reported_before_missing_credentials(client, sources, settings):
    user, token = await trader(sources, settings, credentials=False)
    strategy = await strategy_in(sources, user, "ACTIVE")

    message = refused(await transition(client, token, "start", strategy))

    assert message == "Cannot start an ACTIVE strategy."


# Concurrency -------------------------------------------------------------------------------


def walk_exists(start: str, edges: list[tuple[str, str]], end: str) -> bool:
    """Whether the edges, each used once, form one walk from `start` to `end`:
    the serial order the compare-and-set writes must have had."""
    remaining = Counter(edges)
    seen: set[tuple[str, tuple[tuple[tuple[str, str], int], ...]]] = set()

    def go(state: str, left: int) -> bool:
        if left == 0:
            return state == end
        key = (state, tuple(sorted(remaining.items())))
        if key in seen:
            return False
        seen.add(key)
        for (source, target), count in list(remaining.items()):
            if source == state and count:
                remaining[(source, target)] -= 1
                if go(target, left - 1):
                    return True
                remaining[(source, target)] += 1
        return False

    return go(start, len(edges))


@pytest.mark.parametrize("seed", range(5))
async def test_concurrent_transitions_only_ever_take_legal_edges(client, sources, settings, seed):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(sources, user, "ACTIVE")
    actions = [ACTIONS[index % len(ACTIONS)] for index in range(20)]
    random.Random(seed).shuffle(actions)  # noqa: S311 - a reproducible order, not a secret

    bodies = await asyncio.gather(
        *(transition(client, token, action, strategy) for action in actions)
    )

    succeeded: Counter[str] = Counter()
    for action, body in zip(actions, bodies, strict=True):
        if "errors" in body:
            match = _REFUSAL.match(refused(body))
            assert match is not None, body
            assert match.group(1) == action
            assert (action, match.group(2)) not in EDGES  # refused only from a state it can't leave
        else:
            result = moved(body, action)
            assert result["status"] in {to for (name, _), to in EDGES.items() if name == action}
            succeeded[action] += 1
    events = await strategy_events(sources, user)
    assert Counter(event["kind"] for event in events) == Counter(
        {EVENTS[action]: count for action, count in succeeded.items()}
    )
    edges = []
    for event in events:
        action = next(name for name, kind in EVENTS.items() if kind == event["kind"])
        edge = (event["data"]["from"], event["data"]["to"])
        assert EDGES.get((action, edge[0])) == edge[1], event
        edges.append(edge)
    doc = await stored(sources, strategy)
    assert doc is not None
    final = str(doc["status"]).upper()
    assert final in STATUSES
    assert walk_exists("ACTIVE", edges, final), (edges, final)
    assert doc["lastAction"] in ACTIONS if edges else doc["lastAction"] is None


async def test_of_many_concurrent_starts_exactly_one_wins(client, sources, settings):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(sources, user, "STOPPED")

    bodies = await asyncio.gather(
        *(transition(client, token, "start", strategy) for _ in range(20))
    )

    winners = [body for body in bodies if "errors" not in body]
    assert len(winners) == 1
    losers = [refused(body) for body in bodies if "errors" in body]
    assert set(losers) == {"Cannot start an ACTIVE strategy."}
    assert len(await strategy_events(sources, user)) == 1


async def test_an_update_racing_a_start_never_changes_a_running_strategys_code(
    client, sources, settings
):
    user, token = await trader(sources, settings)
    strategy = await strategy_in(sources, user, "STOPPED", code="original")
    update = """
    mutation($id: ID!, $code: String!) { updateStrategy(id: $id, input: {code: $code}) { id } }
    """

    bodies = await asyncio.gather(
        transition(client, token, "start", strategy),
        *(
            gql(client, update, {"id": gid(strategy), "code": f"v{index}"}, token=token)
            for index in range(10)
        ),
    )

    started = moved(bodies[0], "start")
    doc = await stored(sources, strategy)
    assert doc is not None
    # The start answered with the code it started with; no update may land after it.
    assert (doc["status"], doc["code"]) == ("active", started["code"])
    for body in bodies[1:]:
        if "errors" in body:
            assert refused(body) == "Cannot change 'code' of an ACTIVE strategy: stop it first."
