"""Production mode: introspection for ADMIN only, no suggestions, no GraphiQL unless asked
for, security headers on every response of every route, one Authorization header."""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.routing import APIRoute

from gateway import cli
from tests.helpers import app_client, body_of, error_codes, gid, make_user, token_for

GRAPHQL_RESPONSE = "application/graphql-response+json"
INTROSPECTION = "{ __schema { queryType { name } } }"
TYPE = '{ __type(name: "User") { name } }'
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
async def production(settings, sources) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings, gateway_env="production") as http:
        yield http


async def post(http: httpx.AsyncClient, query: str, token: str | None = None) -> httpx.Response:
    headers = {"Accept": GRAPHQL_RESPONSE}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return await http.post("/graphql", json={"query": query}, headers=headers)


# --- Introspection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query", [INTROSPECTION, TYPE, "{ ...F } fragment F on Query { __schema { types { name } } }"]
)
async def test_in_production_introspection_is_refused_to_anyone_but_an_admin(
    production, sources, settings, query
):
    user = await make_user(sources)
    admin = await make_user(sources, role="ADMIN")

    anonymous = await post(production, query)
    as_user = await post(production, query, token_for(settings, user))
    as_admin = await post(production, query, token_for(settings, admin))

    assert error_codes(anonymous.json()) == ["UNAUTHENTICATED"]
    assert error_codes(as_user.json()) == ["FORBIDDEN"]
    for refused in (anonymous, as_user):
        assert refused.status_code == 400
        assert "data" not in refused.json()
    assert "errors" not in as_admin.json()
    assert as_admin.json()["data"]


async def test_in_production_typename_is_not_introspection(production):
    assert body_of(await post(production, "{ __typename }")) == {"data": {"__typename": "Query"}}


async def test_introspection_off_refuses_even_an_admin(settings, sources):
    admin = await make_user(sources, role="ADMIN")

    async with app_client(settings, gateway_env="production", introspection="off") as http:
        response = await post(http, INTROSPECTION, token_for(settings, admin))

    assert error_codes(response.json()) == ["FORBIDDEN"]


async def test_outside_production_anyone_may_introspect(client):
    response = await post(client, INTROSPECTION)

    assert body_of(response) == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


# --- Suggestions --------------------------------------------------------------------------------


TYPOS = [
    "{ mee { id } }",
    "{ me { emial } }",
    "{ strategies(status: ACTIV) { totalCount } }",
]


@pytest.mark.parametrize("query", TYPOS)
async def test_in_production_errors_suggest_no_names(production, client, query):
    development = await post(client, query)
    response = await post(production, query)

    assert "Did you mean" in development.text  # the case does suggest, elsewhere
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert "Did you mean" not in response.text
    assert "'" in response.json()["errors"][0]["message"]  # still says what is wrong


async def test_in_production_a_mistyped_enum_variable_suggests_nothing(production):
    response = await production.post(
        "/graphql",
        json={
            "query": "query($s: StrategyStatus) { strategies(status: $s) { totalCount } }",
            "variables": {"s": "ACTIV"},
        },
    )

    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert "Did you mean" not in response.text


# --- GraphiQL -----------------------------------------------------------------------------------


async def test_in_production_graphiql_is_off(production):
    response = await production.get("/graphql", headers=BROWSER)

    assert response.status_code == 404
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_in_production_graphiql_is_served_when_enabled_explicitly(settings, sources):
    async with app_client(settings, gateway_env="production", graphiql=True) as http:
        response = await http.get("/graphql", headers=BROWSER)

    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_the_graphiql_page_allows_only_what_it_loads_and_no_framing(client):
    response = await client.get("/graphql", headers=BROWSER)

    policy = {}
    for directive in response.headers["content-security-policy"].split("; "):
        name, _, value = directive.partition(" ")
        policy[name] = value
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert response.headers["x-frame-options"] == "DENY"
    # Every script it loads is the gateway's own (tests/http/test_graphiql.py), none inline.
    assert policy["script-src"] == "'self'"
    for src in re.findall(r'<script[^>]*src="([^"]+)"', response.text):
        assert src.startswith("graphiql/assets/"), src
    assert "<script>" not in response.text


# --- Headers on every response -------------------------------------------------------------


async def test_every_route_of_the_app_answers_with_the_security_headers(production):
    app = production.app
    responses = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in sorted(route.methods or ()):
                responses.append(await production.request(method, route.path))
    responses += [
        await production.get("/no-such-route"),
        await post(production, "{ __typename }"),
        await post(production, "{ me { id } }"),
        await production.post(
            "/graphql",
            content=b"x" * (2 * 2**20),
            headers={"Content-Type": "application/json"},
        ),
        await production.post(
            "/graphql",
            json={
                "query": 'mutation { login(email: "nobody@example.com", password: "wrong") '
                "{ accessToken } }"
            },
        ),
    ]

    assert len(responses) >= 9
    for response in responses:
        where = f"{response.request.method} {response.request.url.path} {response.status_code}"
        assert response.headers["x-content-type-options"] == "nosniff", where
        assert response.headers["referrer-policy"] == "no-referrer", where
        assert response.headers["cache-control"] == "no-store", where
        assert "server" not in response.headers, where


async def test_the_sign_in_answer_carrying_tokens_is_never_stored(client, sources):
    await make_user(sources, email="cache@example.com")

    response = await client.post(
        "/graphql",
        json={
            "query": 'mutation { login(email: "cache@example.com", '
            'password: "correct horse battery") { accessToken } }'
        },
    )

    assert body_of(response)["data"]["login"]["accessToken"]
    assert response.headers["cache-control"] == "no-store"


def test_gateway_serve_does_not_name_the_server(monkeypatch):
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("METRICS_ENABLED", "false")

    cli.cmd_serve(argparse.Namespace(workers=1, host="127.0.0.1", port=0, log_level="info"))

    assert seen["server_header"] is False


# --- One Authorization header --------------------------------------------------------------


async def test_two_authorization_headers_are_unauthenticated_even_both_valid(
    client, sources, settings
):
    user = await make_user(sources)
    token = token_for(settings, user)

    response = await client.post(
        "/graphql",
        json={"query": "{ me { id } }"},
        headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
    )

    body = response.json()
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] == {"me": None} or body["data"] is None
    assert user.id not in response.text


async def test_one_authorization_header_still_signs_in(client, sources, settings):
    user = await make_user(sources)

    response = await client.post(
        "/graphql",
        json={"query": "{ me { id } }"},
        headers={"Authorization": f"Bearer {token_for(settings, user)}"},
    )

    assert body_of(response) == {"data": {"me": {"id": gid(user)}}}
