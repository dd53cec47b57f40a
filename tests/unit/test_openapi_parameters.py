"""The OpenAPI document's query parameters say what the routes really accept.

For the list routes, every documented query parameter is compared with the
route's behaviour: an integer's ``minimum``/``maximum`` are accepted and one
beyond is refused with 400, each ``enum`` member is accepted and anything else
refused; and the documented bounds, defaults and enums are the constants the
routes use (:mod:`gateway.paging`, :data:`gateway.jobs.states.OGC_STATUSES`).
``tests/unit/test_openapi_routes.py`` checks the paths and methods.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gateway.app import build_services, create_app
from gateway.identity.auth import ROLE_ADMIN, ROLE_USER, Principal
from gateway.jobs.states import OGC_STATUSES
from gateway.ogcapi.job_filters import MAX_DURATION_SECONDS
from gateway.paging import (
    DEFAULT_AUDIT_LIMIT,
    DEFAULT_JOB_LIMIT,
    DEFAULT_STAC_LIMIT,
    MAX_PAGE_LIMIT,
    limit_schema,
)
from gateway.settings import Settings

pytestmark = pytest.mark.unit

#: The list routes whose query parameters are checked against behaviour.
LIST_ROUTES = ("/jobs", "/stac/catalog.json", "/admin/users/audit")
#: Parameters whose values cannot be tried blindly (opaque cursors, formats, free text).
NOT_PROBED = {"next", "f", "datetime", "processID", "type"}


class _Admin:
    """Every request is an admin with an HPC login (the audit log is admin-only)."""

    principal = Principal(
        sub="admin-sub",
        username="admin",
        hpc_login="admin",
        roles=frozenset({ROLE_USER, ROLE_ADMIN}),
        is_admin=True,
    )

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return self.principal


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path}/x.db"},  # type: ignore[arg-type]
        publication={"root": str(tmp_path / "pub")},  # type: ignore[arg-type]
    )
    services = build_services(settings)
    flask_app = create_app(settings, services, authenticator=_Admin())
    flask_app.testing = True
    yield flask_app
    services.close()


def _parameters(app: Flask, path: str) -> dict[str, dict[str, Any]]:
    document = app.test_client().get("/openapi").get_json()
    params = document["paths"][path]["get"].get("parameters", [])
    components = document.get("components", {}).get("parameters", {})
    resolved = {}
    for param in params:
        if "$ref" in param:
            param = components[param["$ref"].rsplit("/", 1)[-1]]
        resolved[param["name"]] = param
    return resolved


def _status(app: Flask, path: str, name: str, value: object) -> int:
    return app.test_client().get(path, query_string={name: str(value)}).status_code


def test_documented_bounds_and_enums_are_the_routes_constants(app: Flask) -> None:
    jobs = _parameters(app, "/jobs")
    assert jobs["limit"]["schema"] == limit_schema(DEFAULT_JOB_LIMIT)
    assert jobs["status"]["schema"]["items"]["enum"] == list(OGC_STATUSES)
    for name in ("minDuration", "maxDuration"):
        assert jobs[name]["schema"]["maximum"] == MAX_DURATION_SECONDS
    stac = _parameters(app, "/stac/catalog.json")
    assert stac["limit"]["schema"] == limit_schema(DEFAULT_STAC_LIMIT)
    audit = _parameters(app, "/admin/users/audit")
    assert audit["limit"]["schema"] == limit_schema(DEFAULT_AUDIT_LIMIT)
    assert limit_schema(1)["maximum"] == MAX_PAGE_LIMIT


@pytest.mark.parametrize("path", LIST_ROUTES)
def test_every_documented_bound_and_enum_is_what_the_route_enforces(app: Flask, path: str) -> None:
    probed = 0
    for name, param in _parameters(app, path).items():
        if name in NOT_PROBED:
            continue
        schema = param["schema"]
        items = schema.get("items", schema)
        if "enum" in items:
            for member in items["enum"]:
                assert _status(app, path, name, member) == 200, (name, member)
            assert _status(app, path, name, "no-such-value") == 400, name
            probed += 1
        if schema.get("type") == "integer":
            low, high = schema.get("minimum"), schema.get("maximum")
            assert low is not None and high is not None, f"{path} {name}: unbounded integer"
            assert _status(app, path, name, low) == 200, (name, low)
            assert _status(app, path, name, high) == 200, (name, high)
            assert _status(app, path, name, low - 1) == 400, (name, low - 1)
            assert _status(app, path, name, high + 1) == 400, (name, high + 1)
            assert _status(app, path, name, "x") == 400, (name, "x")
            probed += 1
    assert probed, f"{path}: no parameter was compared"


def test_documented_job_list_parameters_are_the_ones_it_reads(app: Flask) -> None:
    """A parameter the route ignores would be a lie in the document (and vice versa)."""
    assert set(_parameters(app, "/jobs")) == {
        "limit",
        "processID",
        "status",
        "type",
        "datetime",
        "minDuration",
        "maxDuration",
        "next",
        "f",
    }
