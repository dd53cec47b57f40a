"""The address policy: which URLs and resolved addresses an outbound request may reach.

A destination is allowed when its scheme is allowed, it names a host, and
*every* address the host resolves to is a public unicast address -- or lies
in an allow-listed CIDR, or the host name itself is allow-listed, or the URL's
scheme, host and port are an allow-listed origin (``egress.allow_origins``). Refused by
default: loopback, link-local (incl. the 169.254.169.254 metadata service),
private (RFC 1918, ``fc00::/7``), shared (``100.64/10``), multicast,
unspecified, reserved and documentation ranges, and IPv6 forms that embed
an IPv4 address (``::ffff:127.0.0.1``, NAT64, 6to4) are judged by that address.

Resolution goes through an injectable :data:`Resolver` so tests can make any
name resolve anywhere without touching DNS.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.egress.errors import EgressRefused, UnresolvableHost
from gateway.settings_workflow import EgressSettings, Origin

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses``; raises :class:`UnresolvableHost` when the name does not resolve.
Resolver = Callable[[str, int], list[IPAddress]]

DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve with the operating system (``getaddrinfo``), unique addresses in order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHost(f"host '{host}' cannot be resolved ({exc})") from None
    seen: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if addr not in seen:
            seen.append(addr)
    if not seen:
        raise UnresolvableHost(f"host '{host}' has no address")
    return seen


def refusal_reason(addr: IPAddress) -> str | None:
    """Why ``addr`` is not a public unicast address, or None when it is."""
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal_reason(embedded)
            return f"{inner} (embedded in {addr})" if inner else None
        if addr.teredo is not None:
            return "a Teredo tunnel address"
    checks = (
        ("unspecified", addr.is_unspecified),
        ("loopback", addr.is_loopback),
        ("link-local", addr.is_link_local),
        ("multicast", addr.is_multicast),
        ("private", addr.is_private),
        ("shared (carrier-grade NAT)", addr in _SHARED),
        ("reserved", addr.is_reserved),
        ("site-local", isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local),
        ("non-global", not addr.is_global),
    )
    for label, hit in checks:
        if hit:
            return f"a {label} address"
    return None


@dataclass(frozen=True)
class Destination:
    """A checked destination: connect to one of ``addresses``, present ``host``."""

    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


class EgressPolicy:
    """Decides whether a URL may be requested; resolves each host once per check."""

    def __init__(
        self,
        allow_cidrs: Iterable[str] = (),
        allow_hosts: Iterable[str] = (),
        schemes: Sequence[str] = ("http", "https"),
        resolver: Resolver = system_resolver,
        allow_origins: Iterable[str] = (),
    ) -> None:
        self.allow_networks = tuple(ipaddress.ip_network(c, strict=False) for c in allow_cidrs)
        self.allow_hosts = tuple(h.lower().rstrip(".") for h in allow_hosts)
        self.allow_origins = frozenset(Origin.parse(o) for o in allow_origins)
        self.schemes = tuple(schemes)
        self.resolver = resolver

    @classmethod
    def from_settings(
        cls, settings: EgressSettings, resolver: Resolver = system_resolver
    ) -> EgressPolicy:
        return cls(
            settings.allow_cidrs,
            settings.allow_hosts,
            resolver=resolver,
            allow_origins=settings.allow_origins,
        )

    def host_allowed(self, host: str) -> bool:
        """True when ``host`` is allow-listed by name (exact, or ``.suffix``)."""
        name = host.lower().rstrip(".")
        for entry in self.allow_hosts:
            if name == entry or (entry.startswith(".") and name.endswith(entry)):
                return True
        return False

    def address_allowed(self, addr: IPAddress) -> str | None:
        """None when ``addr`` may be reached, else the reason it may not."""
        if any(addr in net for net in self.allow_networks):
            return None
        return refusal_reason(addr)

    def check_url(self, url: str) -> Destination:
        """Scheme, host and resolved-address checks; raises :class:`EgressRefused`."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise EgressRefused(f"'{url}' is not a valid URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            allowed = ", ".join(self.schemes)
            raise EgressRefused(f"URL scheme '{scheme or '(none)'}' is not allowed (use {allowed})")
        host = parts.hostname
        if not host:
            raise EgressRefused(f"'{url}' names no host")
        return self.check_host(scheme, host, port or DEFAULT_PORTS.get(scheme, 443))

    def check_host(self, scheme: str, host: str, port: int) -> Destination:
        """Resolve ``host`` once and check every address; raises :class:`EgressRefused`.

        An allow-listed origin (exactly this scheme, host as written and port) skips
        the address checks; the same host on another port is judged like any other.

        A host that is neither an IP address nor a valid DNS name (percent-encoded
        ``%31%32%37.0.0.1``, ``127.1``, ``0x7f.1``, spaces...) is refused before any
        resolution: what the resolver would make of it is not ours to guess.
        """
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        elif not is_host_name(host):
            raise EgressRefused(f"'{host}' is not a valid host name or IP address")
        else:
            addresses = self.resolver(host, port)
        origin = Origin(scheme, host.lower().strip("[]").rstrip("."), port)
        if origin not in self.allow_origins and not self.host_allowed(host):
            for addr in addresses:
                reason = self.address_allowed(addr)
                if reason:
                    shown = host if literal is not None else f"{host} (resolves to {addr})"
                    raise EgressRefused(
                        f"requests to {shown} are not allowed: it is {reason}; "
                        "ask the operator to allow-list it if it is a trusted internal service"
                    )
        return Destination(scheme, host, port, tuple(addresses))


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def is_host_name(host: str) -> bool:
    """True for a DNS host name (RFC 1123 labels, IDNA for non-ASCII; a final dot allowed).

    The last label must not be all digits or hex (RFC 3696 section 2): ``127.1``
    or ``0x7f.0.0.1`` are address shorthands the C resolver would accept.
    """
    name = host[:-1] if host.endswith(".") else host
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return False
    labels = ascii_name.split(".")
    if not name or len(ascii_name) > 253 or not all(_LABEL.fullmatch(lb) for lb in labels):
        return False
    return not re.fullmatch(r"[0-9]+|0x[0-9a-f]*", labels[-1])


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
