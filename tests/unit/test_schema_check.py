"""`gateway schema check`: breaking and dangerous changes between two SDL documents."""

from __future__ import annotations

import pytest

from gateway.cli import main
from gateway.schema_check import SchemaUnreadable, compare

OLD = """
enum Status { RUNNING STOPPED }
type Strategy {
  id: ID!
  name: String!
  status: Status!
}
type Query {
  strategies(first: Int = 20): [Strategy!]!
  strategy(id: ID!): Strategy
}
"""


def changes(new: str) -> list[str]:
    return compare(OLD, new).lines()


def test_the_same_schema_has_no_change():
    assert changes(OLD) == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("  name: String!\n", ""), "breaking FIELD_REMOVED: Field Strategy.name was removed."),
        (
            ("name: String!", "name: String"),
            "breaking FIELD_CHANGED_KIND: Field Strategy.name changed type from String! to String.",
        ),
        (
            ("strategy(id: ID!)", "strategy(id: ID!, owner: ID!)"),
            "breaking REQUIRED_ARG_ADDED: A required argument Query.strategy(owner:) was added.",
        ),
        (
            ("RUNNING STOPPED", "RUNNING"),
            "breaking VALUE_REMOVED_FROM_ENUM: Enum value Status.STOPPED was removed.",
        ),
        (
            ("first: Int = 20", "first: Int = 50"),
            "dangerous ARG_DEFAULT_VALUE_CHANGE: Query.strategies(first:) has changed defaultValue"
            " from 20 to 50.",
        ),
        (
            ("RUNNING STOPPED", "RUNNING STOPPED PAUSED"),
            "dangerous VALUE_ADDED_TO_ENUM: Enum value Status.PAUSED was added.",
        ),
    ],
)
def test_each_kind_of_change_is_named(edit: tuple[str, str], expected: str):
    assert changes(OLD.replace(*edit)) == [expected]


def test_the_command_exits_1_on_a_breaking_change_only(tmp_path, capsys):
    old, new, safe = tmp_path / "old.graphql", tmp_path / "new.graphql", tmp_path / "safe.graphql"
    old.write_text(OLD)
    new.write_text(OLD.replace("  name: String!\n", ""))
    safe.write_text(OLD.replace("first: Int = 20", "first: Int = 50"))

    assert main(["schema", "check", str(old), str(new)]) == 1
    assert "breaking FIELD_REMOVED: Field Strategy.name was removed." in capsys.readouterr().out
    assert main(["schema", "check", str(old), str(safe)]) == 0
    assert capsys.readouterr().out.startswith("dangerous ARG_DEFAULT_VALUE_CHANGE")


def test_an_unreadable_schema_is_named_and_exits_2(tmp_path):
    old, new = tmp_path / "old.graphql", tmp_path / "new.graphql"
    old.write_text(OLD)
    new.write_text("type Query { broken: Nope }")

    with pytest.raises(SchemaUnreadable, match="the new schema is not valid SDL"):
        compare(OLD, new.read_text())
    assert main(["schema", "check", str(old), str(new)]) == 2
