"""Configuration: one `Settings` object read from the environment and `.env`."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from gateway.core.rate_settings import RateLimitSettings

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"  # noqa: S105 - refused in production
# A fixed development key under the id "dev": refused in production like the JWT secret.
DEV_ENCRYPTION_KEYS = "dev:" + base64.b64encode(b"dev-only-credentials-key-32bytes").decode()
DEFAULT_BROKERS = "binance,zerodha,alpaca,interactive-brokers"
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

MAX_PAGE_SIZE = 100
# The default of MAX_STRATEGIES_PER_USER.
MAX_STRATEGIES_PER_USER = 100
# The default budget of one query, in the cost model's units (schema/_cost.py).
MAX_QUERY_COST = 5000


class Settings(RateLimitSettings):
    """Everything the gateway reads from its environment.

    The names are the platform's own (`MONGO_*_URI`, `*_DATABASE_URL`), so an
    existing `.env` works unchanged. The rate-limit settings are declared in
    `gateway/core/rate_settings.py`.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    gateway_env: Literal["development", "test", "production"] = "development"

    mongo_user_uri: str = "mongodb://127.0.0.1:27017/user_db"
    mongo_strategy_uri: str = "mongodb://127.0.0.1:27017/strategy_db"
    mongo_credentials_uri: str = "mongodb://127.0.0.1:27017/credentials_db"
    trades_database_url: str = "sqlite+aiosqlite:///./trades.sqlite3"
    analytics_database_url: str = "sqlite+aiosqlite:///./analytics.sqlite3"

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_issuer: str = "trading-gateway"
    jwt_audience: str = "trading-platform"
    # Tokens signed with the previous secret stay valid until they expire, so rotating
    # JWT_SECRET logs nobody out.
    jwt_previous_secret: SecretStr | None = None
    access_token_ttl_seconds: int = Field(default=900, gt=0)
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, gt=0)

    # "kid:base64-32-byte-key[,kid:key...]": the first encrypts, every one decrypts.
    credentials_encryption_keys: SecretStr = SecretStr(DEV_ENCRYPTION_KEYS)
    # The brokers a strategy may name, comma-separated.
    strategy_brokers: str = DEFAULT_BROKERS
    # How often `gateway serve` finishes interrupted account deletions.
    deletion_sweep_interval_seconds: float = Field(default=60.0, gt=0)
    # How long a completed account deletion waits before its settling pass, which
    # removes what requests authenticated before the deletion wrote meanwhile.
    deletion_settle_seconds: float = Field(default=60.0, ge=0)
    # How often `gateway serve` delivers activity events a request could not deliver itself
    # (the analytics database was down, an answer was lost).
    outbox_relay_interval_seconds: float = Field(default=5.0, gt=0)
    # The most strategies one account may hold at once (createStrategy refuses more).
    max_strategies_per_user: int = Field(default=MAX_STRATEGIES_PER_USER, gt=0, le=10_000)
    # How long an idempotency key remembers its first result.
    idempotency_ttl_seconds: int = Field(default=86400, gt=0)

    # How long one source call may take before its field is reported unavailable, by what
    # it does: a read by key or index range, an aggregate over many rows, a write.
    source_lookup_timeout_seconds: float = Field(default=1.0, gt=0)
    source_aggregate_timeout_seconds: float = Field(default=3.0, gt=0)
    source_write_timeout_seconds: float = Field(default=3.0, gt=0)
    # ...and one that removes everything of a user (a step of account deletion).
    source_bulk_timeout_seconds: float = Field(default=60.0, gt=0)
    # Per-source overrides, "source[.kind]=seconds,...": "trades.aggregate=5,analytics=2".
    source_timeouts: str = ""
    # A source's circuit breaker opens after this many failed calls in a row; calls then
    # fail at once for the cooldown, after which one probe decides.
    source_breaker_failures: int = Field(default=5, gt=0)
    source_breaker_cooldown_seconds: float = Field(default=5.0, gt=0)
    # At most this many calls run against one source at once (the bulkhead).
    source_concurrency: int = Field(default=32, gt=0)
    # How long any source call of one request may run, all together: none outlives it.
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    # How long /readyz waits for the sources; one slower than this is reported down.
    ready_timeout_seconds: float = Field(default=1.0, gt=0)
    # On SIGTERM: how long requests in flight may still take, and how long closing the
    # database clients may take after them (so the process exits whatever they do).
    shutdown_grace_seconds: int = Field(default=10, ge=0)
    shutdown_close_seconds: float = Field(default=5.0, gt=0)
    sql_pool_size: int = Field(default=10, gt=0)
    max_query_depth: int = Field(default=12, gt=0)
    # What one query may cost (schema/_cost.py); a dearer one is refused before it runs.
    max_query_cost: int = Field(default=MAX_QUERY_COST, gt=0)

    # --- Limits on every request (README "Limits on every request") ---
    # Body of a POST, in bytes: larger is refused 413 while it is read, never buffered.
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    # The document (the `query` text), in characters, and in tokens, comments counted.
    max_document_chars: int = Field(default=20_000, gt=0)
    max_query_tokens: int = Field(default=2_000, gt=0)
    max_query_aliases: int = Field(default=30, ge=0)
    # What one answer may hold: objects completed, and the bytes of its values.
    max_response_objects: int = Field(default=20_000, gt=0)
    max_response_bytes: int = Field(default=4_000_000, gt=0)
    # Parses and validations remembered: documents up to this many characters, this many.
    cache_max_document_chars: int = Field(default=8_000, ge=0)
    cached_documents: int = Field(default=256, ge=0)

    # --- Production mode (README "Production mode") ---
    # GraphiQL for browsers; unset: on, except with GATEWAY_ENV=production.
    graphiql: bool | None = None
    # Who may introspect: on (everyone), admin, off; unset: admin in production, else on.
    introspection: Literal["on", "admin", "off"] | None = None
    # "Did you mean ...?" in errors; unset: off in production, else on.
    field_suggestions: bool | None = None

    # --- Federation (README "Composing it into a larger graph") ---
    # Serve /graphql as an Apollo Federation 2 subgraph as well: `_service { sdl }` and
    # `_entities` on Query. Off: the public schema alone (schema.graphql), which is what
    # GraphiQL and introspection show; a router needs it on.
    federation: bool = False

    # --- Persisted operations (README "Persisted operations") ---
    # apq: Apollo's automatic persisted queries, and trusted operations by id as well;
    # trusted: only the trusted operations (`gateway operations add`), anything else refused
    # before it is parsed; off: a persisted query is answered PersistedQueryNotSupported.
    persisted_operations: Literal["apq", "trusted", "off"] = "apq"
    # The APQ queries a process keeps in memory (alone, or in front of Redis): at most this
    # many, of at most this many characters together (each within MAX_DOCUMENT_CHARS).
    apq_cache_entries: int = Field(default=10_000, ge=0)
    apq_cache_chars: int = Field(default=5_000_000, ge=0)
    # The Redis that shares APQ queries between processes; unset: REDIS_URL (the one of the
    # rate limits). Its own keeps a flood of registrations away from the sign-in lockouts.
    apq_redis_url: str | None = None
    # With a Redis, APQ queries are shared through it: kept this long after their last
    # registration, under this key prefix; a Redis call taking longer counts as a miss.
    apq_ttl_seconds: int = Field(default=7 * 86400, gt=0)
    apq_redis_key_prefix: str = "gw:apq:"
    apq_redis_timeout_seconds: float = Field(default=0.25, gt=0)
    # What the Redis store holds at most, all processes together: this many queries, of this
    # many characters (UTF-8 bytes) together; the oldest registrations are dropped first.
    apq_redis_max_entries: int = Field(default=10_000, ge=0)
    apq_redis_max_chars: int = Field(default=20_000_000, ge=0)
    # Each process holds the trusted operations in memory and reads the list again at most
    # this often: `gateway operations add` and `remove` take effect within this time.
    trusted_operations_cache_seconds: float = Field(default=10.0, gt=0)
    # The most trusted operations a process loads (the oldest first); beyond, a log line.
    trusted_operations_max: int = Field(default=50_000, gt=0)

    # --- Browsers on other origins (README "CORS") ---
    # The origins whose pages may call /graphql, comma-separated, each exactly
    # scheme://host[:port] ("https://app.example.com,http://localhost:5173"), or "*" for
    # any; unset: none (same-origin pages and servers need no CORS).
    cors_origins: str = ""
    # Send Access-Control-Allow-Credentials (for cookies or HTTP auth); refused with "*".
    # The gateway's tokens travel in the Authorization header, which needs none.
    cors_allow_credentials: bool = False
    # How long a browser may reuse a preflight's answer (Chromium keeps it 2 hours at most).
    cors_max_age_seconds: int = Field(default=600, ge=0)

    @property
    def apq_redis(self) -> str | None:
        """The Redis of the APQ store: APQ_REDIS_URL, else REDIS_URL, else none (memory)."""
        return self.apq_redis_url or self.redis_url

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """CORS_ORIGINS, parsed: the exact origins, or ("*",) for any."""
        return parse_cors_origins(self.cors_origins)

    @property
    def graphiql_enabled(self) -> bool:
        """Whether GraphiQL is served: GRAPHIQL, else everywhere but production."""
        return self.graphiql if self.graphiql is not None else not self.production

    @property
    def introspection_policy(self) -> Literal["on", "admin", "off"]:
        """Who may introspect: INTROSPECTION, else ADMIN only in production."""
        if self.introspection is not None:
            return self.introspection
        return "admin" if self.production else "on"

    @property
    def suggestions_enabled(self) -> bool:
        """Whether errors suggest names: FIELD_SUGGESTIONS, else everywhere but production."""
        if self.field_suggestions is not None:
            return self.field_suggestions
        return not self.production

    @property
    def production(self) -> bool:
        """Whether GATEWAY_ENV is production."""
        return self.gateway_env == "production"

    # Observability. `/metrics` (Prometheus text format) is served on the API port unless
    # METRICS_PORT names a port of its own (`gateway serve` starts it, on METRICS_HOST), so
    # it need not be reachable where the API is; METRICS_ENABLED=false serves it nowhere.
    metrics_enabled: bool = True
    metrics_port: int | None = Field(default=None, gt=0, lt=65536)
    metrics_host: str = "127.0.0.1"
    # OpenTelemetry tracing (the `otel` extra): one span per request and per source call,
    # exported as the standard OTEL_* variables say (OTLP over HTTP by default).
    tracing_enabled: bool = False
    # `json` (one object per line, for log collectors) or `text` (for reading by eye).
    log_format: Literal["text", "json"] = "json"
    # Add each request's query text to its log line: development only, for it can hold
    # anything a client typed. Variables (passwords, secrets) are never logged.
    log_query_text: bool = False

    @property
    def brokers(self) -> tuple[str, ...]:
        """The brokers a strategy may name."""
        return tuple(name.strip() for name in self.strategy_brokers.split(",") if name.strip())

    def source_deadlines(self, source: str) -> dict[str, float]:
        """The deadlines of one source's calls by kind (lookup, aggregate, write), with the
        overrides of SOURCE_TIMEOUTS applied."""
        deadlines = {
            "lookup": self.source_lookup_timeout_seconds,
            "aggregate": self.source_aggregate_timeout_seconds,
            "write": self.source_write_timeout_seconds,
            "bulk": self.source_bulk_timeout_seconds,
        }
        overrides = parse_source_timeouts(self.source_timeouts)
        # A whole source first, then its kinds: "trades.lookup=5,trades=2" keeps lookup 5.
        for (name, kind), seconds in sorted(overrides.items(), key=lambda item: bool(item[0][1])):
            if name == source:
                for each in (kind,) if kind else ("lookup", "aggregate", "write"):
                    deadlines[each] = seconds
        return deadlines

    @property
    def encryption_keys(self) -> list[tuple[str, bytes]]:
        """(key id, 32-byte key) pairs; the first one encrypts."""
        return parse_encryption_keys(self.credentials_encryption_keys.get_secret_value())

    @model_validator(mode="after")
    def _enforce_non_default_secrets(self) -> Self:
        self.encryption_keys  # noqa: B018 - parsed once here so a bad value fails at start
        parse_source_timeouts(self.source_timeouts)
        if self.allowed_origins == ("*",) and self.cors_allow_credentials:
            raise ValueError(
                "CORS_ORIGINS=* with CORS_ALLOW_CREDENTIALS=true would let any site read "
                "answers in its visitors' name: list the origins instead"
            )
        if not self.brokers:
            raise ValueError("STRATEGY_BROKERS must name at least one broker")
        if self.log_query_text and self.gateway_env != "development":
            raise ValueError("LOG_QUERY_TEXT is for development only: queries can hold secrets")
        secret = self.jwt_secret.get_secret_value()
        if self.gateway_env == "production":
            if secret == DEV_JWT_SECRET:
                raise ValueError("JWT_SECRET must be set to a non-default value in production")
            if len(secret) < 32:
                raise ValueError("JWT_SECRET must be at least 32 characters in production")
            if self.jwt_previous_secret is not None:
                previous = self.jwt_previous_secret.get_secret_value()
                if previous == DEV_JWT_SECRET or len(previous) < 32:
                    raise ValueError(
                        "JWT_PREVIOUS_SECRET must not be the default and must be at least "
                        "32 characters in production"
                    )
            dev_key = parse_encryption_keys(DEV_ENCRYPTION_KEYS)[0][1]
            if any(key == dev_key for _, key in self.encryption_keys):
                raise ValueError(
                    "CREDENTIALS_ENCRYPTION_KEYS must not hold the development key in production"
                )
        return self


