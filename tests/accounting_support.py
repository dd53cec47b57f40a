"""Helpers for accounting tests: a header-driven test authenticator, a live HTTP server,
Prometheus text parsing and headless Chromium (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.serving import make_server

from gateway.errors import Unauthorized
from gateway.identity.auth import ROLE_ADMIN, ROLE_USER, Principal

CHROMIUM = os.environ.get("HPCGW_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HPCGW_CHROMEDRIVER", "/usr/bin/chromedriver")

PRINCIPALS = {
    "alice": Principal(sub="sub-alice", username="alice", hpc_login="alice",
                       roles=frozenset({ROLE_USER})),
    "bob": Principal(sub="sub-bob", username="bob", hpc_login="bob",
                     roles=frozenset({ROLE_USER})),
    "admin": Principal(sub="sub-admin", username="admin", hpc_login=None,
                       roles=frozenset({ROLE_USER, ROLE_ADMIN}), is_admin=True),
}  # fmt: skip


class HeaderAuth:
    """Test-only authenticator: ``X-Test-User: alice|bob|admin`` picks the Principal."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        name = headers.get("X-Test-User")
        if name not in PRINCIPALS:
            raise Unauthorized("test authenticator: send X-Test-User")
        return PRINCIPALS[name]


def as_user(name: str) -> dict[str, str]:
    return {"X-Test-User": name}


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric_sum(samples: Mapping[Any, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for (sample, label_items), value in samples.items():
        if sample != name:
            continue
        have = dict(label_items)
        if all(have.get(k) == v for k, v in labels.items()):
            total += value
    return total


def chromium_problem() -> str | None:
    if not (shutil.which(CHROMIUM) or os.path.exists(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (deploy/install-test-tools.sh installs it)"
    if not (shutil.which(CHROMEDRIVER) or os.path.exists(CHROMEDRIVER)):
        return f"no chromedriver at {CHROMEDRIVER} (deploy/install-test-tools.sh installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[dev]')"
    return None


@contextmanager
def headless_chromium(
    headers: Mapping[str, str] | None = None, window: str = "1400,1800"
) -> Iterator[Any]:
    """A Selenium WebDriver on headless Chromium with a fresh profile (chromedriver
    makes a new temporary one per session); ``headers`` go on every request."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={window}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        if headers:
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": dict(headers)})
        yield driver
    finally:
        driver.quit()
