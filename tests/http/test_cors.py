"""CORS (CORS_ORIGINS): preflights answered for the configured origins only, answers marked
for them only, same-origin and server-to-server requests unchanged, no bucket spent.

A real browser on another origin is tests/clients/test_cors.py."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from gateway import cors
from gateway.core.settings import Settings, parse_cors_origins
from tests.helpers import ROOT, app_client, error_codes

APP = "https://app.example.com"
OTHER = "https://evil.example.net"
ME = "{ me { email } }"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.fixture
async def http(settings, sources) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings, cors_origins=f"{APP},http://localhost:5173") as client:
        yield client


def preflight(http: httpx.AsyncClient, origin: str, **headers: str):
    return http.options("/graphql", headers={"Origin": origin, **PREFLIGHT, **headers})


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


# --- Preflights ---------------------------------------------------------------------------------


async def test_a_preflight_from_an_allowed_origin_names_the_methods_and_headers(http):
    response = await preflight(
        http,
        APP,
        **{
            "Access-Control-Request-Headers": "authorization,content-type,"
            "apollographql-client-name,apollographql-client-version,x-request-id,"
            "traceparent,tracestate"
        },
    )

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP
    assert set(response.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    allowed = set(response.headers["access-control-allow-headers"].split(", "))
    assert {
        "authorization",
        "content-type",
        "apollographql-client-name",
        "apollographql-client-version",
        "x-request-id",
        "traceparent",
        "tracestate",
    } <= allowed
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in response.headers
    assert "Origin" in response.headers["vary"]
    # Still a response of this gateway: its security headers are there too.
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_preflight_from_another_origin_is_refused_without_any_cors_header(http):
    response = await preflight(http, OTHER)

    assert response.status_code == 403
    assert error_codes(response.json()) == ["FORBIDDEN"]
    assert OTHER in response.json()["errors"][0]["message"]
    assert cors_headers(response) == {}


async def test_an_origin_must_match_exactly(http):
    for near in (APP + ":8443", "http://app.example.com", "https://sub.app.example.com", "null"):
        response = await preflight(http, near)

        assert response.status_code == 403, near
        assert cors_headers(response) == {}, near


async def test_a_preflight_asking_for_another_method_or_header_is_refused_by_name(http):
    method = await preflight(http, APP, **{"Access-Control-Request-Method": "DELETE"})
    header = await preflight(
        http, APP, **{"Access-Control-Request-Headers": "authorization, x-session-cookie"}
    )

    assert method.status_code == 403
    assert "DELETE" in method.json()["errors"][0]["message"]
    assert header.status_code == 403
    assert "x-session-cookie" in header.json()["errors"][0]["message"]
    assert cors_headers(method) == cors_headers(header) == {}


async def test_without_cors_origins_a_preflight_is_no_different_from_before(client):
    response = await preflight(client, APP)

    assert response.status_code == 405
    assert cors_headers(response) == {}


# --- Requests -----------------------------------------------------------------------------------


async def test_the_answer_to_an_allowed_origin_is_marked_readable_and_exposes_the_request_id(
    http,
):
    response = await http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": APP}
    )

    assert response.json()["data"] == {"__typename": "Query"}
    assert response.headers["access-control-allow-origin"] == APP
    exposed = response.headers["access-control-expose-headers"].split(", ")
    assert {"x-request-id", "retry-after"} <= set(exposed)
    assert "Origin" in response.headers["vary"]


async def test_another_origin_gets_its_answer_without_any_cors_header(http):
    response = await http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": OTHER}
    )

    assert response.json()["data"] == {"__typename": "Query"}
    assert cors_headers(response) == {}


async def test_same_origin_and_server_to_server_requests_are_unchanged(http):
    own_page = await http.post(
        "/graphql", json={"query": ME}, headers={"Origin": "http://gateway.test"}
    )
    server = await http.post("/graphql", json={"query": ME})

    for response in (own_page, server):
        assert error_codes(response.json()) == ["UNAUTHENTICATED"]
        assert cors_headers(response) == {}


async def test_other_routes_carry_no_cors_headers(http):
    response = await http.get("/healthz", headers={"Origin": APP})

    assert response.status_code == 200
    assert cors_headers(response) == {}


async def test_a_cross_site_form_post_still_cannot_run_a_mutation(http, sources):
    # What CORS does not open: a plain HTML form (no preflight) posting a sign-up.
    response = await http.post(
        "/graphql",
        content='{"query": "mutation { register(email: \\"f@example.com\\", password: '
        '\\"long enough pass\\", firstName: \\"F\\", lastName: \\"F\\") { accessToken } }"}',
        headers={"Origin": OTHER, "Content-Type": "text/plain"},
    )

    assert response.status_code == 415
    assert await sources.users.db["users"].count_documents({}) == 0


async def test_any_origin_is_answered_with_a_star_and_no_credentials(settings, sources):
    async with app_client(settings, cors_origins="*") as http:
        allowed = await preflight(http, OTHER)
        answer = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Origin": OTHER}
        )

    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "*"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers


async def test_credentials_are_allowed_for_listed_origins_when_asked(settings, sources):
    async with app_client(settings, cors_origins=APP, cors_allow_credentials=True) as http:
        allowed = await preflight(http, APP)

    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert allowed.headers["access-control-allow-origin"] == APP


# --- Rate limits --------------------------------------------------------------------------------


async def test_preflights_spend_nothing_and_a_429_stays_readable_by_the_page(settings, sources):
    async with app_client(
        settings,
        cors_origins=APP,
        rate_limit_enabled=True,
        rate_limit_ip_burst=2,
        rate_limit_ip_per_second=0.001,
    ) as http:
        preflights = [await preflight(http, APP) for _ in range(20)]
        answers = [
            await http.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": APP})
            for _ in range(3)
        ]

    assert {response.status_code for response in preflights} == {204}
    assert [response.status_code for response in answers] == [200, 200, 429]
    limited = answers[2]
    assert error_codes(limited.json()) == ["RATE_LIMITED"]
    assert limited.headers["access-control-allow-origin"] == APP
    assert "retry-after" in limited.headers["access-control-expose-headers"]
    assert limited.headers["retry-after"]


# --- Settings -----------------------------------------------------------------------------------


def test_a_star_with_credentials_is_refused_at_start():
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        Settings(_env_file=None, cors_origins="*", cors_allow_credentials=True)


@pytest.mark.parametrize(
    "value",
    [
        "https://app.example.com/",
        "https://app.example.com/graphql",
        "https://*.example.com",
        "app.example.com",
        "*,https://app.example.com",
        "https://app.example.com:99999",
    ],
)
def test_anything_but_an_exact_origin_is_refused_at_start(value):
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        Settings(_env_file=None, cors_origins=value)


def test_origins_are_read_as_a_browser_writes_them():
    assert parse_cors_origins(" HTTPS://App.Example.com:443 , http://localhost:5173,,") == (
        "https://app.example.com",
        "http://localhost:5173",
    )
    assert parse_cors_origins("") == ()


# --- Every request header the gateway reads is allowed cross-origin -----------------------------

# Headers a page's script cannot set (the browser or a proxy does), and the ones the
# browser sends without a preflight whatever their value.
NOT_FROM_A_PAGE = {"content-length", "x-forwarded-for", "host", "origin", "cookie"}


def request_headers_read(path: Path) -> set[str]:
    """The header names `path` reads: `headers.get("x")`, `headers.getlist("x")`, or a
    raw ASGI header compared with `b"x"`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "getlist")
            and "headers" in ast.unparse(node.func.value)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.lower())
        if isinstance(node, ast.Compare) and any(
            isinstance(side, ast.Constant) and isinstance(side.value, bytes)
            for side in (node.left, *node.comparators)
        ):
            names.update(
                side.value.decode().lower()
                for side in (node.left, *node.comparators)
                if isinstance(side, ast.Constant) and isinstance(side.value, bytes)
            )
    return names


def test_every_request_header_the_gateway_reads_may_be_sent_by_a_page_of_an_allowed_origin():
    read: dict[str, set[str]] = {}
    for package in ("gateway", "resolvers", "schema"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "cors.py":
                continue
            for name in request_headers_read(path) - NOT_FROM_A_PAGE:
                read.setdefault(name, set()).add(str(path.relative_to(ROOT)))

    # Response headers read back by middleware are listed too; they are harmless here.
    missing = {name: files for name, files in read.items() if name not in cors.ALLOWED_HEADERS}
    assert "authorization" in read  # the walk finds what it should
    assert missing == {}, (
        "a request header the gateway reads is not in gateway/cors.py ALLOWED_HEADERS: "
        "a frontend on another origin could not send it"
    )
