"""Activity is recorded through the outbox only: no request path writes an event to the
analytics database directly (it would be lost when that database is down, or recorded
twice on a retry). Read from the source, so a new direct write fails CI."""

from __future__ import annotations

import ast

from tests.helpers import ROOT

# The writes of `activity_events` (datasources/analytics.py).
DIRECT_WRITES = {"record_activity", "record_events"}
# Who may call them: the outbox's delivery, and the demo seed writing history.
ALLOWED = {"resolvers/activity.py", "gateway/seed.py", "datasources/analytics.py"}


def direct_writers() -> list[str]:
    found = []
    for package in ("gateway", "datasources", "resolvers", "schema"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in ALLOWED:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=name)):
                named = node.attr if isinstance(node, ast.Attribute) else None
                if isinstance(node, ast.Name):
                    named = node.id
                if isinstance(node, ast.alias):
                    named = node.name
                if named in DIRECT_WRITES:
                    found.append(f"{name}:{getattr(node, 'lineno', '?')}: {named}")
    return found


def test_only_the_outbox_delivery_writes_activity_events() -> None:
    assert direct_writers() == []
