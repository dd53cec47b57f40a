"""The job-store tests of tests/unit/test_store.py, re-run on the dev PostgreSQL server.

Each test gets its own schema (through ``search_path``) so runs never collide.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway import db
from gateway.jobs.store import JobStore
from tests.pg_scratch import PG_URL, scratch_schema_url
from tests.unit.test_store import *  # noqa: F403 - the same tests, another backend

pytestmark = pytest.mark.postgres

__all__ = ["PG_URL"]  # imported from here by other PostgreSQL tests


@pytest.fixture
def store() -> Iterator[JobStore]:  # overrides the SQLite fixture of the imported tests
    with scratch_schema_url() as url:
        engine = db.make_engine(url, pool_size=5)
        yield JobStore(engine)
        engine.dispose()
