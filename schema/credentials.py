"""The Credentials type: a status view of a user's broker credentials, never a secret."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from datasources.credentials import CredentialsRecord


@strawberry.enum(description="A secret field of broker credentials.")
class CredentialField(Enum):
    ACCESS_TOKEN = "accessToken"
    BROKER_USERNAME = "brokerUsername"
    BROKER_PASSWORD = "brokerPassword"
    TOTP_SECRET = "totpSecret"
    API_KEY = "apiKey"
    API_SECRET = "apiSecret"


@strawberry.type(
    description="Which broker credentials a user has stored. Secrets are write-only: "
    "only whether each is configured, and a masked hint of the API key, can be read."
)
class Credentials:
    broker: str | None
    client_id: str | None
    configured_fields: list[CredentialField]
    api_key_hint: str | None
    updated_at: datetime | None

    @classmethod
    def from_record(cls, record: CredentialsRecord) -> Credentials:
        """The status view of a stored credentials record."""
        return cls(
            broker=record.broker,
            client_id=record.client_id,
            configured_fields=[CredentialField(name) for name in record.configured_fields],
            api_key_hint=record.api_key_hint,
            updated_at=record.updated_at,
        )

    @strawberry.field(description="Whether any secret is stored for the broker.")
    def configured(self) -> bool:
        return bool(self.configured_fields)
