"""GraphQL over HTTP: methods, media types, status codes, GraphiQL, limits and health."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from bson import ObjectId

from tests.helpers import body_of, error_codes, gid, make_strategy, make_user, token_for

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
REGISTER = """
mutation Register {
  register(email: "get@example.com", password: "a long enough password",
           firstName: "Ada", lastName: "Lovelace") { accessToken }
}
"""
DEEP_QUERY = "{ me { " + "strategies { edges { node { owner { " * 4 + "id" + " } } } }" * 4 + " } }"


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


async def post(
    client: httpx.AsyncClient, body: Any, *, accept: str | None = JSON, **headers: str
) -> httpx.Response:
    """POST `body` as JSON with this Accept header (None: no Accept header at all)."""
    request = client.build_request("POST", "/graphql", json=body, headers=headers)
    if accept is None:
        del request.headers["accept"]
    else:
        request.headers["accept"] = accept
    return await client.send(request)


async def get(
    client: httpx.AsyncClient, params: dict[str, str], *, accept: str = JSON, **headers: str
) -> httpx.Response:
    """GET /graphql with these query-string parameters."""
    return await client.get("/graphql", params=params, headers={"Accept": accept, **headers})


def assert_every_error_is_coded(body: dict[str, Any]) -> None:
    assert body["errors"], body
    for error in body["errors"]:
        assert isinstance(error["extensions"]["code"], str), error


# --- Methods and request parameters -------------------------------------------------------------


async def test_a_post_with_a_json_body_runs_the_operation(client, sources, settings):
    user = await make_user(sources, email="post@example.com")

    response = await post(
        client,
        {"query": "query Me { me { email } }", "operationName": "Me"},
        Authorization=f"Bearer {token_for(settings, user)}",
    )

    assert response.status_code == 200
    assert body_of(response) == {"data": {"me": {"email": "post@example.com"}}}


async def test_a_get_takes_query_variables_and_operation_name_from_the_query_string(
    client, sources, settings
):
    user = await make_user(sources, email="get@example.com")
    query = "query Pick($withEmail: Boolean!) { me { id email @include(if: $withEmail) } }"

    response = await get(
        client,
        {"query": query, "variables": json.dumps({"withEmail": False}), "operationName": "Pick"},
        Authorization=f"Bearer {token_for(settings, user)}",
    )

    assert response.status_code == 200
    assert body_of(response) == {"data": {"me": {"id": gid(user)}}}


async def test_a_mutation_over_get_is_405_allowing_post_and_writes_nothing(client, sources):
    response = await get(client, {"query": REGISTER})

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert await sources.users.db["users"].count_documents({}) == 0


async def test_a_post_of_another_content_type_is_415(client):
    response = await client.post(
        "/graphql",
        content="{ __typename }",
        headers={"Content-Type": "application/graphql", "Accept": JSON},
    )

    assert response.status_code == 415
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_json_body_with_a_charset_parameter_is_accepted(client):
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": "{ __typename }"}).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", "Accept": JSON},
    )

    assert response.status_code == 200
    assert body_of(response) == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("why", "content"),
    [
        ("not JSON", b'{"query": "{ __typename }"'),
        ("not an object", json.dumps([{"query": "{ __typename }"}]).encode()),
        ("no query", json.dumps({"variables": {}}).encode()),
        ("a blank query", json.dumps({"query": "  "}).encode()),
        ("variables not an object", json.dumps({"query": "{ me { id } }", "variables": [1]})),
        ("operationName not a string", json.dumps({"query": "{ me { id } }", "operationName": 1})),
    ],
)
async def test_a_malformed_post_body_is_400_with_a_coded_error(client, why, content):
    response = await client.post(
        "/graphql", content=content, headers={"Content-Type": JSON, "Accept": JSON}
    )

    assert response.status_code == 400, why
    assert error_codes(response.json()) == ["BAD_USER_INPUT"], why
    assert "data" not in response.json(), why


@pytest.mark.parametrize(
    ("why", "params"),
    [
        ("no query", {}),
        ("variables not JSON", {"query": "{ me { id } }", "variables": "{oops"}),
        ("variables not an object", {"query": "{ me { id } }", "variables": "[1, 2]"}),
    ],
)
async def test_a_malformed_get_is_400_with_a_coded_error(client, why, params):
    response = await get(client, params)

    assert response.status_code == 400, why
    assert error_codes(response.json()) == ["BAD_USER_INPUT"], why


async def test_a_post_body_with_several_requests_is_not_a_batch(client, sources):
    response = await post(client, [{"query": REGISTER}, {"query": REGISTER}])

    assert response.status_code == 400
    assert await sources.users.db["users"].count_documents({}) == 0


# --- Lone UTF-16 surrogates ---------------------------------------------------------------------
# JSON may escape half of a surrogate pair ("\ud800"); such a string is no Unicode text, and no
# hash, BSON or cipher can encode it. No JSON encoder sends one, so the bodies are written as
# JSON with a placeholder that becomes the raw escape.

LONE = "@LONE@"
SIGN_UP = """mutation($p: String!, $f: String!) {
  register(email: "lone@example.com", password: $p, firstName: $f, lastName: "L") { accessToken }
}"""
LOGIN = 'mutation($p: String!) { login(email: "a@b.co", password: $p) { accessToken } }'
SAVE_CREDENTIALS = (
    "mutation($input: SaveCredentialsInput!) { saveCredentials(input: $input) { configured } }"
)
CREATE_STRATEGY = (
    "mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { strategy { id } } }"
)


def strategy_input(config: Any, key: str = "k") -> dict[str, Any]:
    return {
        "name": "N",
        "code": "c",
        "instrument": "BTCUSDT",
        "broker": "binance",
        "environment": "TESTNET",
        "config": config,
        "clientMutationId": key,
    }


LONE_SURROGATE_BODIES: dict[str, dict[str, Any]] = {
    "register password": {"query": SIGN_UP, "variables": {"p": f"long enough {LONE}", "f": "A"}},
    "register first name": {"query": SIGN_UP, "variables": {"p": "long enough pw", "f": LONE}},
    "login password": {"query": LOGIN, "variables": {"p": LONE}},
    "credentials secret": {
        "query": SAVE_CREDENTIALS,
        "variables": {"input": {"broker": "binance", "clientId": "C", "apiSecret": f"x{LONE}"}},
    },
    "credentials client id": {
        "query": SAVE_CREDENTIALS,
        "variables": {"input": {"broker": "binance", "clientId": LONE}},
    },
    "strategy client mutation id": {
        "query": CREATE_STRATEGY,
        "variables": {"input": strategy_input({}, key=LONE)},
    },
    "deep in a config value": {
        "query": CREATE_STRATEGY,
        "variables": {"input": strategy_input({"a": [{"b": [LONE]}]})},
    },
    "a config key": {"query": CREATE_STRATEGY, "variables": {"input": strategy_input({LONE: 1})}},
    "the query text": {"query": "{ __typename } # " + LONE},
    "operationName": {"query": "query Q { __typename }", "operationName": f"Q{LONE}"},
    "extensions": {"query": "{ __typename }", "extensions": {"e": LONE}},
}


def with_lone_surrogate(body: dict[str, Any]) -> bytes:
    """`body` as JSON, each placeholder replaced by the escape of a lone high surrogate."""
    return json.dumps(body).replace(LONE, "\\ud800").encode()


@pytest.mark.parametrize("why", list(LONE_SURROGATE_BODIES))
@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
async def test_a_lone_surrogate_anywhere_in_a_post_is_a_400_that_runs_nothing(
    client, sources, settings, why, accept
):
    user = await make_user(sources, email="a@b.co")

    response = await client.post(
        "/graphql",
        content=with_lone_surrogate(LONE_SURROGATE_BODIES[why]),
        headers={
            "Content-Type": JSON,
            "Accept": accept,
            "Authorization": f"Bearer {token_for(settings, user)}",
        },
    )

    assert response.status_code == 400, why
    body = response.json()
    assert error_codes(body) == ["BAD_USER_INPUT"], why
    assert "surrogate" in body["errors"][0]["message"], why
    assert "data" not in body, why
    assert await sources.users.db["users"].count_documents({}) == 1, why
    assert await sources.credentials.db["credentials"].count_documents({}) == 0, why
    assert await sources.strategies.db["strategies"].count_documents({}) == 0, why


async def test_a_lone_surrogate_in_get_variables_is_a_400(client):
    variables = json.dumps({"s": LONE}).replace(LONE, "\\udc00")

    response = await get(
        client, {"query": "query($s: String) { __typename }", "variables": variables}
    )

    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_surrogate_escape_inside_the_document_is_a_coded_syntax_error(client, sources):
    # The GraphQL lexer decodes the escapes of string literals itself, and refuses a lone half.
    query = (
        'mutation { register(email: "lit@example.com", password: "a long \\ud800 password",'
        ' firstName: "Ada", lastName: "L") { accessToken } }'
    )

    response = await post(client, {"query": query}, accept=GRAPHQL_RESPONSE)

    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert await sources.users.db["users"].count_documents({}) == 0


async def test_a_whole_surrogate_pair_is_ordinary_text(client, sources, settings):
    user = await make_user(sources)
    query = "mutation($f: String!) { updateProfile(input: {firstName: $f}) { firstName } }"
    content = json.dumps({"query": query, "variables": {"f": f"Ada {LONE}"}})

    response = await client.post(
        "/graphql",
        content=content.replace(LONE, "\\ud83d\\ude00").encode(),
        headers={"Content-Type": JSON, "Authorization": f"Bearer {token_for(settings, user)}"},
    )

    assert body_of(response) == {"data": {"updateProfile": {"firstName": "Ada \U0001f600"}}}


# --- Accept negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (JSON, JSON),
        (None, JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
        (f"text/html, {GRAPHQL_RESPONSE};charset=utf-8", GRAPHQL_RESPONSE),
    ],
)
async def test_the_response_media_type_follows_the_accept_header(client, accept, expected):
    response = await post(client, {"query": "{ __typename }"}, accept=accept)

    assert response.status_code == 200
    assert media_type(response) == expected
    assert body_of(response) == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("accept", ["text/plain", "text/html", f"{JSON};q=0"])
async def test_an_accept_header_refusing_both_json_types_is_406(client, accept):
    response = await post(client, {"query": "{ __typename }"}, accept=accept)

    assert response.status_code == 406
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


# --- Status codes per media type ----------------------------------------------------------------

REQUEST_ERRORS = {
    "syntax error": {"query": "{ me { id "},
    "validation error": {"query": "{ me { noSuchField } }"},
    "bad variable": {
        "query": "query S($first: Int) { strategies(first: $first) { totalCount } }",
        "variables": {"first": "ten"},
    },
    "missing variable": {
        "query": "query S($first: Int!) { strategies(first: $first) { totalCount } }"
    },
}


@pytest.mark.parametrize("why", list(REQUEST_ERRORS))
async def test_a_request_error_is_400_without_data_in_graphql_response_json(client, why):
    response = await post(client, REQUEST_ERRORS[why], accept=GRAPHQL_RESPONSE)

    assert response.status_code == 400, why
    assert media_type(response) == GRAPHQL_RESPONSE
    body = response.json()
    assert error_codes(body) == ["BAD_USER_INPUT"], why
    assert "data" not in body, why


@pytest.mark.parametrize("why", list(REQUEST_ERRORS))
async def test_a_request_error_is_200_in_legacy_json(client, why):
    response = await post(client, REQUEST_ERRORS[why], accept=JSON)

    assert response.status_code == 200, why
    assert media_type(response) == JSON
    assert error_codes(response.json()) == ["BAD_USER_INPUT"], why


async def test_a_field_error_is_200_with_data_in_graphql_response_json(client):
    response = await post(client, {"query": "{ me { id } }"}, accept=GRAPHQL_RESPONSE)

    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"me": None}
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["path"] == ["me"]


async def test_a_field_error_nulling_the_whole_data_is_still_200_in_graphql_response_json(client):
    response = await post(
        client, {"query": "{ dashboard { pnl { today } } }"}, accept=GRAPHQL_RESPONSE
    )

    assert response.status_code == 200
    assert response.json()["data"] is None
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]


# --- Operation names ----------------------------------------------------------------------------

SEVERAL_OPERATIONS = "query First { first: __typename } query Second { second: __typename }"


@pytest.mark.parametrize("name", ["First", "Second"])
async def test_operation_name_picks_one_of_several_operations(client, name):
    response = await post(client, {"query": SEVERAL_OPERATIONS, "operationName": name})

    assert response.status_code == 200
    assert body_of(response) == {"data": {name.lower(): "Query"}}


async def test_an_unknown_operation_name_is_400(client):
    response = await post(
        client, {"query": SEVERAL_OPERATIONS, "operationName": "Third"}, accept=JSON
    )

    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_several_operations_without_an_operation_name_is_400_and_runs_none(client, sources):
    document = REGISTER + " query Count { __typename }"

    response = await post(client, {"query": document})

    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert "operationName" in response.json()["errors"][0]["message"]
    assert await sources.users.db["users"].count_documents({}) == 0


# --- GraphiQL -----------------------------------------------------------------------------------


async def test_a_browser_get_without_a_query_serves_graphiql(client):
    response = await client.get(
        "/graphql", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )

    assert response.status_code == 200
    assert media_type(response) == "text/html"
    assert "graphiql" in response.text.lower()


async def test_a_browser_get_with_a_query_runs_it_instead_of_serving_graphiql(client):
    response = await get(
        client,
        {"query": "{ __typename }"},
        accept="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    )

    assert response.status_code == 200
    assert body_of(response) == {"data": {"__typename": "Query"}}


# --- Error codes and limits ---------------------------------------------------------------------


async def test_every_error_of_every_kind_of_failure_carries_a_code(client):
    responses = [
        await get(client, {"query": REGISTER}),
        await post(client, {"query": "{ __typename }"}, accept="text/plain"),
        await client.post("/graphql", content="x", headers={"Content-Type": "text/plain"}),
        await post(client, {"query": "{ me { id "}, accept=GRAPHQL_RESPONSE),
        await post(client, {"query": "{ nope }"}),
        await post(client, {"query": "{ me { id } }"}),
        await post(client, {"query": "{ strategies(first: 100000) { totalCount } }"}),
        await post(client, {"query": DEEP_QUERY}),
        await post(client, {"query": SEVERAL_OPERATIONS, "operationName": "Third"}),
    ]

    for response in responses:
        assert_every_error_is_coded(response.json())


async def test_a_query_deeper_than_the_maximum_depth_is_too_complex(client, settings):
    depth = DEEP_QUERY.count("{") - 1
    assert depth > settings.max_query_depth

    response = await post(client, {"query": DEEP_QUERY})

    assert error_codes(response.json()) == ["QUERY_TOO_COMPLEX"]
    assert "data" not in response.json()


async def test_a_query_with_too_many_aliases_is_too_complex(client):
    aliases = " ".join(f"a{n}: __typename" for n in range(31))

    response = await post(client, {"query": f"{{ {aliases} }}"}, accept=GRAPHQL_RESPONSE)

    assert response.status_code == 400
    assert error_codes(response.json()) == ["QUERY_TOO_COMPLEX"]


async def test_a_document_with_too_many_tokens_is_too_complex(client):
    fields = " ".join("__typename" for _ in range(6000))

    response = await post(client, {"query": f"{{ {fields} }}"}, accept=GRAPHQL_RESPONSE)

    assert response.status_code == 400
    assert error_codes(response.json()) == ["QUERY_TOO_COMPLEX"]


async def test_a_query_within_the_limits_runs(client, sources, settings):
    user = await make_user(sources)
    shallow = "{ me { strategies { edges { node { owner { id } } } } } }"

    response = await post(
        client, {"query": shallow}, Authorization=f"Bearer {token_for(settings, user)}"
    )

    assert body_of(response) == {"data": {"me": {"strategies": {"edges": []}}}}


async def test_an_unexpected_exception_is_masked_as_internal(client, sources, settings):
    user = await make_user(sources)
    strategy = await make_strategy(sources, user)
    # Written by another tool: a count the record builder cannot turn into an int.
    await sources.strategies.db["strategies"].update_one(
        {"_id": ObjectId(strategy.id)}, {"$set": {"errorCount": "many-errors-sentinel"}}
    )

    response = await post(
        client,
        {"query": "{ strategies { edges { node { id errorCount } } } }"},
        Authorization=f"Bearer {token_for(settings, user)}",
    )

    body = response.json()
    assert response.status_code == 200
    assert body["data"] == {"strategies": None}
    assert body["errors"] == [
        {
            "message": "Internal server error.",
            "locations": body["errors"][0]["locations"],
            "path": ["strategies"],
            # The request id finds the details in the log.
            "extensions": {"code": "INTERNAL", "requestId": response.headers["x-request-id"]},
        }
    ]
    for leak in ("many-errors-sentinel", "ValueError", "invalid literal", "Traceback", ".py"):
        assert leak not in response.text, leak


# --- Health -------------------------------------------------------------------------------------


async def test_healthz_answers_ok(client):
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_every_source_ready_with_its_latency(client):
    response = await client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["sources"]) == {"users", "strategies", "credentials", "trades", "analytics"}
    for name, status in body["sources"].items():
        assert status["ok"] is True, name
        assert isinstance(status["latencyMs"], int | float), name
        assert 0 <= status["latencyMs"] < 5000, name
        assert "error" not in status, name


async def test_json_nested_deeper_than_the_parser_goes_is_a_coded_400(client):
    deep = "[" * 100_000 + "]" * 100_000

    body_response = await client.post(
        "/graphql",
        content=f'{{"query": "{{ me {{ id }} }}", "variables": {{"x": {deep}}}}}',
        headers={"Content-Type": "application/json"},
    )
    # A URL holds far less, but still more nesting than the JSON parser's stack.
    nested = "[" * 5_000 + "]" * 5_000
    get_response = await client.get(
        "/graphql", params={"query": "{ me { id } }", "variables": nested}
    )

    for response in (body_response, get_response):
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_integer_of_thousands_of_digits_is_a_coded_request_error(client):
    digits = "1" * 5000
    posted = await client.post(
        "/graphql",
        content=f'{{"query": "{{ __typename }}", "variables": {{"a": {digits}}}}}',
        headers={"Content-Type": "application/json"},
    )
    got = await client.get(
        "/graphql", params={"query": "{ __typename }", "variables": f'{{"a": {digits}}}'}
    )

    for response in (posted, got):
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_error_no_route_handled_is_a_coded_500_with_the_security_headers(settings):
    from gateway.app import create_app  # noqa: PLC0415

    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("a bug with a secret: hunter2")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        response = await http.get("/boom")

    assert response.status_code == 500
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert "hunter2" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_answers_are_encoded_by_orjson_as_json_would_encode_them():
    from fastapi.responses import JSONResponse  # noqa: PLC0415

    from gateway.http import GraphQLResponse  # noqa: PLC0415

    answer = {
        "data": {"me": {"email": "zoë@example.com", "name": "名前 \u2028", "n": 3, "x": 0.25}},
        "errors": [{"message": 'a "quoted" \\ line\n', "path": ["me", 0]}],
        "nothing": None,
        "flags": [True, False],
    }
    assert GraphQLResponse(answer).body == JSONResponse(answer).body
    # What orjson refuses, json still encodes: an integer past 64 bits in a JSON scalar.
    huge = {"data": {"config": {"big": 2**70}}}
    assert GraphQLResponse(huge).body == JSONResponse(huge).body
