"""``hpcgw doctor``'s database check on the dev PostgreSQL server (own schema per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gateway import db
from gateway.doctor import check_database
from tests.pg_scratch import PG_URL, scratch_schema_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def schema_url() -> Iterator[str]:
    """A URL whose ``search_path`` is a fresh, empty schema (dropped afterwards)."""
    with scratch_schema_url(migrate=False) as url:
        yield url


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
