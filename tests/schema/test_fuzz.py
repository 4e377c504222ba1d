"""Fuzzing: queries and mutations generated from the live schema (hypothesis-graphql), sent
as two users who both have data. No answer is a 5xx, every error is coded, and no answer
to one user holds the other's id, email or secrets."""

from __future__ import annotations

import time
from typing import Any

import hypothesis_graphql
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes

from datasources.users import UserRecord
from tests.helpers import (
    make_credentials,
    make_strategy,
    make_trades,
    make_user,
    token_for,
    trade_row,
)

EXAMPLES = 300
SCALARS = {
    "Decimal": st.decimals(-1000, 1000, places=2, allow_nan=False).map(str).map(nodes.String),
    "Date": st.dates().map(str).map(nodes.String),
    "DateTime": st.datetimes().map(lambda at: at.isoformat() + "Z").map(nodes.String),
    "JSON": st.sampled_from(["{}", '{"a": 1}']).map(nodes.String),
}


def generated_documents(schema_sdl: str, count: int) -> list[str]:
    """`count` documents, the same ones every run (a fixed seed, derandomized)."""
    documents: list[str] = []
    strategy = hypothesis_graphql.from_schema(
        schema_sdl, custom_scalars=SCALARS, allow_x00=False, allow_null=True
    )

    @seed(20261128)
    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(document: str) -> None:
        documents.append(document)

    collect()
    return documents


async def user_with_data(sources, secrets_spy) -> tuple[UserRecord, list[str]]:
    user = await make_user(sources)
    strategy = await make_strategy(sources, user)
    await make_trades(sources, [trade_row(strategy) for _ in range(3)])
    secrets = await make_credentials(sources, user, secrets_spy)
    return user, [user.id, user.email, strategy.id, *secrets.values()]


def assert_coded(body: Any, where: str) -> None:
    for error in body.get("errors", []) if isinstance(body, dict) else []:
        assert isinstance(error.get("extensions", {}).get("code"), str), (where, error)


async def test_generated_operations_leak_nothing_and_fail_coded(
    app, client, sources, settings, secrets_spy
):
    started = time.perf_counter()
    alice, alices = await user_with_data(sources, secrets_spy)
    bob, bobs = await user_with_data(sources, secrets_spy)
    sdl = app.state.schema.as_str()
    documents = generated_documents(sdl, EXAMPLES)
    assert len(documents) >= EXAMPLES // 2
    mutations = sum(document.lstrip().startswith("mutation") for document in documents)
    assert 0 < mutations < len(documents)

    users = ((alice, alices, bobs), (bob, bobs, alices))
    for document in documents:
        for user, _own, others in users:
            response = await client.post(
                "/graphql",
                json={"query": document},
                headers={"Authorization": f"Bearer {token_for(settings, user)}"},
            )
            where = f"{document!r} as {user.email}"
            assert response.status_code < 500 or response.status_code in (503, 504), where
            assert_coded(response.json(), where)
            for value in others:
                assert value not in response.text, (value, where)

    assert time.perf_counter() - started < 120
