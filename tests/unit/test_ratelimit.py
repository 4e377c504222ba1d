"""The limiter's algorithms, the same in memory and in a real Redis (127.0.0.1:6379 or
TEST_REDIS_URL, under a key prefix of this test's own, deleted after it)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.core.errors import RateLimited
from gateway.core.rate_settings import RateLimitSettings
from gateway.core.ratelimit import Bucket, Limiter, RequestLimits, client_ip

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def closed_port_url() -> str:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # nothing listens there once the socket is closed


async def delete_prefix(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def make_limiter(request) -> AsyncIterator[object]:
    """Builds limiters on the backend of the parameter; Redis keys are removed after."""
    prefix = f"gw:test:{uuid.uuid4().hex}:"
    made: list[Limiter] = []

    def make(**values: Any) -> Limiter:
        if request.param == "redis":
            values.setdefault("redis_url", REDIS_URL)
        limiter = Limiter(RateLimitSettings(_env_file=None, rate_limit_key_prefix=prefix, **values))
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()
    await delete_prefix(prefix)


async def spend(limiter: Limiter, times: int, subject: str = "user:1") -> list[int | None]:
    """retryAfter of each call (None: admitted)."""
    outcomes: list[int | None] = []
    for _ in range(times):
        try:
            await limiter.check(Bucket.AUTH, "login", subject)
        except RateLimited as exc:
            outcomes.append(exc.extensions["retryAfter"])
        else:
            outcomes.append(None)
    return outcomes


async def test_a_bucket_admits_its_burst_then_refuses_with_a_retry_after(make_limiter):
    limiter = make_limiter()  # the defaults: auth 10 per minute, burst 5

    outcomes = await spend(limiter, 7)

    assert outcomes[:5] == [None] * 5
    assert outcomes[5:] == [6, 6]  # one call per 6 s, rounded up to whole seconds
    assert await spend(limiter, 1, subject="user:2") == [None]  # another key, its own burst


async def test_a_bucket_refills_at_its_rate(make_limiter):
    limiter = make_limiter(rate_limit_auth_per_minute=600.0, rate_limit_auth_burst=2)

    assert await spend(limiter, 3) == [None, None, 1]
    await asyncio.sleep(0.12)  # one call per 0.1 s
    assert await spend(limiter, 2) == [None, 1]


async def test_refused_calls_spend_nothing(make_limiter):
    limiter = make_limiter(rate_limit_auth_per_minute=600.0, rate_limit_auth_burst=1)

    assert await spend(limiter, 20) == [None] + [1] * 19  # hammering does not push it away
    await asyncio.sleep(0.12)
    assert await spend(limiter, 1) == [None]


async def test_the_whole_request_limit_is_per_ip(make_limiter):
    limiter = make_limiter(rate_limit_ip_per_second=1.0, rate_limit_ip_burst=2)

    await limiter.check_request("10.0.0.1")
    await limiter.check_request("10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        await limiter.check_request("10.0.0.1")
    assert refused.value.as_extensions() == {"code": "RATE_LIMITED", "retryAfter": 1}
    await limiter.check_request("10.0.0.2")


async def fail(limiter: Limiter, account: str, ip: str = "10.0.0.1") -> int | None:
    """Check, then count a failure; the retryAfter if the check refused."""
    try:
        await limiter.check_sign_in(account=account, ip=ip)
    except RateLimited as exc:
        return int(exc.extensions["retryAfter"])
    await limiter.sign_in_failed(account=account, ip=ip)
    return None


async def test_failed_sign_ins_lock_an_account_for_a_doubling_capped_window(make_limiter):
    limiter = make_limiter(signin_lockout_base_seconds=0.3, signin_lockout_max_seconds=0.6)

    assert [await fail(limiter, "ada@example.com") for _ in range(6)] == [None] * 6
    assert await fail(limiter, "ada@example.com") == 1  # the 6th failure locked it 0.3 s
    await asyncio.sleep(0.35)
    assert await fail(limiter, "ada@example.com") is None  # the 7th: 0.6 s
    await asyncio.sleep(0.35)
    assert await fail(limiter, "ada@example.com") == 1  # still locked
    await asyncio.sleep(0.3)
    assert await fail(limiter, "ada@example.com") is None  # the 8th: capped at 0.6 s
    # Another account from the same address is not locked (its IP has 20 free failures).
    assert await fail(limiter, "bob@example.com") is None


async def test_an_account_is_locked_for_the_address_that_failed_never_for_its_owner_elsewhere(
    make_limiter,
):
    limiter = make_limiter(signin_account_free_failures=1)

    for _ in range(2):
        await limiter.sign_in_failed(account="ada@example.com", ip="10.0.0.1")
    with pytest.raises(RateLimited):
        await limiter.check_sign_in(account="ada@example.com", ip="10.0.0.1")
    # However often an attacker fails, the owner signs in from another address.
    await limiter.check_sign_in(account="ada@example.com", ip="10.0.0.3")


async def attempt_and_fail(limiter: Limiter, account: str, ip: str) -> None:
    """A sign-in as `login` makes it: checked (maybe counted at once), then failed."""
    counted = await limiter.check_sign_in(account=account, ip=ip)
    await limiter.sign_in_failed(account=account, ip=ip, counted=counted)


async def test_concurrent_guesses_from_many_addresses_cannot_pass_one_check_together(
    make_limiter,
):
    limiter = make_limiter(signin_account_wide_free_failures=3)

    async def guess(n: int) -> bool:
        try:
            counted = await limiter.check_sign_in(account="ada@example.com", ip=f"10.0.2.{n}")
        except RateLimited:
            return False
        await asyncio.sleep(0.05)  # the password hash, while the others check
        await limiter.sign_in_failed(account="ada@example.com", ip=f"10.0.2.{n}", counted=counted)
        return True

    passed = await asyncio.gather(*(guess(n) for n in range(50)))

    # Three free guesses, and the fourth, which locked the account: no more got through.
    assert sum(passed) == 4


async def test_a_successful_attempt_takes_back_its_count(make_limiter):
    limiter = make_limiter(signin_account_wide_free_failures=1)
    for n in range(5):  # the owner from five new addresses, each time right
        counted = await limiter.check_sign_in(account="ada@example.com", ip=f"10.0.3.{n}")
        await limiter.signed_in(account="ada@example.com", ip=f"10.0.3.{n}", counted=counted)

    await limiter.check_sign_in(account="ada@example.com", ip="10.0.3.9")  # not locked


async def test_guesses_from_many_addresses_lock_the_account_for_new_addresses_only(
    make_limiter,
):
    limiter = make_limiter(signin_account_free_failures=5, signin_account_wide_free_failures=6)
    await limiter.signed_in(account="ada@example.com", ip="192.0.2.7")  # the owner's address

    # A botnet: two failures from each of three addresses, under every per-address lock.
    for n in range(3):
        for _ in range(2):
            await attempt_and_fail(limiter, "ada@example.com", f"10.0.1.{n}")
    await attempt_and_fail(limiter, "ada@example.com", "10.0.1.9")  # six were free

    # The seventh locked the account for every address it was never signed in from...
    with pytest.raises(RateLimited) as refused:
        await limiter.check_sign_in(account="ada@example.com", ip="10.0.1.10")
    assert refused.value.extensions["retryAfter"] >= 1
    # ...but not for its owner's address, nor other accounts from the botnet's addresses.
    await limiter.check_sign_in(account="ada@example.com", ip="192.0.2.7")
    await limiter.check_sign_in(account="bob@example.com", ip="10.0.1.10")


async def test_failures_from_a_known_address_do_not_count_account_wide(make_limiter):
    limiter = make_limiter(signin_account_free_failures=5, signin_account_wide_free_failures=1)
    await limiter.signed_in(account="ada@example.com", ip="192.0.2.7")

    for _ in range(3):  # the owner mistyping at home
        await limiter.sign_in_failed(account="ada@example.com", ip="192.0.2.7")

    await limiter.check_sign_in(account="ada@example.com", ip="198.51.100.1")  # not locked


async def test_an_address_stops_being_known_after_the_setting(make_limiter):
    limiter = make_limiter(
        signin_account_wide_free_failures=0, signin_known_address_days=0.2 / 86_400
    )
    await limiter.signed_in(account="ada@example.com", ip="192.0.2.7")
    await limiter.sign_in_failed(account="ada@example.com", ip="10.0.0.1")
    await limiter.check_sign_in(account="ada@example.com", ip="192.0.2.7")

    await asyncio.sleep(0.25)

    with pytest.raises(RateLimited):
        await limiter.check_sign_in(account="ada@example.com", ip="192.0.2.7")


async def test_failed_sign_ins_lock_an_address_across_accounts(make_limiter):
    limiter = make_limiter(signin_ip_free_failures=3)

    for n in range(4):
        await limiter.sign_in_failed(account=f"user{n}@example.com", ip="10.0.0.9")
    with pytest.raises(RateLimited):
        await limiter.check_sign_in(account="someone@example.com", ip="10.0.0.9")
    await limiter.check_sign_in(account="someone@example.com", ip="10.0.0.10")


async def test_failures_are_forgotten_after_the_window_and_after_a_sign_in(make_limiter):
    limiter = make_limiter(signin_account_free_failures=1, signin_failure_window_seconds=0.2)

    await limiter.sign_in_failed(account="ada@example.com", ip="10.0.0.1")
    await asyncio.sleep(0.25)
    await limiter.sign_in_failed(account="ada@example.com", ip="10.0.0.1")
    await limiter.check_sign_in(account="ada@example.com", ip="10.0.0.1")  # a first failure

    await limiter.signed_in(account="ada@example.com", ip="10.0.0.1")
    await limiter.sign_in_failed(account="ada@example.com", ip="10.0.0.1")
    await limiter.check_sign_in(account="ada@example.com", ip="10.0.0.1")


async def test_redis_keys_hold_no_email_and_expire():
    prefix = f"gw:test:{uuid.uuid4().hex}:"
    limiter = Limiter(
        RateLimitSettings(_env_file=None, redis_url=REDIS_URL, rate_limit_key_prefix=prefix)
    )
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await limiter.sign_in_failed(account="ada@example.com", ip="10.0.0.1")
        await limiter.signed_in(account="ada@example.com", ip="10.0.0.2")
        await limiter.check(Bucket.QUERY, "me", "user:1")
        keys = sorted([key.decode() async for key in client.scan_iter(match=f"{prefix}*")])
        # per account and IP, per IP, account-wide, the known address, the query bucket
        assert len(keys) == 5
        assert not any("@" in key or "example" in key for key in keys)
        assert all([await client.pttl(key) > 0 for key in keys])
    finally:
        await client.aclose()
        await limiter.close()
        await delete_prefix(prefix)


async def test_with_redis_down_the_limiter_falls_back_to_memory_and_says_so():
    limiter = Limiter(
        RateLimitSettings(_env_file=None, redis_url=closed_port_url(), rate_limit_auth_burst=1)
    )
    try:
        await limiter.check(Bucket.AUTH, "login", "ip:10.0.0.1")
        with pytest.raises(RateLimited):  # still limited, in this process's memory
            await limiter.check(Bucket.AUTH, "login", "ip:10.0.0.1")
        status = await limiter.status()
        assert status["backend"] == "redis"
        assert status["redis"] == {
            "ok": False,
            "error": status["redis"]["error"],
            "fallback": "memory",
        }
        assert limiter.ready
    finally:
        await limiter.close()


async def test_with_redis_down_a_fail_closed_limiter_refuses_and_is_not_ready():
    limiter = Limiter(
        RateLimitSettings(
            _env_file=None, redis_url=closed_port_url(), rate_limit_redis_down="closed"
        )
    )
    try:
        with pytest.raises(RateLimited):
            await limiter.check(Bucket.QUERY, "me", "user:1")
        await limiter.status()
        assert not limiter.ready
    finally:
        await limiter.close()


async def test_with_redis_down_a_fail_open_limiter_admits_everything():
    limiter = Limiter(
        RateLimitSettings(
            _env_file=None,
            redis_url=closed_port_url(),
            rate_limit_redis_down="open",
            rate_limit_auth_burst=1,
        )
    )
    try:
        assert await spend(limiter, 5) == [None] * 5
    finally:
        await limiter.close()


async def test_request_limits_remember_the_longest_retry_after():
    limits = RequestLimits(
        limiter=Limiter(RateLimitSettings(_env_file=None, rate_limit_sensitive_burst=1)),
        ip="10.0.0.1",
    )
    await limits.check(Bucket.SENSITIVE, "deleteAccount", None)
    with pytest.raises(RateLimited):
        await limits.check(Bucket.SENSITIVE, "deleteAccount", None)
    assert limits.retry_after == 10


TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", [], "203.0.113.5"),
        # An untrusted peer's X-Forwarded-For is ignored: it cannot choose its bucket.
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),
        ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        # The rightmost untrusted hop: what the client wrote itself lies left of it.
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1, 10.1.2.3"], "198.51.100.1"),
        ("127.0.0.1", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
        ("127.0.0.1", ["garbage, 10.1.2.3"], "10.1.2.3"),
        ("127.0.0.1", [], "127.0.0.1"),
        (None, ["198.51.100.1"], "unknown"),
    ],
)
def test_the_client_ip_trusts_forwarded_for_only_from_trusted_proxies(peer, forwarded, expected):
    assert client_ip(peer, forwarded, TRUSTED) == expected


def test_trusted_proxies_must_be_addresses_or_networks():
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        RateLimitSettings(_env_file=None, trusted_proxies="10.0.0.0/8,proxy.local")


def test_an_ipv6_client_is_its_64_and_a_mapped_ipv4_client_its_address():
    one = client_ip("2001:db8:1:2::1", [], [])
    other = client_ip("2001:db8:1:2:ffff:1:2:3", [], [])
    assert one == other == "2001:db8:1:2::/64"
    assert client_ip("2001:db8:1:3::1", [], []) != one
    assert client_ip("::ffff:10.0.0.7", [], []) == "10.0.0.7"
    assert client_ip("::1", [], []) == "::1"
