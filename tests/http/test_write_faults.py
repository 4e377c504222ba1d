"""Writes that lose nothing: every write path cut on the wire at each of its steps, then
retried, records exactly one change and exactly one activity event.

Each source sits behind its own TCP fault proxy (tests/faults.py). A Mongo proxy reads the
wire protocol, so a fault hits one command exactly: its request never reaches the server,
or the server runs it and its answer is lost (the case no timeout can tell from the
first). The steps of an operation are the commands a clean run of it sends, recorded at
the proxy; each is then cut in turn, both ways, on a fresh operation, which is retried as
a client would (same input, same clientMutationId) until it answers. The outbox relay
then runs once, and the counts must be exact: one strategy, one saved credentials, one
transition, one event each, nothing of another user touched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId
from sqlalchemy import func, select

from datasources import Sources
from datasources.analytics import activity_events
from datasources.users import UserRecord
from gateway.core.settings import Settings
from resolvers.activity import relay_pending
from resolvers.deletion import finish_deletions
from tests.faults import FaultProxy, Lost
from tests.helpers import (
    PASSWORD,
    every_source_timeout,
    gid,
    gql,
    key,
    make_credentials,
    make_strategy,
    make_user,
    token_for,
)
from tests.http.proxied import Proxied, client_of, proxied_app
from tests.schema.strategies.ops import create, delete, transition

SAVE = """mutation Save($input: SaveCredentialsInput!) {
  saveCredentials(input: $input) { broker apiKeyHint } }"""
LOSSES: list[Lost] = ["request", "answer"]
RETRIES = 4


@pytest.fixture(scope="module")
async def proxied(settings: Settings) -> AsyncIterator[Proxied]:
    """The app with every source behind a proxy of its own."""
    update = {
        **every_source_timeout(2.0),
        "request_timeout_seconds": 5.0,
        # Every fault here is one command: no breaker may turn it into an outage.
        "source_breaker_failures": 10_000,
    }
    async with proxied_app(settings, update) as app:
        yield app


@pytest.fixture
async def http(proxied: Proxied) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(proxied) as client:
        yield client


Send = Callable[[], Awaitable[dict[str, Any]]]


async def steps_of(proxy: FaultProxy, send: Send) -> list[tuple[str, int]]:
    """The commands one clean run of `send` makes through `proxy`, each with its
    occurrence number (the 2nd `update`, say)."""
    proxy.commands.clear()
    body = await send()
    assert "errors" not in body, body
    seen: Counter[str] = Counter()
    steps = []
    for command in proxy.commands:
        seen[command] += 1
        steps.append((command, seen[command]))
    assert steps
    return steps


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def retried(send: Send, *, settled: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Send until the answer is `settled` (a client retrying after a failure)."""
    body: dict[str, Any] = {}
    for _ in range(RETRIES):
        body = await send()
        if settled(body):
            return body
    raise AssertionError(f"still unsettled after {RETRIES} tries: {body}")


def answered(body: dict[str, Any]) -> bool:
    return "errors" not in body


async def cut_once(proxy: FaultProxy, command: str, nth: int, lose: Lost, send: Send) -> None:
    """Send once with `command` (its `nth` occurrence) failing; the fault must fire."""
    proxy.fail_command(command, nth=nth, lose=lose)
    await send()
    assert not proxy.command_fault_pending, f"{command} #{nth} was never sent"


async def events(sources: Sources, user_id: str, kind: str) -> list[tuple[str | None, Any]]:
    """(subject, data) of each of the user's events of `kind`."""
    table = activity_events
    query = select(table.c.subject_id, table.c.data).where(
        table.c.user_id == user_id, table.c.kind == kind
    )
    async with sources.analytics.engine.connect() as conn:
        return [(row.subject_id, row.data) for row in await conn.execute(query)]


async def pending_events(sources: Sources) -> int:
    """Events still waiting in any outbox."""
    total = 0
    for source in (sources.users, sources.strategies, sources.credentials):
        for collection in source.outbox_collections:
            total += await source.db[collection].count_documents({"outbox.id": {"$exists": True}})
    return total


async def snapshot(sources: Sources, user: UserRecord) -> dict[str, Any]:
    """Everything a bystander has, to show it untouched."""
    oid = ObjectId(user.id)
    async with sources.analytics.engine.connect() as conn:
        count = select(func.count()).where(activity_events.c.user_id == user.id)
        activity = (await conn.execute(count)).scalar_one()
    return {
        "user": await sources.users.db["users"].find_one({"_id": oid}),
        "strategies": await sources.strategies.db["strategies"].find({"userId": oid}).to_list(),
        "credentials": await sources.credentials.db["credentials"].find_one({"userId": oid}),
        "activity": activity,
    }


