"""The credentials database's versions (`schema_migrations` in it)."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from datasources._mongo_versions import MongoMigration, indexes_migration
from datasources.migrations._shapes import IDEMPOTENCY_EXPIRY, OUTBOX_PENDING

MIGRATIONS: tuple[MongoMigration, ...] = (
    indexes_migration(
        "0001",
        "indexes of credentials and idempotency_keys (as before versions)",
        {
            "credentials": [IndexModel([("userId", ASCENDING)], unique=True), OUTBOX_PENDING],
            "idempotency_keys": [IDEMPOTENCY_EXPIRY],
        },
    ),
)
