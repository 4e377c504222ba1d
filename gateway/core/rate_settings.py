"""The rate-limit settings, a part of `Settings` kept in a module of its own."""

from __future__ import annotations

import ipaddress
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimitSettings(BaseSettings):
    """Rate limits and the failed sign-in slow-down (README, "Rate limits")."""

    # Shared state of every gateway process (rate limits first); unset: memory, per process.
    redis_url: str | None = None
    rate_limit_enabled: bool = True
    # Prefix of every rate-limit key in Redis (several gateways may share one Redis).
    rate_limit_key_prefix: str = "gw:rl:"
    # What the limiter does while Redis does not answer: `memory` (each process limits on
    # its own), `open` (no limit) or `closed` (every limited request is RATE_LIMITED).
    rate_limit_redis_down: Literal["memory", "open", "closed"] = "memory"
    rate_limit_redis_timeout_seconds: float = Field(default=0.25, gt=0)
    # Addresses (or CIDR networks) of the reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: str = ""

    # Every request to /graphql, per client IP, before it is read (HTTP 429).
    rate_limit_ip_per_second: float = Field(default=20.0, gt=0)
    rate_limit_ip_burst: int = Field(default=100, gt=0)
    # Per root field, per user (client IP when not signed in), by the field's bucket.
    rate_limit_query_per_minute: float = Field(default=600.0, gt=0)
    rate_limit_query_burst: int = Field(default=120, gt=0)
    rate_limit_mutation_per_minute: float = Field(default=120.0, gt=0)
    rate_limit_mutation_burst: int = Field(default=30, gt=0)
    rate_limit_auth_per_minute: float = Field(default=10.0, gt=0)
    rate_limit_auth_burst: int = Field(default=5, gt=0)
    rate_limit_sensitive_per_minute: float = Field(default=6.0, gt=0)
    rate_limit_sensitive_burst: int = Field(default=3, gt=0)

    # Failed sign-ins: this many per account (per IP) are free within the window; each
    # further one locks the account (the IP) for a window that doubles from the base, up
    # to the maximum. The count is forgotten a window after the last failure.
    signin_account_free_failures: int = Field(default=5, ge=0)
    signin_ip_free_failures: int = Field(default=20, ge=0)
    # Failed sign-ins of one account from every address it was not signed in from within
    # SIGNIN_KNOWN_ADDRESS_DAYS: past this many, the account locks for such addresses (a
    # botnet's guesses slow down; its owner's known addresses are never locked by it).
    signin_account_wide_free_failures: int = Field(default=20, ge=0)
    signin_known_address_days: float = Field(default=30.0, gt=0)
    signin_lockout_base_seconds: float = Field(default=2.0, gt=0)
    signin_lockout_max_seconds: float = Field(default=300.0, gt=0)
    signin_failure_window_seconds: float = Field(default=900.0, gt=0)

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        """TRUSTED_PROXIES, parsed."""
        return parse_networks(self.trusted_proxies)

    @model_validator(mode="after")
    def _check_rate_limits(self) -> Self:
        parse_networks(self.trusted_proxies)
        if self.signin_lockout_max_seconds < self.signin_lockout_base_seconds:
            raise ValueError("SIGNIN_LOCKOUT_MAX_SECONDS must be at least the base")
        return self


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or CIDR networks (`10.0.0.0/8,127.0.0.1`)."""
    networks = []
    for entry in filter(None, (piece.strip() for piece in value.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"TRUSTED_PROXIES: {entry!r} is no address or network") from exc
    return tuple(networks)
