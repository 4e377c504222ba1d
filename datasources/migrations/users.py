"""The users database's versions (`schema_migrations` in it)."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from datasources._mongo_versions import MongoMigration, indexes_migration
from datasources.migrations._shapes import OUTBOX_PENDING

MIGRATIONS: tuple[MongoMigration, ...] = (
    indexes_migration(
        "0001",
        "indexes of users, refresh_tokens and persisted_operations (as before versions)",
        {
            "users": [IndexModel([("email", ASCENDING)], unique=True), OUTBOX_PENDING],
            "refresh_tokens": [
                IndexModel([("tokenHash", ASCENDING)], unique=True, sparse=True),
                IndexModel([("familyId", ASCENDING)]),
                IndexModel([("userId", ASCENDING)]),
                IndexModel([("expiresAt", ASCENDING)], expireAfterSeconds=0),
                OUTBOX_PENDING,
            ],
            "persisted_operations": [
                IndexModel([("addedAt", ASCENDING), ("_id", ASCENDING)], name="added")
            ],
        },
    ),
)
