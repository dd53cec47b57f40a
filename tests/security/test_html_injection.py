"""Issue 14.1: user data never runs as script in a gateway page.

One escaping rule (Jinja autoescape, no data inside ``<script>``) and a strict
Content-Security-Policy on every response.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from gateway.app import build_services, create_app
from gateway.jobs.records import JobUpdate
from gateway.ogcapi.config import TEMPLATES
from gateway.security_headers import CONTENT_SECURITY_POLICY
from tests.accounting_support import HeaderAuth, as_user
from tests.security.conftest import finished_job, security_settings
from tests.unit.accounting_fixtures import make_job, usage

pytestmark = pytest.mark.unit

PAYLOADS = [
    "</script><script>document.title='X'</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "</pre><script>alert(1)</script>",
    "{{ 7*7 }}<!--",
]


def _script_free(html: str, payload: str) -> None:
    """The payload appears only escaped: never as markup, never inside a script."""
    assert payload not in html
    assert "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    for body in re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S | re.I):
        assert "document.title" not in body and "alert(" not in body


@pytest.mark.parametrize("payload", PAYLOADS)
def test_results_page_shows_stored_markup_as_text(client, services, payload):
    job = finished_job(
        services, {"string_input": payload}, {"string_output": payload, payload: "key too"}
    )
    r = client.get(f"/jobs/{job.id}/results?f=html")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    _script_free(html, payload)
    assert "&lt;" in html  # it is there, as text
    assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("payload", PAYLOADS)
def test_job_pages_show_a_stored_message_as_text(client, services, payload):
    job = finished_job(services, {"string_input": "x"}, {"string_output": "x"})
    # e.g. the tail of a job's stderr
    assert services.store.update(job.id, JobUpdate(message=payload))
    for path in (f"/jobs/{job.id}?f=html", "/jobs?f=html"):
        r = client.get(path)
        assert r.status_code == 200, path
        _script_free(r.get_data(as_text=True), payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_error_pages_show_the_request_as_text(client, payload):
    r = client.get(f"/processes/{payload}?f=html")
    assert r.status_code == 404
    _script_free(r.get_data(as_text=True), payload)
    assert "Content-Security-Policy" in r.headers


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/?f=html",
        "/conformance?f=html",
        "/processes?f=html",
        "/processes/echo?f=html",
        "/jobs",
        "/openapi",
        "/wps?service=WPS&request=GetCapabilities",
        "/nope",
    ],
)
def test_every_response_carries_the_policy(client, path):
    r = client.get(path)
    assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_the_policy_forbids_inline_and_foreign_scripts():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert directives["frame-ancestors"] == "'none'"


def test_gateway_templates_put_no_data_into_scripts():
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert templates
    for path in templates:
        text = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"), flags=re.S)
        assert "<script" not in text, path
        assert not re.search(r"\|\s*safe\b", text), path


def test_the_accounting_dashboard_shows_stored_names_as_text(tmp_path):
    """HPC logins and process names in the dashboard's SVG charts are escaped too."""
    payload = "<svg onload=alert(1)>"
    settings = security_settings(tmp_path)
    services = build_services(settings)
    try:
        job = make_job(services.store, payload, slurm_id="7")
        end = datetime.now(UTC) - timedelta(hours=1)
        services.accounting.recorder("seed").record(job, usage("7", user=payload, end=end))
        app = create_app(settings, services, authenticator=HeaderAuth())
        r = app.test_client().get("/accounting/dashboard", headers=as_user("admin"))
        assert r.status_code == 200
        html = r.get_data(as_text=True)
        assert payload not in html and "&lt;svg onload" in html
        assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    finally:
        services.close()
