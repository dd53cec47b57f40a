"""SSRF and reference checks at submission: 400 with a clear message, nothing queued.

Runs the real application (Flask test client, job store, admission hooks) with
the egress policy's resolver swapped for an offline table, so DNS names can
"resolve" to internal addresses without touching DNS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app import Services, build_services, create_app
from gateway.settings import Settings
from tests.unit.test_egress import REFUSED, resolver

pytestmark = pytest.mark.unit


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    data_root = tmp_path / "eo-archive"
    data_root.mkdir()
    (data_root / "scene.tif").write_bytes(b"II*\x00")
    (tmp_path / "secret.txt").write_text("secret")
    (data_root / "escape.tif").symlink_to(tmp_path / "secret.txt")
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path}/x.db"},  # type: ignore[arg-type]
        publication={"root": str(tmp_path / "pub")},  # type: ignore[arg-type]
        workflow={"staging": {"local_roots": [str(data_root)]}},  # type: ignore[arg-type]
    )
    svc = build_services(settings)
    svc.egress.resolver = resolver
    yield svc
    svc.close()


@pytest.fixture
def client(services: Services):  # type: ignore[no-untyped-def]
    app = create_app(services.settings, services)
    app.testing = True
    return app.test_client()


def execute(client, image: dict, **body: object):  # type: ignore[no-untyped-def]
    return client.post(
        "/processes/ndvi/execution",
        json={"inputs": {"image": image}, **body},
        headers={"Prefer": "respond-async"},
    )


def assert_refused(resp, services: Services, before: int, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == 400, resp.get_json()
    doc = resp.get_json()
    assert doc["status"] == 400 and doc["type"].startswith("http")
    for word in words:
        assert word in doc["detail"], doc["detail"]
    assert "Traceback" not in resp.get_data(as_text=True)
    assert services.store.count() == before, "a refused request must not queue a job"


@pytest.mark.parametrize(
    "url", [u for u in REFUSED if not u.startswith(("ftp", "gopher", "dict", "ldap", "http:///"))]
)
def test_ssrf_hrefs_are_refused_before_queueing(client, services: Services, url: str) -> None:
    before = services.store.count()
    assert_refused(execute(client, {"href": url}), services, before, "input 'image'")


@pytest.mark.parametrize(
    "url",
    ["gopher://data.example.org/", "ftp://data.example.org/x", "dict://x:11211/", "http:///x"],
)
def test_unsupported_schemes_are_refused(client, services: Services, url: str) -> None:
    before = services.store.count()
    assert_refused(execute(client, {"href": url}), services, before, "scheme")


def test_stac_item_on_internal_address_is_refused(client, services: Services) -> None:
    before = services.store.count()
    resp = execute(client, {"href": "http://metadata.example.org/item.json", "asset": "B04"})
    assert_refused(resp, services, before, "169.254.169.254", "link-local")


@pytest.mark.parametrize("key", ["successUri", "inProgressUri", "failedUri"])
def test_callback_urls_are_checked_too(client, services: Services, key: str) -> None:
    before = services.store.count()
    subscriber = {"successUri": "https://data.example.org/cb", key: "http://169.254.169.254/cb"}
    resp = execute(client, {"href": "https://data.example.org/a.tif"}, subscriber=subscriber)
    assert_refused(resp, services, before, f"subscriber '{key}'", "link-local")


def test_local_paths_only_under_allowed_roots(client, services: Services, tmp_path: Path) -> None:
    before = services.store.count()
    assert_refused(
        execute(client, {"href": f"file://{tmp_path}/secret.txt"}), services, before, "outside"
    )
    assert_refused(
        execute(client, {"href": f"file://{tmp_path}/eo-archive/../secret.txt"}),
        services,
        before,
        "outside",
    )
    assert_refused(
        execute(client, {"href": f"file://{tmp_path}/eo-archive/escape.tif"}),
        services,
        before,
        "outside",
    )
    assert_refused(
        execute(client, {"href": f"file://{tmp_path}/eo-archive/missing.tif"}),
        services,
        before,
        "not an existing regular file",
    )
    ok = execute(client, {"href": f"file://{tmp_path}/eo-archive/scene.tif"})
    assert ok.status_code == 201, ok.get_json()
    assert services.store.count() == before + 1


def test_malformed_stac_and_s3_references(client, services: Services) -> None:
    before = services.store.count()
    both = {"href": "https://data.example.org/item.json", "asset": "a", "role": "data"}
    assert_refused(execute(client, both), services, before, "either 'asset' or 'role'")
    assert_refused(
        execute(client, {"href": "https://data.example.org/i.json", "asset": ""}),
        services,
        before,
        "non-empty",
    )
    assert_refused(execute(client, {"href": "s3://Bad_Bucket/key"}), services, before, "s3://")
    assert_refused(execute(client, {"href": "s3://bucket"}), services, before, "s3://")


def test_public_references_are_accepted(client, services: Services) -> None:
    before = services.store.count()
    for image in (
        {"href": "https://data.example.org/scene.tif"},
        {"href": "https://data.example.org/item.json", "asset": "B04"},
        {"href": "https://data.example.org/item.json", "role": "data"},
        {"href": "s3://eo-bucket/S2/scene.tif"},
    ):
        resp = execute(client, image)
        assert resp.status_code == 201, resp.get_json()
    assert services.store.count() == before + 4
    stored = services.store.page(limit=10).jobs
    assert {"href": "https://data.example.org/item.json", "asset": "B04"} in [
        j.inputs["image"] for j in stored
    ]


def test_unresolvable_names_are_accepted_unless_required(
    client, services: Services, tmp_path: Path
) -> None:
    """A DNS hiccup must not reject a job; the name is checked again when fetched."""
    resp = execute(client, {"href": "https://nowhere.example.org/a.tif"})
    assert resp.status_code == 201
    strict = Settings(
        database={"url": f"sqlite:///{tmp_path}/y.db"},  # type: ignore[arg-type]
        workflow={"egress": {"require_resolvable": True}},  # type: ignore[arg-type]
    )
    svc = build_services(strict)
    svc.egress.resolver = resolver
    app = create_app(strict, svc)
    resp = execute(app.test_client(), {"href": "https://nowhere.example.org/a.tif"})
    assert resp.status_code == 400 and "cannot be resolved" in resp.get_json()["detail"]
    assert svc.store.count() == 0
    svc.close()
