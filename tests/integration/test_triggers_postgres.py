"""The trigger store's tests on PostgreSQL (the production job store)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway import db
from gateway.triggers.store import TriggerStore
from tests.integration.test_doctor_postgres import schema_url  # the scratch-schema fixture
from tests.unit.test_trigger_store import *  # noqa: F403 - the same tests, another backend

pytestmark = pytest.mark.postgres

__all__ = ["schema_url"]


@pytest.fixture
def triggers(schema_url: str) -> Iterator[TriggerStore]:  # overrides the SQLite fixture
    db.upgrade(schema_url)
    engine = db.make_engine(schema_url, pool_size=8)
    yield TriggerStore(engine)
    engine.dispose()
