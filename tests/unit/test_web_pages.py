"""The pages in-process: sessions, CSRF, the sign-in redirect vs 401, error pages.

The sign-in itself (Keycloak's login page, PKCE, sign-out) is exercised by
tests/e2e/test_browser_e2e.py; here a session is written straight into the store
with a token a stand-in authenticator accepts, so that what the cookie does can
be checked without an identity provider.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.app import build_services, create_app
from gateway.errors import Unauthorized
from gateway.identity.auth import ROLE_USER, Principal
from gateway.settings import Settings
from gateway.web.context import web
from gateway.web.sessions import COOKIE
from gateway.web.tables import browser_sessions

pytestmark = pytest.mark.unit

ALICE = Principal(
    sub="sub-alice", username="alice", hpc_login="alice", roles=frozenset({ROLE_USER})
)


class TokenIsAlice:
    """Accepts exactly the bearer token ``alice-token`` (a stand-in for Keycloak's)."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if headers.get("Authorization") == "Bearer alice-token":
            return ALICE
        raise Unauthorized("no token", headers={"WWW-Authenticate": "Bearer"})


@pytest.fixture
def app(tmp_path: Path):
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path}/x.db"},
        publication={"root": str(tmp_path / "pub")},
        auth={"mode": "oidc"},
    )
    services = build_services(settings)
    app = create_app(settings, services, authenticator=TokenIsAlice())
    yield app
    services.close()


def signed_in_client(app):
    with app.app_context():
        session = web().browser.store.create(
            {"tokens": {"access_token": "alice-token", "expires_at": time.time() + 600}}
        )
    client = app.test_client()
    client.set_cookie(COOKIE, session.id)
    return client, session


def csrf_of(page: bytes) -> str:
    return re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()


