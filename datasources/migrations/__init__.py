"""Every source's schema versions, shipped with the package so an installed gateway can
migrate (README, "Migrations").

- `trades/` and `analytics/`: Alembic script directories (`versions/v0001_*.py`, ...),
  applied by datasources/_alembic.py; their version in `alembic_version_<source>`.
- `users.py`, `strategies.py`, `credentials.py`: each Mongo database's versions (indexes and
  document changes, with up and down steps), applied by datasources/_mongo_versions.py;
  their version in the database's `schema_migrations` collection.

A version is never edited once released: a change is a new version. The tests prove the
newest versions equal what the code declares (tests/datasources/test_migrations.py).
"""
