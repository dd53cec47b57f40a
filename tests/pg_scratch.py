"""A scratch schema on the dev PostgreSQL server for one test, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from gateway import db

PG_URL = os.environ.get(
    "HPCGW_TEST_DATABASE_URL", "postgresql+psycopg://hpcgw:hpcgw@127.0.0.1:5432/hpcgw_test"
)


@contextmanager
def scratch_schema_url(base_url: str = PG_URL, *, migrate: bool = True) -> Iterator[str]:
    """The URL of a fresh schema (through ``search_path``) on ``base_url``'s database,
    migrated unless ``migrate`` is False, so runs never collide; skips (or fails, with
    HPCGW_REQUIRE_CLUSTER=1) when the server does not answer."""
    admin = sa.create_engine(PG_URL)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("HPCGW_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"PostgreSQL required but unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    url = f"{base_url}?options=-csearch_path%3D{schema}"
    try:
        if migrate:
            db.upgrade(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
