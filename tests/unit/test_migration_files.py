"""Every migration file ships with the package, so an installed gateway can migrate."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch

from tests.helpers import ROOT


def test_every_migration_file_is_installed_with_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = config["tool"]["setuptools"]["package-data"]["datasources"]
    package = ROOT / "datasources"
    files = [
        path
        for path in (package / "migrations").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]

    assert any(path.name.startswith("v0001_") for path in files)
    for path in files:
        relative = path.relative_to(package).as_posix()
        if path.suffix == ".py":
            # A module is installed only inside a package (a folder with __init__.py).
            assert (path.parent / "__init__.py").exists(), f"{relative}: not in a package"
        else:
            assert any(fnmatch(relative, pattern) for pattern in data), (
                f"{relative}: add it to [tool.setuptools.package-data] datasources"
            )
