"""Helpers for the WPS tests: the official XSDs (offline, via the XML catalog) and a WPS app.

``XML_CATALOG_FILES`` must be set before libxml2 first resolves a schema
location, so it is set when this module is imported.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from tests.ogc_schemas import SCHEMAS_DIR as SCHEMAS

os.environ.setdefault("XML_CATALOG_FILES", str(SCHEMAS / "catalog.xml"))

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from gateway.errors import Unauthorized
from gateway.identity.auth import Principal
from gateway.jobs.records import Job, JobQuery, JobUpdate
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.wps import register_wps

WPS1 = "http://www.opengis.net/wps/1.0.0"
WPS2 = "http://www.opengis.net/wps/2.0"
OWS11 = "http://www.opengis.net/ows/1.1"
OWS2 = "http://www.opengis.net/ows/2.0"
XLINK = "http://www.w3.org/1999/xlink"
NS = {"wps": WPS1, "ows": OWS11, "wps2": WPS2, "ows2": OWS2, "xlink": XLINK}

_XSD = {
    WPS1: "schemas.opengis.net/wps/1.0.0/wpsAll.xsd",
    WPS2: "schemas.opengis.net/wps/2.0/wps.xsd",
    OWS11: "schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd",
    OWS2: "schemas.opengis.net/ows/2.0/owsExceptionReport.xsd",
}

ALICE = Principal(sub="sub-alice", username="alice", hpc_login="alice")
BOB = Principal(sub="sub-bob", username="bob", hpc_login="bob")


@cache
def schema(namespace: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / _XSD[namespace])))


def assert_valid(body: bytes) -> etree._Element:
    """Parse a WPS response and validate it against the official schema of its root."""
    root = etree.fromstring(body)
    namespace = etree.QName(root).namespace
    assert namespace in _XSD, f"unexpected document root {root.tag}"
    xsd = schema(namespace)
    if not xsd.validate(root):
        errors = "\n".join(str(e) for e in xsd.error_log)
        raise AssertionError(f"{root.tag} is not schema-valid:\n{errors}\n{body.decode()[:3000]}")
    return root


def exception_code(body: bytes) -> tuple[str, str | None]:
    """(exceptionCode, locator) of a schema-valid OWS exception report."""
    root = assert_valid(body)
    assert etree.QName(root).localname == "ExceptionReport"
    exc = root[0]
    return exc.get("exceptionCode") or "", exc.get("locator")


class HeaderAuth:
    """Test authenticator: ``X-Test-User: alice|bob``; anything else is unauthorised."""

    users = {"alice": ALICE, "bob": BOB}

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        user = headers.get("X-Test-User", "alice")
        if user not in self.users:
            raise Unauthorized("unknown test user", headers={"WWW-Authenticate": "Bearer"})
        return self.users[user]


@dataclass
class WpsApp:
    app: Flask
    client: FlaskClient
    services: Services


def wps_app(services: Services) -> WpsApp:
    """A bare Flask app with only the WPS facade mounted."""
    app = Flask("wps-test")
    app.config["MAX_CONTENT_LENGTH"] = services.settings.server.max_body_bytes
    register_wps(app, services, HeaderAuth())
    return WpsApp(app, app.test_client(), services)


class FakeEchoWorker:
    """Stands in for the Slurm workflow in unit tests: finishes accepted echo jobs.

    Each ``<kind>_input`` becomes ``<kind>_output``; outputs requested by
    reference are written to the publication folder and given as hrefs, like
    :class:`gateway.publication.publisher.Publisher` does.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeEchoWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        store = self.services.store
        while not self._stop.wait(0.05):
            for job in store.page(JobQuery(states=frozenset({JobState.ACCEPTED}), limit=50)).jobs:
                self.finish(job)

    def finish(self, job: Job) -> None:
        store = self.services.store
        if job.inputs.get("exit_code"):
            store.transition(
                job.id,
                JobState.FAILED,
                JobUpdate(
                    message="echo: failing as requested",
                    error={"detail": "echo: failing as requested"},
                ),
            )
            return
        requested = job.outputs_request or {}
        results: dict[str, Any] = {}
        for name, value in job.inputs.items():
            if not name.endswith("_input"):
                continue
            out = name.replace("_input", "_output")
            if requested and out not in requested:
                continue
            if requested.get(out, {}).get("transmissionMode") == "reference":
                folder = self.services.publication_root / job.id
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{out}.json").write_text(json.dumps(value), encoding="utf-8")
                base = self.services.settings.server.base_url
                value = {
                    "href": f"{base}/jobs/{job.id}/outputs/{out}.json",
                    "type": "application/json",
                }
            results[out] = value
        store.transition(job.id, JobState.RUNNING, JobUpdate(progress=50))
        store.transition(
            job.id,
            JobState.SUCCESSFUL,
            JobUpdate(results=results, progress=100, message="Job completed successfully"),
        )
