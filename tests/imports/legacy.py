"""Generated data in the single-database algo-runner shape (`algo_runner_db.users`): every
user embeds its strategies and its broker credentials in plaintext, with the oddities a
long-lived database collects (duplicate and blank names, odd statuses, copied ids,
missing and blank fields, numbers where text is expected, hashes of unknown formats)."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
from bson import ObjectId

# Cost 4 (bcrypt's least), so thousands of users generate quickly; verifying is the same.
PASSWORDS = [f"old password {k}" for k in range(3)]
HASHES = [bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode() for p in PASSWORDS]
NAMES = ["Momentum", "Mean Reversion", "Breakout", "Scalper", "  ", "Iron Condor", "momentum"]
STATUSES = [
    "running", "stopped", "paused", "error", "Running", "STOPPED", "crashed", "deployed",
    None, "weird-status", "", "active", "on hold",
]  # fmt: skip
SECRETS = ("accessToken", "brokerUsername", "brokerPassword", "totpSecret", "apiKey", "apiSecret")
START = datetime(2023, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LegacyUser:
    """A generated user, and the password its hash is of (None when it has no usable one)."""

    doc: dict[str, Any]
    password: str | None


def _object_id(rng: random.Random, index: int) -> ObjectId:
    return ObjectId(struct.pack(">I", int(START.timestamp()) + index * 60) + rng.randbytes(8))


def _strategies(rng: random.Random, index: int) -> list[dict[str, Any]]:
    embedded: list[dict[str, Any]] = []
    for place in range(rng.choice([0, 0, 1, 2, 3, 4, 6])):
        strategy: dict[str, Any] = {
            "name": rng.choice(NAMES),
            "code": f"def run():\n    return {index * 10 + place}\n",
            "status": rng.choice(STATUSES),
        }
        if rng.random() < 0.5:
            strategy["containerId"] = f"container-{index}-{place}"
        if rng.random() < 0.6:  # Mongoose gives subdocuments ids; older entries have none
            strategy["_id"] = ObjectId()
        if embedded and rng.random() < 0.1:  # copied from the entry before, id and all
            strategy = dict(embedded[-1])
        if strategy.get("status") is None:
            strategy.pop("status", None)
        embedded.append(strategy)
    return embedded


def _credentials(rng: random.Random, index: int) -> dict[str, Any]:
    fields: dict[str, Any] = {"broker": "TradeHull" if rng.random() < 0.8 else "Zerodha"}
    if rng.random() < 0.3:
        return fields  # never configured: only the schema's default broker
    fields["clientId"] = index if rng.random() < 0.3 else f"CL{index:05d}"
    for name in SECRETS:
        roll = rng.random()
        if roll < 0.6:
            fields[name] = f"{name}-plaintext-{index}-{rng.randrange(10**9)}"
        elif roll < 0.7:
            fields[name] = ""
    return fields


def legacy_users(count: int, *, seed: int = 12) -> list[LegacyUser]:
    """`count` users in the algo-runner shape, the same for the same seed."""
    rng = random.Random(seed)  # noqa: S311 - test data, not crypto
    users: list[LegacyUser] = []
    for index in range(count):
        oid = _object_id(rng, index)
        kind = rng.randrange(len(HASHES))
        password_hash: str | None = rng.choice(["$2a$", "$2b$", "$2y$"]) + HASHES[kind][4:]
        password: str | None = PASSWORDS[kind]
        if index % 401 == 7:
            password_hash, password = "hunter2 in plaintext", None
        elif index % 503 == 11:
            password_hash, password = "$2x$04$" + HASHES[kind][7:], None
        elif index % 607 == 13:
            password_hash, password = None, None
        email = f"Trader{index}@Example.com"
        if index % 499 == 5 and index > 5:
            email = f"  trader{index - 5}@example.COM "  # an earlier user's, differently cased
        doc: dict[str, Any] = {
            "_id": oid,
            "email": email,
            "firstName": f"First{index}",
            "lastName": rng.choice([f"Last{index}", None, ""]),
            "phone": rng.choice([f"+91 98{index:08d}", None, 9800000000 + index]),
            "strategies": _strategies(rng, index),
            "createdAt": (START + timedelta(minutes=index)).replace(tzinfo=None),
            "updatedAt": START + timedelta(minutes=index, seconds=30),
            **_credentials(rng, index),
        }
        if password_hash is not None:
            doc["password"] = password_hash
        if rng.random() < 0.05:
            del doc["createdAt"]
        users.append(LegacyUser(doc, password))
    return users
