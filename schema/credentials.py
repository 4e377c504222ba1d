"""Broker credentials: the status view (never a secret) and the mutations that write them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from resolvers import credentials as credentials_resolvers
from resolvers.records import CLIENT_ID, SECRET_FIELDS, CredentialsRecord
from schema._base import Info
from schema._cost import ListSize
from schema._limits import Bucket, limited
from schema._permissions import IsSignedIn


@strawberry.enum(description="A secret field of broker credentials.")
class CredentialField(Enum):
    ACCESS_TOKEN = strawberry.enum_value("accessToken", description="The broker session token.")
    BROKER_USERNAME = strawberry.enum_value(
        "brokerUsername", description="The broker account's user name."
    )
    BROKER_PASSWORD = strawberry.enum_value(
        "brokerPassword", description="The broker account's password."
    )
    TOTP_SECRET = strawberry.enum_value(
        "totpSecret", description="The seed of the broker's one-time codes."
    )
    API_KEY = strawberry.enum_value("apiKey", description="The broker API key.")
    API_SECRET = strawberry.enum_value("apiSecret", description="The broker API secret.")


@strawberry.type(
    description="Which broker credentials a user has stored. Secrets are write-only: "
    "only whether each is configured, and a masked hint of the API key, can be read."
)
class Credentials:
    broker: str | None = strawberry.field(description="The broker they are for.")
    client_id: str | None = strawberry.field(
        description="The broker account's client id (not a secret)."
    )
    configured_fields: list[CredentialField] = strawberry.field(
        description="Which secrets are stored (their values never leave the gateway).",
        directives=[ListSize(assumed_size=len(SECRET_FIELDS))],
    )
    api_key_hint: str | None = strawberry.field(
        description="The API key's last 4 characters, masked; null without an API key."
    )
    updated_at: datetime | None = strawberry.field(description="When they last changed.")

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


_SECRET_HELP = "Omit to keep the stored value, null to clear it; 1 to 4096 characters."


@strawberry.input(
    description="The viewer's broker credentials to store. Fields left out keep their "
    "stored values; an explicit null clears one. Secrets are encrypted at rest and can "
    "never be read back."
)
class SaveCredentialsInput:
    broker: str = strawberry.field(description="One of the brokers the gateway is set up for.")
    client_id: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The broker account's client id (not a secret). Omit to keep, null to clear; "
        "at most 128 characters.",
    )
    access_token: str | None = strawberry.field(default=strawberry.UNSET, description=_SECRET_HELP)
    broker_username: str | None = strawberry.field(
        default=strawberry.UNSET, description=_SECRET_HELP
    )
    broker_password: str | None = strawberry.field(
        default=strawberry.UNSET, description=_SECRET_HELP
    )
    totp_secret: str | None = strawberry.field(default=strawberry.UNSET, description=_SECRET_HELP)
    api_key: str | None = strawberry.field(
        default=strawberry.UNSET,
        description=_SECRET_HELP + " Its last 4 characters become apiKeyHint.",
    )
    api_secret: str | None = strawberry.field(default=strawberry.UNSET, description=_SECRET_HELP)
    client_mutation_id: str | None = strawberry.field(
        default=None,
        description="An idempotency key: repeating the request with the same key returns "
        "the credentials it saved (as they are now) instead of saving again; a different "
        "input under the same key is a CONFLICT. At most 128 characters.",
    )

    def changes(self) -> dict[str, str | None]:
        """The fields the client sent (`clientId` and the secrets), by their stored names;
        None means clear."""
        sent = {name: getattr(self, _attribute(name)) for name in (CLIENT_ID, *SECRET_FIELDS)}
        return {name: value for name, value in sent.items() if value is not strawberry.UNSET}


def _attribute(stored: str) -> str:
    """The input's attribute for a stored name (`apiKey` -> `api_key`)."""
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in stored)


@strawberry.type(description="Storing broker credentials.")
class CredentialMutations:
    @limited(Bucket.SENSITIVE)
    @strawberry.mutation(
        description="Create or update the viewer's broker credentials; returns their status "
        "view, never a secret.",
        permission_classes=[IsSignedIn],
    )
    async def save_credentials(
        self,
        info: Info,
        input: Annotated[  # noqa: A002 - the argument's GraphQL name
            SaveCredentialsInput, strawberry.argument(description="What to store.")
        ],
    ) -> Credentials:
        record = await credentials_resolvers.save_credentials(
            info.context,
            broker=input.broker,
            changes=input.changes(),
            client_mutation_id=input.client_mutation_id,
        )
        return Credentials.from_record(record)

    @limited(Bucket.SENSITIVE)
    @strawberry.mutation(
        description="Remove the viewer's broker credentials. True when there were some, "
        "false when there were none (deleting twice is harmless).",
        permission_classes=[IsSignedIn],
    )
    async def delete_credentials(self, info: Info) -> bool:
        return await credentials_resolvers.delete_credentials(info.context)
