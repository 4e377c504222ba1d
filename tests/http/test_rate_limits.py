"""Rate limits over HTTP, on apps of their own (the suite's shared app runs unlimited):
the defaults, the failed sign-in lockout, the per-IP limit before parsing, limits shared
through a real Redis, and Redis unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import bcrypt
import httpx
import pytest

from gateway.app import create_app
from gateway.core.auth import verify_password
from gateway.core.settings import Settings
from resolvers import accounts
from tests.faults import FaultProxy
from tests.helpers import PASSWORD, body_of, make_user, token_for
from tests.unit.test_ratelimit import REDIS_URL, closed_port_url, delete_prefix

LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { user { id } }
}
"""
ME = "{ me { id } }"


@pytest.fixture
async def limited(
    settings: Settings, sources
) -> AsyncIterator[Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]]:
    """Opens an app with rate limits on (the defaults, but for `overrides`) and a client
    for it; keys in Redis are under a prefix of this test's own, deleted after it."""
    del sources  # migrated and emptied by the shared app
    prefix = f"gw:test:{uuid.uuid4().hex}:"

    @contextlib.asynccontextmanager
    async def open_app(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        values = {"rate_limit_enabled": True, "rate_limit_key_prefix": prefix, **overrides}
        app = create_app(settings.model_copy(update=values))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
            ) as client,
        ):
            yield client

    yield open_app
    await delete_prefix(prefix)


@pytest.fixture
def password_checks(monkeypatch) -> list[str]:
    """Spy: one entry per Argon2 verification a sign-in runs."""
    checks: list[str] = []

    async def spy(password_hash: str | None, password: str) -> bool:
        checks.append(password)
        return await verify_password(password_hash, password)

    monkeypatch.setattr(accounts, "verify_password", spy)
    return checks


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": LOGIN, "variables": {"email": email, "password": password}}
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = body_of(response)
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return {"message": error["message"], **error["extensions"]}


async def test_the_default_login_bucket_admits_five_per_ip_then_refuses(limited, password_checks):
    async with limited() as client:
        answers = [
            await login(client, f"nobody{n}@example.com", "wrong password!") for n in range(6)
        ]

    assert [error_of(r)["code"] for r in answers[:5]] == ["UNAUTHENTICATED"] * 5
    refused = answers[5]
    assert refused.status_code == 200
    error = error_of(refused)
    # 10 per minute: a call every 6 s, less the time the five hashed passwords took.
    assert 1 <= error.pop("retryAfter") <= 6
    assert error == {"message": "Too many requests; try again later.", "code": "RATE_LIMITED"}
    assert refused.headers["retry-after"] == str(error_of(refused)["retryAfter"])
    assert "retry-after" not in answers[4].headers
    assert len(password_checks) == 5  # refused before any password was hashed


async def test_failed_sign_ins_lock_known_and_unknown_emails_alike(
    limited, sources, password_checks
):
    await make_user(sources, email="ada@example.com")
    async with limited(rate_limit_auth_burst=100, signin_lockout_base_seconds=0.5) as client:
        outcomes = {}
        for email in ("ada@example.com", "nobody@example.com"):
            failures = [await login(client, email, "wrong password!") for _ in range(6)]
            assert {error_of(r)["code"] for r in failures} == {"UNAUTHENTICATED"}
            outcomes[email] = error_of(await login(client, email.upper(), PASSWORD))
        checks = len(password_checks)
        assert (
            outcomes["ada@example.com"]
            == outcomes["nobody@example.com"]
            == {
                "message": "Too many failed sign-ins; try again later.",
                "code": "RATE_LIMITED",
                "retryAfter": 1,
            }
        )
        assert checks == 12  # the locked attempts hashed nothing, the right password neither

        await asyncio.sleep(0.6)  # the lock (0.5 s after the 6th failure) is over
        signed_in = body_of(await login(client, "ada@example.com", PASSWORD))
        assert "errors" not in signed_in
        # Signing in forgot the account's failures: one more is free again.
        assert error_of(await login(client, "ada@example.com", "wrong password!"))["code"] == (
            "UNAUTHENTICATED"
        )


async def test_wrong_passwords_against_an_imported_bcrypt_hash_lock_the_account_alike(
    limited, sources, password_checks
):
    old_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    await make_user(sources, email="old@example.com", password_hash=old_hash)
    async with limited(rate_limit_auth_burst=100, signin_lockout_base_seconds=0.5) as client:
        failures = [await login(client, "old@example.com", "wrong password!") for _ in range(6)]
        locked = error_of(await login(client, "old@example.com", PASSWORD))

    assert {error_of(r)["code"] for r in failures} == {"UNAUTHENTICATED"}
    assert locked == {
        "message": "Too many failed sign-ins; try again later.",
        "code": "RATE_LIMITED",
        "retryAfter": 1,
    }
    assert len(password_checks) == 6  # the locked attempt hashed nothing


