"""Configuration: one `Settings` object read from the environment and `.env`."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"  # noqa: S105 - refused in production

MAX_PAGE_SIZE = 100


class Settings(BaseSettings):
    """Everything the gateway reads from its environment.

    The names are the platform's own (`MONGO_*_URI`, `*_DATABASE_URL`), so an
    existing `.env` works unchanged.
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
    access_token_ttl_seconds: int = Field(default=900, gt=0)

    # How long a request waits on one source before it is reported unavailable.
    source_timeout_seconds: float = Field(default=5.0, gt=0)
    sql_pool_size: int = Field(default=10, gt=0)
    max_query_depth: int = Field(default=12, gt=0)
    graphiql: bool = True

    @model_validator(mode="after")
    def _enforce_non_default_secrets(self) -> Self:
        secret = self.jwt_secret.get_secret_value()
        if self.gateway_env == "production":
            if secret == DEV_JWT_SECRET:
                raise ValueError("JWT_SECRET must be set to a non-default value in production")
            if len(secret) < 32:
                raise ValueError("JWT_SECRET must be at least 32 characters in production")
        return self
