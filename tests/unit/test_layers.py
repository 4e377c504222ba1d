"""The layers import one way, bottom to top; read from the source, so a wrong import fails CI.

core        gateway.core        errors, settings, crypto, tokens and passwords
datasources datasources         the sources, their records and loaders
service     resolvers           context, queries, mutations, figures, checks, the saga
schema      schema              Strawberry types and fields
shell       gateway (the rest)  app factory, HTTP, CLI, demo, seed
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = ("gateway", "datasources", "resolvers", "schema")

# What each layer may import of ours (itself included).
ALLOWED = {
    "core": {"core"},
    "datasources": {"core", "datasources"},
    "service": {"core", "datasources", "service"},
    "schema": {"core", "service", "schema"},
    "shell": {"core", "datasources", "service", "schema", "shell"},
}
# Attributes a layer must not read. The schema reaches data only through the service layer:
# no loader or source in sight. The service layer calls sources, whose boundary maps driver
# errors: never their raw clients (`.db`, `.engine`), which would bypass it.
FORBIDDEN_ATTRIBUTES = {
    "schema": {"loaders", "sources"},
    "service": {"db", "engine"},
}


def layer_of(module: str) -> str | None:
    """The layer of one of our modules; None for a module that is not ours."""
    top = module.split(".", maxsplit=1)[0]
    if module == "gateway.core" or module.startswith("gateway.core."):
        return "core"
    return {
        "datasources": "datasources",
        "resolvers": "service",
        "schema": "schema",
        "gateway": "shell",
    }.get(top)


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.message}"


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or node.module is None:
        return []  # relative imports are not used in this project
    # `from datasources import users` imports the module datasources.users.
    return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]


def _private_outside(importer: str, imported: str) -> bool:
    """Whether `imported` names a private module (`pkg._mod`) of a package `importer` is not in."""
    parts = imported.split(".")
    for index, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            package = ".".join(parts[:index])
            return not (importer == package or importer.startswith(package + "."))
    return False


def check_module(module: str, source: str) -> list[Violation]:
    """Every layering rule `module` (whose text is `source`) breaks."""
    layer = layer_of(module)
    assert layer is not None, module
    tree = ast.parse(source)
    found: list[Violation] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = _imported(node)
            wrong = [name for name in names if layer_of(name) not in (None, *ALLOWED[layer])]
            if wrong:
                message = f"{layer} imports {wrong[0]} ({layer_of(wrong[0])})"
                found.append(Violation(module, node.lineno, message))
            private = [name for name in names if _private_outside(module, name)]
            if private:
                message = f"imports private module {private[0]}"
                found.append(Violation(module, node.lineno, message))
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES.get(layer, ()):
            message = f"{layer} reads '.{node.attr}'"
            found.append(Violation(module, node.lineno, message))
    return found


def our_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def test_every_module_imports_only_the_layers_below_it() -> None:
    violations = [
        str(violation)
        for module, path in our_modules().items()
        for violation in check_module(module, path.read_text())
    ]
    assert violations == []


def test_every_layer_has_modules() -> None:
    layers = {layer_of(module) for module in our_modules()}
    assert layers == set(ALLOWED)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("gateway.core.settings", "from datasources import Sources", "core imports datasources"),
        ("datasources.users", "import resolvers.context", "datasources imports resolvers.context"),
        ("datasources.users", "from gateway.app import create_app", "datasources imports gateway"),
        ("resolvers.trades", "from schema.trades import Trade", "service imports schema.trades"),
        ("schema.users", "from datasources.users import UserRecord", "schema imports datasources"),
        ("schema.users", "from datasources import users", "schema imports datasources"),
        (
            "resolvers.trades",
            "from datasources._sql import read",
            "private module datasources._sql",
        ),
        ("schema.users", "x = info.context.loaders.users", "schema reads '.loaders'"),
        ("schema.users", "x = ctx.sources.users", "schema reads '.sources'"),
        ("resolvers.accounts", "x = ctx.sources.users.db", "service reads '.db'"),
        ("resolvers.activity", "ctx.sources.analytics.engine.begin()", "service reads '.engine'"),
        (
            "schema.users",
            "def f():\n    from datasources.users import UserRecord\n",
            "schema imports datasources",
        ),
    ],
)
def test_the_checker_catches_each_kind_of_violation(
    module: str, source: str, expected: str
) -> None:
    messages = [violation.message for violation in check_module(module, source)]
    assert any(expected in message for message in messages), messages


def test_the_checker_allows_what_the_layers_allow() -> None:
    assert check_module("datasources._sql", "from datasources._batch import Page") == []
    assert check_module("schema.users", "from resolvers.trades import trade_page") == []
    assert check_module("gateway.cli", "from datasources import Sources") == []
    assert (
        check_module("gateway.core.auth", "from gateway.core.errors import Unauthenticated") == []
    )