_ORIGIN = re.compile(r"^(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?$")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def parse_cors_origins(value: str) -> tuple[str, ...]:
    """Parse CORS_ORIGINS: ("*",) for any origin, else each origin as a browser sends it
    (lower case, no default port); a path, a trailing slash or a wildcard inside one fails."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if "*" in entries:
        if len(entries) > 1:
            raise ValueError("CORS_ORIGINS: '*' allows every origin and must stand alone")
        return ("*",)
    origins: list[str] = []
    for entry in entries:
        match = _ORIGIN.match(entry.lower())
        if match is None or (match.group(3) is not None and not 0 < int(match.group(3)) < 65536):
            raise ValueError(
                f"CORS_ORIGINS entry {entry!r} is not an origin: it must be exactly "
                "scheme://host[:port] (such as 'https://app.example.com' or "
                "'http://localhost:5173'), with no path, trailing slash or wildcard"
            )
        scheme, host, port = match.groups()
        origin = f"{scheme}://{host}"
        if port is not None and port != _DEFAULT_PORTS[scheme]:
            origin += f":{int(port)}"
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


_SOURCE_TIMEOUT = re.compile(r"^([a-z][a-z0-9_]*)(?:\.(lookup|aggregate|write|bulk))?=([0-9.]+)$")


def parse_source_timeouts(value: str) -> dict[tuple[str, str | None], float]:
    """Parse `source[.kind]=seconds,...` into {(source, kind or None): seconds}."""
    overrides: dict[tuple[str, str | None], float] = {}
    for entry in filter(None, (piece.strip() for piece in value.split(","))):
        match = _SOURCE_TIMEOUT.match(entry)
        seconds = float(match.group(3)) if match and match.group(3).count(".") <= 1 else 0.0
        if match is None or seconds <= 0:
            raise ValueError(
                f"SOURCE_TIMEOUTS entry {entry!r} must look like 'trades=2' or "
                "'trades.aggregate=5' (kinds: lookup, aggregate, write; seconds > 0)"
            )
        overrides[(match.group(1), match.group(2))] = seconds
    return overrides


def parse_encryption_keys(value: str) -> list[tuple[str, bytes]]:
    """Parse `kid:base64key,...`; each key must decode to 32 bytes (AES-256)."""
    keys: list[tuple[str, bytes]] = []
    for entry in value.split(","):
        kid, sep, encoded = entry.strip().partition(":")
        if not sep or not _KEY_ID.match(kid):
            raise ValueError("CREDENTIALS_ENCRYPTION_KEYS entries must look like 'kid:base64key'")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"CREDENTIALS_ENCRYPTION_KEYS: key {kid!r} is not base64") from exc
        if len(key) != 32:
            raise ValueError(f"CREDENTIALS_ENCRYPTION_KEYS: key {kid!r} must be 32 bytes")
        if any(kid == known for known, _ in keys):
            raise ValueError(f"CREDENTIALS_ENCRYPTION_KEYS: key id {kid!r} is repeated")
        keys.append((kid, key))
    return keys
