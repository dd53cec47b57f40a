"""``hpcgw doctor``'s database check on the dev PostgreSQL server (own schema per test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gateway import db
from gateway.doctor import check_database

pytestmark = pytest.mark.postgres

PG_URL = os.environ.get(
    "HPCGW_TEST_DATABASE_URL", "postgresql+psycopg://hpcgw:hpcgw@127.0.0.1:5432/hpcgw_test"
)


@pytest.fixture
def schema_url() -> Iterator[str]:
    """A URL whose ``search_path`` is a fresh, empty schema (dropped afterwards)."""
    admin = sa.create_engine(PG_URL)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("HPCGW_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"PostgreSQL required but unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_empty_then_migrated_schema(schema_url: str) -> None:
    empty = check_database(schema_url)
    assert not empty.ok and "hpcgw db upgrade" in empty.detail
    db.upgrade(schema_url)
    migrated = check_database(schema_url)
    assert migrated.ok, migrated.detail
    assert "(head)" in migrated.detail


def test_a_wrong_password_is_reported_without_the_password() -> None:
    url = sa.engine.make_url(PG_URL).set(password="not-the-Secret-42")
    finding = check_database(url.render_as_string(hide_password=False))
    assert not finding.ok
    assert "cannot connect" in finding.detail
    assert "not-the-Secret-42" not in finding.detail