async def test_the_per_ip_limit_refuses_before_the_request_is_read(limited):
    async with limited(rate_limit_ip_per_second=0.5, rate_limit_ip_burst=3) as client:
        for _ in range(3):
            assert (
                await client.get("/graphql", params={"query": "{ __typename }"})
            ).status_code == 200
        refused = await client.post(
            "/graphql", content=b"not json", headers={"Content-Type": "application/json"}
        )
        spoofed = await client.get(
            "/graphql",
            params={"query": "{ __typename }"},
            headers={"X-Forwarded-For": "198.51.100.7"},
        )
        health = await client.get("/healthz")

    assert refused.status_code == 429  # not 400: the body was never read
    assert refused.headers["retry-after"] == "2"
    assert error_of(refused) == {
        "message": "Too many requests; try again later.",
        "code": "RATE_LIMITED",
        "retryAfter": 2,
    }
    assert spoofed.status_code == 429  # the peer is no trusted proxy: its header is ignored
    assert health.status_code == 200  # only /graphql is limited


async def test_forwarded_for_names_the_client_behind_a_trusted_proxy(limited):
    async with limited(
        rate_limit_ip_per_second=0.5, rate_limit_ip_burst=1, trusted_proxies="127.0.0.1"
    ) as client:
        statuses = [
            (
                await client.get(
                    "/graphql",
                    params={"query": "{ __typename }"},
                    headers={"X-Forwarded-For": f"6.6.6.6, 198.51.100.{n}"},
                )
            ).status_code
            for n in (1, 2, 1)
        ]

    assert statuses == [200, 200, 429]


async def test_a_botnet_guessing_one_account_locks_new_addresses_never_the_owners(limited, sources):
    await make_user(sources, email="ada@example.com")

    def sign_in_from(client: httpx.AsyncClient, address: str, password: str) -> Any:
        return login_from(client, address, "ada@example.com", password)

    async with limited(
        trusted_proxies="127.0.0.1",
        rate_limit_auth_burst=100,
        signin_account_wide_free_failures=4,
    ) as client:
        owner = await sign_in_from(client, "192.0.2.7", PASSWORD)
        guesses = [
            await sign_in_from(client, f"203.0.113.{n}", f"guess number {n}{k}")
            for n in range(3)
            for k in range(2)
        ]
        newcomer = await sign_in_from(client, "198.51.100.1", PASSWORD)
        owner_again = await sign_in_from(client, "192.0.2.7", PASSWORD)

    assert body_of(owner)["data"]["login"]["user"]["id"]
    # Two per address is under every address's own lock; the fifth guess overall locked
    # the account for every address it has never signed in from.
    codes = [error_of(guess)["code"] for guess in guesses]
    assert codes == ["UNAUTHENTICATED"] * 5 + ["RATE_LIMITED"]
    assert error_of(newcomer)["code"] == "RATE_LIMITED"  # even with the right password
    assert body_of(owner_again)["data"]["login"]["user"]["id"]


async def test_registering_and_refreshing_make_an_address_known(limited):
    register = """mutation($email: String!, $password: String!) {
      register(email: $email, password: $password, firstName: "Ada", lastName: "L") {
        refreshToken } }"""
    refresh = "mutation($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }"

    async with limited(
        trusted_proxies="127.0.0.1",
        rate_limit_auth_burst=100,
        signin_account_wide_free_failures=1,
    ) as client:
        registered = body_of(
            await post_from(
                client, "192.0.2.7", register, email="ada@example.com", password=PASSWORD
            )
        )
        token = registered["data"]["register"]["refreshToken"]
        # A session kept by refresh tokens from a second address makes it known too.
        assert "errors" not in body_of(await post_from(client, "192.0.2.8", refresh, t=token))
        for n in range(3):  # a botnet locks the account for new addresses
            await login_from(client, f"203.0.113.{n}", "ada@example.com", "a wrong guess!")
        newcomer = await login_from(client, "198.51.100.1", "ada@example.com", PASSWORD)
        at_home = await login_from(client, "192.0.2.7", "ada@example.com", PASSWORD)
        at_work = await login_from(client, "192.0.2.8", "ada@example.com", PASSWORD)

    assert error_of(newcomer)["code"] == "RATE_LIMITED"
    assert body_of(at_home)["data"]["login"]["user"]["id"]
    assert body_of(at_work)["data"]["login"]["user"]["id"]


async def post_from(
    client: httpx.AsyncClient, address: str, query: str, **variables: str
) -> httpx.Response:
    """POST a query as the client at `address`, behind the trusted proxy 127.0.0.1."""
    return await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"X-Forwarded-For": address},
    )


async def login_from(
    client: httpx.AsyncClient, address: str, email: str, password: str
) -> httpx.Response:
    return await post_from(client, address, LOGIN, email=email, password=password)


