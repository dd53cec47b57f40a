"""People in a browser: headless Chromium against a real gateway, the real Keycloak and Slurm.

What the test uses: the real Keycloak of ``deploy/keycloak`` (realm ``gep``, its
login page, client ``ogc-gateway`` with PKCE), the real dev Slurm cluster, and
``hpcgw serve --with-worker`` signing people in with Keycloak; a local file
server holds the test raster. Chromium is Debian's (``chromium`` +
``chromium-driver``, deploy/install-test-tools.sh), driven by Selenium, with a
fresh profile per browser.

Screenshots of every page go to ``var/screenshots/browser/`` (gitignored) for a
person to look at; no assertion compares pixels.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.db import make_engine
from tests.accounting_support import chromium_problem, headless_chromium
from tests.conftest import REPO
from tests.e2e.conftest import GatewayDirs, free_port, running_gateway, write_config
from tests.e2e.test_ogcapi_e2e import _write_scene
from tests.e2e.test_readme_examples import provision
from tests.identity_fixtures import GATEWAY_CLIENT, Keycloak, auth_config, keycloak
from tests.polling import eventually

__all__ = ["keycloak"]

pytestmark = pytest.mark.e2e

SHOTS = REPO / "var" / "screenshots" / "browser"
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


@dataclass(frozen=True)
class Portal:
    url: str
    idp: Keycloak
    files: str
    database: str


@pytest.fixture(scope="module")
def pkce_required(keycloak: Keycloak) -> Iterator[None]:
    """The gateway's client requires PKCE (S256), as deploy/keycloak/realm-gep.json says;
    set here through the admin API (the running realm may predate it) and restored."""
    admin = keycloak.admin()
    client_id = admin.get_client_id(GATEWAY_CLIENT)
    before = admin.get_client(client_id)
    attributes = dict(before.get("attributes") or {})
    admin.update_client(
        client_id, {"attributes": {**attributes, "pkce.code.challenge.method": "S256"}}
    )
    yield
    admin.update_client(client_id, {"attributes": attributes})


@pytest.fixture(scope="module")
def portal(
    cluster: str,
    keycloak: Keycloak,
    pkce_required: None,
    file_server: tuple[str, Path],
    gateway_dirs: GatewayDirs,
) -> Iterator[Portal]:
    problem = chromium_problem()
    if problem:
        pytest.fail(problem)  # make test installs Chromium: never skipped silently
    base, root = file_server
    _write_scene(root / "scene.tif")
    tmp = gateway_dirs.mktemp("browser-gateway")
    port = free_port()
    config = write_config(tmp, port, auth=auth_config(keycloak))
    database = f"sqlite:///{tmp}/hpcgw.db"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with running_gateway(tmp, config, port) as url:
        for name in ("alice", "bob"):
            provision(database, keycloak, name)
        yield Portal(url, keycloak, base, database)


@pytest.fixture
def browser() -> Iterator[Any]:
    with headless_chromium() as driver:
        yield driver


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def wait_for(driver: Any, probe: Any, what: str, timeout: float = 30) -> Any:
    """Wait until ``probe(driver)`` is truthy.

    The job page refreshes itself while the job runs, so an element found a moment
    ago may be gone when its text is read: that reading counts as "not yet", and the
    probe runs again on the new page.
    """
    from selenium.common.exceptions import StaleElementReferenceException

    def attempt() -> Any:
        try:
            return probe(driver)
        except StaleElementReferenceException:
            return None

    return eventually(attempt, timeout, what, every=0.3)


def element(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def sign_in_at_keycloak(driver: Any, portal: Portal, user: str) -> None:
    """On Keycloak's own login page: type the user's name and password, submit."""
    wait_for(driver, lambda d: element(d, "#username"), "Keycloak's login page")
    assert driver.current_url.startswith(portal.idp.url), driver.current_url
    element(driver, "#username").send_keys(user)
    element(driver, "#password").send_keys(user)
    click(driver, "#kc-login")
    wait_for(driver, lambda d: d.current_url.startswith(portal.url), "back at the gateway")


def signed_in(driver: Any, portal: Portal, user: str, page: str = "/ui/") -> None:
    driver.get(portal.url + page)
    sign_in_at_keycloak(driver, portal, user)
    wait_for(driver, lambda d: element(d, "#signed-in-as"), "the signed-in page")
    assert element(driver, "#signed-in-as").get_attribute("textContent") == user


def click(driver: Any, css: str) -> None:
    """Click the element, scrolled into view at once first (Bootstrap makes scrolling
    smooth: a click during the scroll lands elsewhere)."""
    target = element(driver, css)
    driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", target
    )
    target.click()


def session_cookies(driver: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in driver.get_cookies()}


def loaded_hosts(driver: Any) -> set[str]:
    """The origins of every resource the page loaded (and the page itself)."""
    urls = driver.execute_script(
        "return [location.href].concat(performance.getEntriesByType('resource')"
        ".map(function (e) { return e.name; }))"
    )
    return {re.match(r"^[a-z]+://[^/]+", u).group(0) for u in urls if "://" in u}


def job_id_of(driver: Any, portal: Portal) -> str:
    match = re.fullmatch(re.escape(portal.url) + r"/ui/jobs/([0-9a-f-]+)", driver.current_url)
    assert match, driver.current_url
    return match.group(1)


def submit_form(
    driver: Any, portal: Portal, process: str, values: dict[str, str], quote: bool = False
) -> None:
    """Fill the process's form and run it (``quote``: ask for the quote first)."""
    driver.get(f"{portal.url}/ui/processes/{process}")
    for name, value in values.items():
        field = element(driver, f"[id='{name}']")
        if field.tag_name == "select":
            from selenium.webdriver.support.ui import Select

            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)
    if quote:
        click(driver, "#get-quote")
        shown = wait_for(driver, lambda d: element(d, "#quote"), "the quote")
        assert "core-hours" in shown.text and "EUR" in shown.text, shown.text
        for name, value in values.items():  # the form is as it was typed
            assert element(driver, f"[id='{name}']").get_attribute("value") == value
        shot(driver, f"quote-{process}")
    click(driver, "#submit-job")


