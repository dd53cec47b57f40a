"""The egress guard: address policy, allow-lists, pinned connections, redirect re-checks."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
from pydantic import ValidationError

from gateway.egress import (
    EgressPolicy,
    EgressRefused,
    UnresolvableHost,
    guarded_client,
    refusal_reason,
)
from gateway.settings_workflow import EgressSettings

pytestmark = pytest.mark.unit

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:4700:4700::1111"

#: name -> addresses, for an offline resolver (the seam tests use instead of DNS)
DNS = {
    "data.example.org": [PUBLIC_V4],
    "v6.example.org": [PUBLIC_V6],
    "internal.example.org": ["10.1.2.3"],
    "metadata.example.org": ["169.254.169.254"],
    "loop.example.org": ["127.0.0.1"],
    "loop6.example.org": ["::1"],
    "mixed.example.org": [PUBLIC_V4, "192.168.1.10"],
    "mapped.example.org": ["::ffff:127.0.0.1"],
    "mirror.hpc.internal": ["10.9.9.9"],
}


def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if host not in DNS:
        raise UnresolvableHost(f"host '{host}' cannot be resolved")
    return [ipaddress.ip_address(a) for a in DNS[host]]


def policy(**kwargs: object) -> EgressPolicy:
    return EgressPolicy(resolver=resolver, **kwargs)  # type: ignore[arg-type]


REFUSED = [
    # IPv4 literals
    "http://127.0.0.1/x",
    "http://127.1.2.3:8080/x",
    "http://0.0.0.0/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.2.10/",
    # IPv6 literals
    "http://[::1]/",
    "http://[::]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fe80::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[2001:db8::1]/",
    "http://[fec0::1]/",
    # names resolving to internal addresses
    "https://internal.example.org/scene.tif",
    "http://metadata.example.org/",
    "http://loop.example.org/",
    "http://loop6.example.org/",
    "http://mapped.example.org/",
    "http://mixed.example.org/",
    # schemes
    "file:///etc/passwd",
    "gopher://data.example.org/",
    "ftp://data.example.org/x",
    "dict://data.example.org:11211/",
    "ldap://data.example.org/",
    "http:///no-host",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused(url: str) -> None:
    with pytest.raises(EgressRefused) as err:
        policy().check_url(url)
    assert err.value.detail


@pytest.mark.parametrize(
    "url",
    [
        f"http://{PUBLIC_V4}/a.tif",
        f"https://[{PUBLIC_V6}]/a.tif",
        "https://data.example.org/scene.tif",
        "http://v6.example.org:8080/x",
    ],
)
def test_public_destinations_allowed(url: str) -> None:
    dest = policy().check_url(url)
    assert dest.addresses


def test_refusal_messages_name_the_reason() -> None:
    with pytest.raises(EgressRefused, match="link-local"):
        policy().check_url("http://169.254.169.254/")
    with pytest.raises(EgressRefused, match=r"resolves to 10\.1\.2\.3.*private"):
        policy().check_url("http://internal.example.org/")
    with pytest.raises(EgressRefused, match=r"loopback.*embedded"):
        policy().check_url("http://[::ffff:127.0.0.1]/")
    with pytest.raises(EgressRefused, match="scheme 'file'"):
        policy().check_url("file:///etc/passwd")


def test_unresolvable_is_its_own_error() -> None:
    with pytest.raises(UnresolvableHost):
        policy().check_url("http://nowhere.example.org/")


def test_cidr_allow_list() -> None:
    allowing = policy(allow_cidrs=["127.0.0.1/32", "10.0.0.0/8"])
    allowing.check_url("http://127.0.0.1:8000/x")
    allowing.check_url("http://internal.example.org/")
    with pytest.raises(EgressRefused):
        allowing.check_url("http://127.0.0.2/")
    with pytest.raises(EgressRefused):
        allowing.check_url("http://169.254.169.254/")


def test_host_allow_list() -> None:
    allowing = policy(allow_hosts=[".hpc.internal"])
    allowing.check_url("https://mirror.hpc.internal/x")
    with pytest.raises(EgressRefused):
        allowing.check_url("https://internal.example.org/x")


def test_origin_allow_list_is_one_port_of_one_host() -> None:
    allowing = policy(allow_origins=["http://127.0.0.1:8190"])
    allowing.check_url("http://127.0.0.1:8190/catalog.json")
    for other in (
        "http://127.0.0.1:5000/jobs",  # another loopback port (the gateway itself)
        "http://127.0.0.1/",  # the default port
        "https://127.0.0.1:8190/",  # another scheme
        "http://127.0.0.2:8190/",  # another loopback address
        "http://loop.example.org:8190/",  # a name for the same address
    ):
        with pytest.raises(EgressRefused, match="loopback"):
            allowing.check_url(other)


def test_origin_settings_are_validated() -> None:
    assert EgressSettings(allow_origins=["HTTP://127.0.0.1:8190/"]).allow_origins == [
        "http://127.0.0.1:8190"
    ]
    assert EgressSettings(allow_origins=["https://[::1]"]).allow_origins == ["https://[::1]:443"]
    for bad in ("127.0.0.1:8190", "ftp://127.0.0.1:21", "http://127.0.0.1:8190/data", "http://"):
        with pytest.raises(ValidationError, match="allow_origins"):
            EgressSettings(allow_origins=[bad])


def test_refusal_reason_public_is_none() -> None:
    assert refusal_reason(ipaddress.ip_address(PUBLIC_V4)) is None
    assert refusal_reason(ipaddress.ip_address(PUBLIC_V6)) is None
    assert refusal_reason(ipaddress.ip_address("::ffff:93.184.216.34")) is None


# -- the transport -----------------------------------------------------------------


class Recorder:
    """An inner transport that records what reaches the wire and answers from a table."""

    def __init__(self, answers: dict[str, httpx.Response] | None = None) -> None:
        self.seen: list[httpx.Request] = []
        self.answers = answers or {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answers.get(request.url.path, httpx.Response(200, content=b"ok"))


def client_for(pol: EgressPolicy, recorder: Recorder, **kw: object) -> httpx.Client:
    return guarded_client(pol, timeout=5, inner=httpx.MockTransport(recorder), **kw)  # type: ignore[arg-type]


def test_connects_to_the_checked_address_with_host_and_sni() -> None:
    rec = Recorder()
    with client_for(policy(), rec) as client:
        assert client.get("https://data.example.org/scene.tif").status_code == 200
    (wire,) = rec.seen
    assert wire.url.host == PUBLIC_V4
    assert wire.headers["Host"] == "data.example.org"
    assert wire.extensions["sni_hostname"] == "data.example.org"


def test_resolves_once_per_request_dns_rebinding_cannot_switch() -> None:
    """The first answer is checked AND used; a second, internal answer is never asked for."""
    answers = iter([[PUBLIC_V4], ["127.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        calls.append(host)
        return [ipaddress.ip_address(a) for a in next(answers)]

    rec = Recorder()
    with client_for(EgressPolicy(resolver=rebinding), rec) as client:
        client.get("http://rebind.example.org/")
    assert calls == ["rebind.example.org"]
    assert rec.seen[0].url.host == PUBLIC_V4


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/admin",
        "http://internal.example.org/secret",
        "file:///etc/passwd",
    ],
)
def test_every_redirect_hop_is_checked(location: str) -> None:
    rec = Recorder({"/start": httpx.Response(302, headers={"Location": location})})
    with client_for(policy(), rec) as client, pytest.raises(EgressRefused):
        client.get("https://data.example.org/start")
    assert len(rec.seen) == 1  # the internal hop never reached the wire


def test_redirects_are_limited() -> None:
    rec = Recorder({"/loop": httpx.Response(302, headers={"Location": "/loop"})})
    with client_for(policy(), rec, max_redirects=3) as client:
        with pytest.raises(httpx.TooManyRedirects):
            client.get("https://data.example.org/loop")
    assert len(rec.seen) == 4


def test_environment_proxies_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.1:3128")
    rec = Recorder()
    with client_for(policy(), rec) as client:
        client.get("http://data.example.org/")
    assert rec.seen[0].url.host == PUBLIC_V4
