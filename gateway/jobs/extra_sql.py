"""Per-key writes of a job's ``extra`` JSON column, done by the database.

Several writers keep their own sub-record in ``extra`` (the monitor's
``missing_since``, the finaliser's and the retention's ``publication``, the
callbacks' ``callbacks``, the dispatcher's ``staged_inputs``). Replacing the
whole column from a copy read earlier loses a key another writer set in
between; :func:`patched_extra` instead builds an UPDATE expression that sets
(or, for ``None``, removes) only the given top-level keys of the value the
row holds *at write time* -- SQLite ``json_set``/``json_remove``, PostgreSQL
``jsonb`` ``||`` and ``-`` -- so concurrent writers of different keys never
undo each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def patched_extra(
    column: sa.Column[Any], changes: Mapping[str, Any], dialect: str
) -> ColumnElement[Any]:
    """``column`` with ``changes`` applied key by key (``None`` removes a key)."""
    bad = [k for k in changes if not _KEY.match(k)]
    if bad or not changes:
        raise ValueError(f"not extra keys: {bad!r}")
    if dialect == "postgresql":
        return _postgresql(column, changes)
    if dialect == "sqlite":
        return _sqlite(column, changes)
    raise ValueError(f"per-key extra updates are not written for {dialect!r}")


def _sqlite(column: sa.Column[Any], changes: Mapping[str, Any]) -> ColumnElement[Any]:
    expr: ColumnElement[Any] = sa.case(
        (sa.func.json_type(column) == "object", column), else_=sa.literal("{}")
    )
    for key, value in changes.items():
        path = f'$."{key}"'
        if value is None:
            expr = sa.func.json_remove(expr, path)
        else:
            expr = sa.func.json_set(expr, path, sa.func.json(json.dumps(value)))
    return expr


def _postgresql(column: sa.Column[Any], changes: Mapping[str, Any]) -> ColumnElement[Any]:
    current = sa.case(
        (sa.func.json_typeof(column) == "object", sa.cast(column, JSONB)),
        else_=sa.cast(sa.literal("{}"), JSONB),
    )
    sets = {k: v for k, v in changes.items() if v is not None}
    expr: ColumnElement[Any] = current
    if sets:
        expr = expr.op("||")(sa.cast(sa.literal(json.dumps(sets)), JSONB))
    for key in (k for k, v in changes.items() if v is None):
        expr = expr.op("-")(sa.literal(key))
    return sa.cast(expr, sa.JSON)
