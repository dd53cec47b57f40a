"""Issue 14.6: the submission check refuses what it cannot judge, not only what it can.

A host that is not an IP address or a valid DNS name is refused before any
resolution (percent-encoded loopback, C-resolver shorthands such as ``127.1``),
and a name that does not resolve is refused by default -- on inputs by
reference and subscriber URLs alike. The fetch re-checks everything anyway;
these tests are about what is *accepted*.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import build_services, create_app
from gateway.egress import EgressPolicy, EgressRefused
from gateway.egress.policy import is_host_name
from tests.security.conftest import ASYNC, EXECUTE, assert_problem, job_count, security_settings

pytestmark = pytest.mark.unit

NOT_HOSTS = [
    "http://%31%32%37.0.0.1/",
    "http://%6c%6f%63%61%6c%68%6f%73%74/",  # "localhost"
    "http://127.1/",
    "http://0x7f.0.0.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://127.0.0.1./",
    "http://a..b/",
    "http://-x.example/",
    "http://exa_mple.org/",
    "http://ex%00ample.org/",
]
UNRESOLVABLE = ["http://nowhere.invalid/a.tif", "https://x.y.z.invalid:8443/"]


@pytest.mark.parametrize("href", NOT_HOSTS)
def test_a_host_that_is_not_a_host_name_is_refused(client, services, href):
    r = client.post(EXECUTE, json={"inputs": {"string_input": {"href": href}}}, headers=ASYNC)
    assert_problem(r, 400, "string_input")
    body = {"inputs": {"string_input": "x"}, "subscriber": {"successUri": href}}
    assert_problem(client.post(EXECUTE, json=body, headers=ASYNC), 400, "successUri")
    assert job_count(services) == 0


@pytest.mark.parametrize("href", UNRESOLVABLE)
def test_a_name_that_does_not_resolve_is_refused_by_default(client, services, href):
    # the system resolver: RFC 6761 .invalid names never resolve
    r = client.post(EXECUTE, json={"inputs": {"string_input": {"href": href}}}, headers=ASYNC)
    assert_problem(r, 400, "string_input", "cannot be resolved")
    body = {"inputs": {"string_input": "x"}, "subscriber": {"successUri": href}}
    assert_problem(client.post(EXECUTE, json=body, headers=ASYNC), 400, "successUri")
    assert job_count(services) == 0


def test_an_operator_can_accept_unresolvable_names(tmp_path: Path):
    settings = security_settings(
        tmp_path, workflow={"egress": {"probe_references": False, "require_resolvable": False}}
    )
    services = build_services(settings)
    try:
        client = create_app(settings, services).test_client()
        href = UNRESOLVABLE[0]
        r = client.post(EXECUTE, json={"inputs": {"string_input": {"href": href}}}, headers=ASYNC)
        assert r.status_code == 201
        # ...but never a host that is not a host name
        bad = {"inputs": {"string_input": {"href": NOT_HOSTS[0]}}}
        assert_problem(client.post(EXECUTE, json=bad, headers=ASYNC), 400, "not a valid host")
    finally:
        services.close()


@pytest.mark.parametrize("url", [u for u in NOT_HOSTS if "%00" not in u])
def test_the_fetch_time_check_refuses_them_too(url):
    called: list[str] = []

    def resolver(host: str, port: int) -> list:
        called.append(host)
        raise AssertionError("must not be resolved")

    with pytest.raises(EgressRefused):
        EgressPolicy(resolver=resolver).check_url(url)
    assert called == []


@pytest.mark.parametrize(
    "name, ok",
    [
        ("data.example.org", True),
        ("bücher.example", True),
        ("xn--bcher-kva.example", True),
        ("localhost", True),
        ("a.b.", True),
        ("127.1", False),
        ("1.2.3.4.5", False),
        ("0x7f", False),
        ("a" * 64 + ".org", False),
        (("a" * 63 + ".") * 4 + "org", False),  # over 253
        ("", False),
        ("a b.org", False),
    ],
)
def test_host_name_rule(name, ok):
    assert is_host_name(name) is ok
