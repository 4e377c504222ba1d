"""The strategies database's versions (`schema_migrations` in it)."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from datasources._mongo_versions import MongoMigration, indexes_migration
from datasources.migrations._shapes import IDEMPOTENCY_EXPIRY, OUTBOX_PENDING

MIGRATIONS: tuple[MongoMigration, ...] = (
    indexes_migration(
        "0001",
        "indexes of strategies and idempotency_keys (as before versions)",
        {
            "strategies": [
                IndexModel([("userId", ASCENDING)]),
                IndexModel([("userId", ASCENDING), ("name", ASCENDING)], unique=True),
                IndexModel([("userId", ASCENDING), ("status", ASCENDING)]),
                OUTBOX_PENDING,
            ],
            "idempotency_keys": [IDEMPOTENCY_EXPIRY],
        },
    ),
)