@pytest.fixture
async def bystander(sources: Sources) -> AsyncIterator[UserRecord]:
    user = await make_user(sources)
    await make_strategy(sources, user)
    await make_credentials(sources, user)
    before = await snapshot(sources, user)
    yield user
    assert await snapshot(sources, user) == before


@pytest.mark.slow
@pytest.mark.parametrize("lose", LOSSES)
async def test_create_strategy_cut_at_every_step_creates_one_strategy_and_one_event(
    http, proxied, sources, settings, bystander, lose: Lost
) -> None:
    user = await make_user(sources)
    token = token_for(settings, user)
    proxy = proxied.proxies["strategies"]

    def send(name: str) -> Send:
        return lambda: create(http, token, name=name, clientMutationId=f"key-{name}")

    steps = await steps_of(proxy, send("clean run"))
    for index, (command, nth) in enumerate(steps):
        await cut_once(proxy, command, nth, lose, send(f"cut {index}"))
        await retried(send(f"cut {index}"), settled=answered)
    relayed = await relay_pending(proxied.sources)

    names = Counter([doc["name"] async for doc in sources.strategies.db["strategies"].find()])
    expected = {"clean run", *(f"cut {index}" for index in range(len(steps)))}
    assert {name: names[name] for name in expected} == dict.fromkeys(expected, 1), steps
    created = await events(sources, user.id, "STRATEGY_CREATED")
    assert sorted(data["name"] for _, data in created) == sorted(expected), relayed
    ids = {str(doc["_id"]) async for doc in sources.strategies.db["strategies"].find()}
    assert {subject for subject, _ in created} <= ids
    assert await pending_events(sources) == 0


@pytest.mark.slow
@pytest.mark.parametrize("lose", LOSSES)
async def test_save_credentials_cut_at_every_step_saves_once_and_records_one_event(
    http, proxied, sources, settings, bystander, lose: Lost
) -> None:
    user = await make_user(sources)
    token = token_for(settings, user)
    proxy = proxied.proxies["credentials"]

    def send(key: str) -> Send:
        # Each save sets an API key ending in its own four characters.
        values = {"broker": "binance", "apiKey": f"KEY-{key}", "clientMutationId": key}
        return lambda: gql(http, SAVE, {"input": values}, token=token)

    steps = await steps_of(proxy, send("base"))
    for index, (command, nth) in enumerate(steps):
        await cut_once(proxy, command, nth, lose, send(f"c{index:03}"))
        body = await retried(send(f"c{index:03}"), settled=answered)
        assert body["data"]["saveCredentials"]["apiKeyHint"] == f"••••c{index:03}"
    await relay_pending(proxied.sources)

    saved = await events(sources, user.id, "CREDENTIALS_SAVED")
    assert len(saved) == 1 + len(steps), steps  # one per key: the base save and each cut one
    stored = (
        await sources.credentials.db["credentials"].find({"userId": ObjectId(user.id)}).to_list()
    )
    assert len(stored) == 1
    assert {subject for subject, _ in saved} == {str(stored[0]["_id"])}
    assert await pending_events(sources) == 0


@pytest.mark.slow
@pytest.mark.parametrize("lose", LOSSES)
@pytest.mark.parametrize(
    ("action", "start", "end"), [("start", "STOPPED", "ACTIVE"), ("stop", "ACTIVE", "STOPPED")]
)
async def test_a_transition_cut_at_every_step_moves_once_and_records_one_event(
    http, proxied, sources, settings, bystander, lose: Lost, action: str, start: str, end: str
) -> None:
    user = await make_user(sources)
    await make_credentials(sources, user)
    token = token_for(settings, user)
    proxy = proxied.proxies["strategies"]

    def send(strategy_id: str) -> Send:
        return lambda: transition(http, token, action, strategy_id)

    def moved_or_there(body: dict[str, Any]) -> bool:
        # A retry of a transition that landed (its answer lost) finds it taken already.
        if answered(body):
            return True
        return codes(body) == ["BAD_USER_INPUT"] and end in body["errors"][0]["message"]

    clean = await make_strategy(sources, user, status=start)
    steps = await steps_of(proxy, send(gid(clean)))
    cut = []
    for command, nth in steps:
        strategy = await make_strategy(sources, user, status=start)
        cut.append(strategy.id)
        await cut_once(proxy, command, nth, lose, send(gid(strategy)))
        await retried(send(gid(strategy)), settled=moved_or_there)
    await relay_pending(proxied.sources)

    kind = {"start": "STRATEGY_STARTED", "stop": "STRATEGY_STOPPED"}[action]
    recorded = Counter(subject for subject, _ in await events(sources, user.id, kind))
    assert recorded == Counter([clean.id, *cut]), steps
    for strategy_id in cut:
        doc = await sources.strategies.db["strategies"].find_one({"_id": ObjectId(strategy_id)})
        assert doc is not None
        assert doc["status"] == end.lower()
    assert await pending_events(sources) == 0