# -- the whole way: sign-in, form, job page, quicklook, map, download -----------------


def test_alice_signs_in_runs_ndvi_and_sees_its_quicklook_and_footprint(
    portal: Portal, browser: Any
) -> None:
    # a page asked for without a session: Keycloak's login, then back to that page
    browser.get(f"{portal.url}/ui/jobs?status=running")
    sign_in_at_keycloak(browser, portal, "alice")
    assert browser.current_url == f"{portal.url}/ui/jobs?status=running"
    cookie = next(c for c in browser.get_cookies() if c["name"] == "hpcgw_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    shot(browser, "01-job-list")

    submit_form(browser, portal, "ndvi", {"image.href": f"{portal.files}/scene.tif"}, quote=True)
    job_id = job_id_of(browser, portal)
    shot(browser, "03-job-page-running")
    wait_for(
        browser,
        lambda d: element(d, "#job-status") and element(d, "#job-status").text == "successful",
        "the job page to show the job successful",
        timeout=240,
    )
    wait_for(browser, lambda d: element(d, "#map[data-drawn='true']"), "the footprint map")
    assert element(browser, ".leaflet-overlay-pane path") is not None  # the footprint polygon
    assert browser.execute_script(
        "var i = document.getElementById('quicklook'); return i.complete && i.naturalWidth > 0"
    )
    assert element(browser, "#job-slurm-id").text.strip().isdigit()
    assert element(browser, "#job-site").text == "dev"
    assert element(browser, "#job-core-hours") is not None
    shot(browser, "04-job-page-successful")
    # nothing came from another host: the gateway served every asset
    assert loaded_hosts(browser) == {portal.url}

    # download an output with the browser's session
    link = element(browser, ".result-link[data-name='ndvi']")
    answer = httpx.get(link.get_attribute("href"), cookies=session_cookies(browser), timeout=30)
    assert answer.status_code == 200
    assert answer.content[:4] in TIFF_MAGIC

    # the job list shows it, filtered by process and status
    browser.get(f"{portal.url}/ui/jobs?processID=ndvi&status=successful")
    assert element(browser, f"a[href$='/ui/jobs/{job_id}']") is not None
    browser.get(f"{portal.url}/ui/jobs?processID=echo")
    assert element(browser, f"a[href$='/ui/jobs/{job_id}']") is None

    # bob cannot open alice's job page
    with headless_chromium() as bob:
        signed_in(bob, portal, "bob")
        bob.get(f"{portal.url}/ui/jobs/{job_id}")
        assert "No such job" in bob.title or "does not exist" in element(bob, "#error-detail").text
        shot(bob, "05-bob-gets-404")
        status = httpx.get(
            f"{portal.url}/ui/jobs/{job_id}", cookies=session_cookies(bob), timeout=30
        ).status_code
        assert status == 404


def test_a_bad_value_is_shown_next_to_its_field(portal: Portal, browser: Any) -> None:
    signed_in(browser, portal, "alice")
    submit_form(
        browser, portal, "ndvi", {"image.href": f"{portal.files}/scene.tif", "red_band": "0"}
    )
    error = wait_for(browser, lambda d: element(d, "#red_band-error"), "the field's error")
    assert "minimum" in error.text
    assert element(browser, "#red_band").get_attribute("aria-invalid") == "true"
    # what was typed is still there
    assert element(browser, "[id='image.href']").get_attribute("value").endswith("/scene.tif")
    shot(browser, "02-form-with-error")


def test_a_running_echo_job_is_dismissed_from_its_page(portal: Portal, browser: Any) -> None:
    signed_in(browser, portal, "alice")
    submit_form(browser, portal, "echo", {"pause": "120", "string_input": "dismiss me"})
    job_id_of(browser, portal)
    wait_for(
        browser,
        lambda d: element(d, "#job-status").text == "running",
        "the echo job to run",
        timeout=120,
    )
    click(browser, "#dismiss")
    wait_for(
        browser,
        lambda d: element(d, "#job-status") and element(d, "#job-status").text == "dismissed",
        "the job page to show the job dismissed",
    )
    shot(browser, "06-dismissed")


def test_a_form_without_the_right_csrf_token_is_refused(portal: Portal, browser: Any) -> None:
    signed_in(browser, portal, "alice")
    browser.get(f"{portal.url}/ui/processes/echo")
    browser.execute_script(
        "document.querySelector('#execute-form [name=csrf_token]').value = 'forged'"
    )
    click(browser, "#submit-job")
    detail = wait_for(browser, lambda d: element(d, "#error-detail"), "the error page")
    assert "security token" in detail.text
    shot(browser, "07-csrf-403")
    cookies = session_cookies(browser)
    # the same without a token at all, and against the JSON API with the cookie alone
    answer = httpx.post(f"{portal.url}/ui/processes/echo", data={}, cookies=cookies)
    assert answer.status_code == 403
    answer = httpx.post(
        f"{portal.url}/processes/echo/execution", json={"inputs": {}}, cookies=cookies
    )
    assert answer.status_code == 403
    assert httpx.get(f"{portal.url}/jobs", params={"f": "json"}).status_code == 401


def test_api_clients_get_401_and_pages_redirect_to_sign_in(portal: Portal) -> None:
    api = httpx.get(f"{portal.url}/jobs", headers={"Accept": "application/json"})
    assert api.status_code == 401 and "WWW-Authenticate" in api.headers
    xml = httpx.get(f"{portal.url}/wps?service=WPS&request=GetStatus&version=2.0.0&jobId=x")
    assert xml.status_code in (400, 401) and "location" not in xml.headers
    page = httpx.get(f"{portal.url}/ui/jobs", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"].startswith("/signin?next=")


def test_an_expired_session_signs_in_again_and_keeps_the_form(portal: Portal, browser: Any) -> None:
    signed_in(browser, portal, "alice")
    browser.get(f"{portal.url}/ui/processes/echo")
    element(browser, "#string_input").send_keys("kept across sign-in")
    engine = make_engine(portal.database)
    try:  # the session ends (as after its lifetime) while the form is open
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM browser_sessions"))
    finally:
        engine.dispose()
    click(browser, "#get-quote")
    # Keycloak still knows alice (its own session): straight back to the form, filled in
    wait_for(
        browser,
        lambda d: (
            d.current_url == f"{portal.url}/ui/processes/echo"
            and element(d, "#string_input")
            and element(d, "#string_input").get_attribute("value") == "kept across sign-in"
        ),
        "the form again, filled in",
    )


def test_sign_out_ends_the_keycloak_session_too(portal: Portal, browser: Any) -> None:
    signed_in(browser, portal, "alice")
    click(browser, "#signout")
    wait_for(browser, lambda d: element(d, "#signed-out"), "the signed-out page")
    shot(browser, "08-signed-out")
    browser.get(f"{portal.url}/ui/jobs")
    # Keycloak asks for the password again: its SSO session ended with ours
    wait_for(browser, lambda d: element(d, "#username"), "Keycloak's login page")
    assert browser.current_url.startswith(portal.idp.url)


def test_admin_pages_and_a_phone_sized_screen(portal: Portal) -> None:
    with headless_chromium(window="360,780") as phone:
        signed_in(phone, portal, "admin", page="/ui/admin")
        assert element(phone, "#site-health") is not None
        assert "dev" in element(phone, "#site-health").text
        assert phone.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"
        )
        shot(phone, "09-admin-360px")
        phone.get(f"{portal.url}/ui/processes/ndvi")
        # every field has a label
        unlabelled = phone.execute_script(
            "return Array.from(document.querySelectorAll('input:not([type=hidden]), select,"
            " textarea')).filter(function (e) { return !document.querySelector("
            "'label[for=\"' + e.id + '\"]'); }).map(function (e) { return e.id; })"
        )
        assert unlabelled == []
        shot(phone, "10-form-360px")