def test_pages_without_a_session_go_to_sign_in_and_api_clients_get_401(app) -> None:
    client = app.test_client()
    page = client.get("/ui/jobs?status=running", headers={"Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["Location"] == "/signin?next=%2Fui%2Fjobs%3Fstatus%3Drunning"
    html_job = client.get("/jobs", headers={"Accept": "text/html,*/*;q=0.8"})
    assert html_job.status_code == 303
    for accept in ("application/json", "*/*", "application/xml"):
        api = client.get("/jobs", headers={"Accept": accept})
        assert api.status_code == 401 and "Location" not in api.headers


def test_the_session_cookie_authenticates_pages_and_the_json_api(app) -> None:
    client, _ = signed_in_client(app)
    page = client.get("/ui/jobs")
    assert page.status_code == 200 and b'id="signed-in-as">alice<' in page.data
    assert client.get("/jobs?f=json").status_code == 200
    # a bearer token wins over the cookie: an API client's request stays its own
    assert client.get("/jobs", headers={"Authorization": "Bearer other"}).status_code == 401


def test_state_changes_by_cookie_need_the_csrf_token(app) -> None:
    client, session = signed_in_client(app)
    form = client.get("/ui/processes/echo")
    token = csrf_of(form.data)
    assert token == session.csrf
    forged = client.post("/ui/processes/echo", data={"csrf_token": "forged"})
    assert forged.status_code == 403 and b"security token" in forged.data
    assert client.post("/ui/processes/echo", data={}).status_code == 403
    api = client.post("/processes/echo/execution", json={"inputs": {}})
    assert api.status_code == 403
    with_header = client.post(
        "/ui/processes/echo",
        data={"integer_input": "x"},
        headers={"X-CSRF-Token": token},
    )
    assert with_header.status_code == 400
    assert b'id="integer_input-error"' in with_header.data


def test_an_expired_session_keeps_the_submitted_form_for_after_sign_in(app) -> None:
    client, _ = signed_in_client(app)
    token = csrf_of(client.get("/ui/processes/echo").data)
    with app.app_context():
        engine = web().services.engine
    with engine.begin() as conn:
        conn.execute(sa.update(browser_sessions).values(expires=sa.func.datetime("now", "-1 day")))
    answer = client.post(
        "/ui/processes/echo", data={"csrf_token": token, "string_input": "keep me"}
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/signin?next=%2Fui%2Fprocesses%2Fecho"
    with app.app_context():
        cookie = client.get_cookie(COOKIE).value
        kept = web().browser.store.get(cookie)
    assert kept is not None and kept.data["drafts"]["/ui/processes/echo"] == {
        "string_input": "keep me"
    }


def test_the_table_keeps_a_hash_never_the_cookie_value(app) -> None:
    _, session = signed_in_client(app)
    with app.app_context():
        engine = web().services.engine
    with engine.connect() as conn:
        ids = [row.id_hash for row in conn.execute(sa.select(browser_sessions.c.id_hash))]
    assert session.id not in ids and len(ids) == 1 and len(ids[0]) == 64


def test_error_pages_are_html_without_a_trace(app) -> None:
    client, _ = signed_in_client(app)
    missing = client.get("/ui/jobs/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.content_type.startswith("text/html")
    assert b"Traceback" not in missing.data
    assert client.get("/ui/processes/nope").status_code == 404
    assert client.get("/ui/admin").status_code == 403  # alice is no hpc-admin


def test_assets_are_served_here_and_the_policy_allows_no_other_host(app) -> None:
    client = app.test_client()
    page = client.get("/", headers={"Accept": "text/html"})
    assert b"unpkg.com" not in page.data and b"cdnjs" not in page.data
    assert b"/assets/vendor/bootstrap/bootstrap.min.css" in page.data
    policy = page.headers["Content-Security-Policy"]
    assert "https:" not in policy and "http:" not in policy
    css = client.get("/assets/vendor/bootstrap/bootstrap.min.css")
    assert css.status_code == 200, "run `make web-assets` (deploy/web-assets.sh)"
    assert client.get("/assets/vendor/leaflet/leaflet.js").status_code == 200


def test_the_cookie_is_secure_over_https_and_the_sign_in_keeps_a_proxy_prefix(
    tmp_path: Path,
) -> None:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path}/y.db"},
        publication={"root": str(tmp_path / "pub")},
        server={"base_url": "https://gep.example.org/hpc", "trusted_proxies": ["127.0.0.1/32"]},
    )
    services = build_services(settings)
    try:
        app = create_app(settings, services)
        client = app.test_client()
        forwarded = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "gep.example.org",
            "X-Forwarded-Prefix": "/hpc",
        }
        form = client.get("/ui/processes/echo", headers=forwarded)
        cookie = form.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert b'action="/hpc/ui/processes/echo"' in form.data
        back = client.get("/signin?next=/ui/jobs", headers=forwarded)  # auth.mode none
        assert back.status_code == 303 and back.headers["Location"].endswith("/hpc/ui/jobs")
    finally:
        services.close()


def test_the_job_list_filters_and_pages(app) -> None:
    client, session = signed_in_client(app)
    token = session.csrf
    made = []
    for text in ("one", "two"):
        answer = client.post("/ui/processes/echo", data={"csrf_token": token, "string_input": text})
        assert answer.status_code == 303, answer.data[-600:]
        made.append(answer.headers["Location"].rsplit("/", 1)[1])
    first = client.get("/ui/jobs?processID=echo&limit=1")
    assert made[1].encode() in first.data and made[0].encode() not in first.data
    following = re.search(rb'href="([^"]+)" id="next-page"', first.data).group(1)
    second = client.get("/ui/jobs" + following.decode().replace("&amp;", "&"))
    assert made[0].encode() in second.data and made[1].encode() not in second.data
    none = client.get("/ui/jobs?processID=ndvi")
    assert b'id="no-jobs"' in none.data
    assert client.get("/ui/jobs?datetime=yesterday").status_code == 400
