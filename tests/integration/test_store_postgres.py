"""The job-store tests of tests/unit/test_store.py, re-run on the dev PostgreSQL server.

Each test gets its own schema (through ``search_path``) so runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gateway import db
from gateway.jobs.store import JobStore
from tests.unit.test_store import *  # noqa: F403 - the same tests, another backend

pytestmark = pytest.mark.postgres

PG_URL = os.environ.get(
    "HPCGW_TEST_DATABASE_URL", "postgresql+psycopg://hpcgw:hpcgw@127.0.0.1:5432/hpcgw_test"
)


@pytest.fixture
def store() -> Iterator[JobStore]:  # overrides the SQLite fixture of the imported tests
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            schema = f"t_{uuid.uuid4().hex[:12]}"
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("HPCGW_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"PostgreSQL required but unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    db.upgrade(url)
    engine = db.make_engine(url, pool_size=5)
    yield JobStore(engine)
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
