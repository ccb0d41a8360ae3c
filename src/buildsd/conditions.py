"""Predicates of the builds table's partial indexes, shared by tables.py and the store.

A query repeats one word for word to use its index: SQLite takes a partial index only when the
query's WHERE holds the index's terms. They live apart from tables.py so that the store's
queries import no SQLAlchemy (start-up time, migrations/__init__.py)."""

from __future__ import annotations

QUEUED = "status = 'queued'"
RUNNING = "status IN ('initializing', 'running')"
UNFINISHED = "status IN ('queued', 'initializing', 'running')"
HOOK_BUILT = "deploy_hook_uuid IS NOT NULL"