@pytest.mark.slow
@pytest.mark.parametrize("lose", LOSSES)
@pytest.mark.parametrize("source", ["users", "strategies", "credentials"])
async def test_delete_account_cut_at_every_step_still_deletes_everything_once_swept(
    http, proxied, sources, settings, bystander, source: str, lose: Lost
) -> None:
    proxy = proxied.proxies[source]

    async def victim() -> tuple[UserRecord, Send]:
        user = await make_user(sources)
        await make_strategy(sources, user)
        await make_credentials(sources, user)
        token = token_for(settings, user)
        send = "mutation($p: String!) { deleteAccount(password: $p) }"
        return user, lambda: gql(http, send, {"p": PASSWORD}, token=token)

    clean, send = await victim()
    steps = await steps_of(proxy, send)
    victims = [clean]
    for command, nth in steps:
        user, send = await victim()
        victims.append(user)
        await cut_once(proxy, command, nth, lose, send)
    # What a failing request left, the sweep finishes (as `gateway serve` does).
    await finish_deletions(proxied.sources, settle_seconds=0)
    await relay_pending(proxied.sources)

    for user in victims:
        oid = ObjectId(user.id)
        assert await sources.users.db["users"].count_documents({"_id": oid}) == 0
        assert await sources.strategies.db["strategies"].count_documents({"userId": oid}) == 0
        assert await sources.credentials.db["credentials"].count_documents({"userId": oid}) == 0
        async with sources.analytics.engine.connect() as conn:
            count = select(func.count()).where(activity_events.c.user_id == user.id)
            assert (await conn.execute(count)).scalar_one() == 0


async def test_with_analytics_down_every_write_stands_and_its_event_is_recorded_once_later(
    http, proxied, sources, settings, bystander
) -> None:
    user = await make_user(sources)
    await make_credentials(sources, user)
    token = token_for(settings, user)
    await proxied.proxies["analytics"].set("refuse")

    made = await create(http, token, name="while down", clientMutationId="down-1")
    strategy_id = made["data"]["createStrategy"]["strategy"]["id"]
    bodies = [
        made,
        await create(http, token, name="while down", clientMutationId="down-1"),  # a retry
        await transition(http, token, "start", strategy_id),
        await transition(http, token, "stop", strategy_id),
        await delete(http, token, strategy_id),
        await create(http, token, name="while down"),  # the name is free again at once
        await gql(http, "mutation { deleteCredentials }", token=token),
        await gql(
            http,
            'mutation { updateProfile(input: { firstName: "Grace" }) { firstName } }',
            token=token,
        ),
    ]
    assert [codes(body) for body in bodies] == [[]] * len(bodies), bodies
    listed = await gql(http, "{ strategies { edges { node { id name } } } }", token=token)
    names = [edge["node"]["name"] for edge in listed["data"]["strategies"]["edges"]]
    assert names.count("while down") == 1  # the deleted one is no longer read
    assert await pending_events(sources) > 0

    await proxied.proxies["analytics"].set("pass")
    first = await relay_pending(proxied.sources)
    again = await relay_pending(proxied.sources)

    kinds: Counter[str] = Counter()
    async with sources.analytics.engine.connect() as conn:
        query = select(activity_events.c.kind).where(activity_events.c.user_id == user.id)
        kinds.update(row.kind for row in await conn.execute(query))
    assert kinds == {
        "STRATEGY_CREATED": 2,
        "STRATEGY_STARTED": 1,
        "STRATEGY_STOPPED": 1,
        "STRATEGY_DELETED": 1,
        "CREDENTIALS_DELETED": 1,
        "PROFILE_UPDATED": 1,
    }
    assert first.delivered == 7
    assert again.delivered == 0
    assert await pending_events(sources) == 0
    # The deleted strategy's tombstone went with its last event.
    assert (
        await sources.strategies.db["strategies"].count_documents(
            {"_id": ObjectId(key(strategy_id))}
        )
        == 0
    )
