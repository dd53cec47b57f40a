"""Guarded outbound requests: the only way the gateway reaches user-named URLs.

Every request the gateway makes on a user's behalf -- fetching inputs, STAC
Items, delivering callbacks -- goes through :class:`EgressPolicy` (scheme,
DNS resolution once, address policy with allow-lists) and, for HTTP, through
:class:`GuardedTransport`, which connects to the checked address and checks
every redirect hop again; :class:`DeadlineTransport` bounds a request's
wall-clock time. Errors are listed in :mod:`gateway.egress.errors`.
"""

from gateway.egress.deadline import DeadlineTransport
from gateway.egress.errors import EgressError, EgressRefused, UnresolvableHost
from gateway.egress.policy import Destination, EgressPolicy, Resolver, refusal_reason
from gateway.egress.transport import GuardedTransport, guarded_client

__all__ = [
    "DeadlineTransport",
    "Destination",
    "EgressError",
    "EgressPolicy",
    "EgressRefused",
    "GuardedTransport",
    "Resolver",
    "UnresolvableHost",
    "guarded_client",
    "refusal_reason",
]
