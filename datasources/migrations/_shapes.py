"""Index shapes several Mongo databases' versions share, frozen as they were released."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

# datasources/outbox.py: documents with events waiting for delivery.
OUTBOX_PENDING = IndexModel([("outbox.id", ASCENDING)], name="outbox_pending", sparse=True)
# datasources/idempotency.py: keys are forgotten once `expiresAt` has passed.
IDEMPOTENCY_EXPIRY = IndexModel([("expiresAt", ASCENDING)], expireAfterSeconds=0)