async def test_refusals_are_counted_by_limit_in_the_metrics(limited, sources):
    from tests.http.test_observability import sample, scrape  # noqa: PLC0415

    await make_user(sources, email="ada@example.com")
    async with limited(rate_limit_auth_burst=2, signin_account_free_failures=0) as client:
        before = await scrape(client)
        await login(client, "ada@example.com", "wrong password!")  # counted, then locked
        await login(client, "ada@example.com", "wrong password!")  # signin: locked
        await login(client, "ada@example.com", "wrong password!")  # auth: bucket empty
        after = await scrape(client)

    def counted(limit: str) -> float:
        name = "gateway_rate_limited_total"
        return sample(after, name, limit=limit) - sample(before, name, limit=limit)

    assert {limit: counted(limit) for limit in ("signin", "auth", "ip", "query")} == {
        "signin": 1,
        "auth": 1,
        "ip": 0,
        "query": 0,
    }


async def test_a_signed_in_caller_spends_its_own_user_bucket(limited, sources, settings):
    from tests.helpers import signed_in  # noqa: PLC0415

    _user, token = await signed_in(sources, settings)
    async with limited(rate_limit_query_burst=2) as client:
        headers = {"Authorization": f"Bearer {token}"}
        answers = [
            body_of(await client.post("/graphql", json={"query": ME}, headers=headers))
            for _ in range(3)
        ]
        anonymous = body_of(await client.post("/graphql", json={"query": ME}))

    assert ["errors" in answer for answer in answers] == [False, False, True]
    assert answers[2]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    # The same address without a token has its own calls: refused by the permission only.
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_two_apps_on_one_redis_share_their_limits(limited):
    async with (
        limited(redis_url=REDIS_URL) as first,
        limited(redis_url=REDIS_URL) as second,
    ):
        for n in range(5):
            await login(first, f"nobody{n}@example.com", "wrong password!")
        refused = await login(second, "nobody@example.com", "wrong password!")
        ready = (await second.get("/readyz")).json()

    assert error_of(refused)["code"] == "RATE_LIMITED"
    assert ready["rateLimits"] == {"enabled": True, "backend": "redis", "redis": {"ok": True}}


async def test_with_redis_unreachable_limits_hold_in_memory_and_readyz_says_so(limited):
    async with limited(redis_url=closed_port_url()) as client:
        for n in range(5):
            await login(client, f"nobody{n}@example.com", "wrong password!")
        refused = await login(client, "nobody@example.com", "wrong password!")
        ready = await client.get("/readyz")

    assert error_of(refused)["code"] == "RATE_LIMITED"
    assert ready.status_code == 200
    limits = ready.json()["rateLimits"]
    assert limits["backend"] == "redis"
    assert limits["redis"]["ok"] is False
    assert limits["redis"]["fallback"] == "memory"


async def test_with_redis_unreachable_a_fail_closed_gateway_refuses_and_is_unready(limited):
    async with limited(redis_url=closed_port_url(), rate_limit_redis_down="closed") as client:
        refused = await client.post("/graphql", json={"query": "{ __typename }"})
        ready = await client.get("/readyz")

    assert refused.status_code == 429
    assert error_of(refused)["code"] == "RATE_LIMITED"
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"


async def test_the_limiter_returns_to_redis_once_it_answers_again(limited):
    async with (
        FaultProxy("127.0.0.1", 6379) as proxy,
        limited(redis_url=f"redis://127.0.0.1:{proxy.port}/0") as client,
    ):
        assert (await client.get("/readyz")).json()["rateLimits"]["redis"] == {"ok": True}
        await proxy.set("refuse")
        down = (await client.get("/readyz")).json()["rateLimits"]["redis"]
        assert (await login(client, "nobody@example.com", "wrong password!")).status_code == 200
        await proxy.set("pass")
        await asyncio.sleep(1.1)  # the limiter tries Redis again a second after it failed
        up = (await client.get("/readyz")).json()["rateLimits"]["redis"]

    assert down["ok"] is False
    assert up == {"ok": True}


async def test_a_wrong_current_password_counts_as_a_failed_sign_in(limited, sources, settings):
    user = await make_user(sources, email="grace@example.com")
    change = """mutation($p: String!) { changePassword(currentPassword: $p,
      newPassword: "an entirely new password") { accessToken } }"""
    headers = {"Authorization": f"Bearer {token_for(settings, user)}"}
    async with limited(rate_limit_sensitive_burst=100, signin_account_free_failures=2) as client:
        answers = [
            await client.post(
                "/graphql",
                json={"query": change, "variables": {"p": "wrong password!"}},
                headers=headers,
            )
            for _ in range(4)
        ]
        # The lock holds for `login` from this address too: one count for both.
        locked_login = await login(client, "grace@example.com", PASSWORD)

    codes = [error_of(answer)["code"] for answer in answers]
    assert codes[:3] == ["UNAUTHENTICATED"] * 3
    assert codes[3] == "RATE_LIMITED"
    assert error_of(locked_login)["code"] == "RATE_LIMITED"
