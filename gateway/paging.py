"""Page sizes: the one limit parser and the constants every list uses.

The job list (OGC API and pygeoapi's manager), the STAC catalog, the user-sync
audit log and the process list all take ``limit`` through :func:`parse_limit`,
and the OpenAPI document states the same bounds and defaults (see
:mod:`gateway.ogcapi.openapi_paths`).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import BadRequest

#: The largest page any list serves.
MAX_PAGE_LIMIT = 1000
#: Default page sizes, per list.
DEFAULT_JOB_LIMIT = 10
DEFAULT_STAC_LIMIT = 100
DEFAULT_AUDIT_LIMIT = 50


def parse_limit(raw: str | None, *, default: int, maximum: int | None = MAX_PAGE_LIMIT) -> int:
    """The ``limit`` query value: ASCII digits between 1 and ``maximum`` (None: no bound).

    Absent or empty gives ``default``; anything else (a sign, spaces, another
    script's digits, out of bounds) is a :class:`~gateway.errors.BadRequest`.
    """
    if raw is None or raw == "":
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if value < 1 or (maximum is not None and value > maximum):
        bounds = f"between 1 and {maximum}" if maximum is not None else "of at least 1"
        raise BadRequest(f"limit must be an integer {bounds}, got {raw!r}")
    return value


def limit_schema(default: int, maximum: int | None = MAX_PAGE_LIMIT) -> dict[str, Any]:
    """The OpenAPI schema of a ``limit`` that :func:`parse_limit` reads the same way."""
    schema: dict[str, Any] = {"type": "integer", "minimum": 1, "default": default}
    if maximum is not None:
        schema["maximum"] = maximum
    return schema
