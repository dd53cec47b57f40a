"""Errors of the outbound-request guard::

EgressError           an outbound request was not made
├── EgressRefused     the policy forbids the destination (permanent: scheme,
│                     loopback/private/link-local/... address, redirect into one)
└── UnresolvableHost  the host name does not resolve (transient at fetch time;
                      refused with 400 at submission time)
"""

from __future__ import annotations


class EgressError(Exception):
    """Base: an outbound request was not made. ``detail`` is safe to show to users."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class EgressRefused(EgressError):
    """The destination is not allowed by the egress policy."""


class UnresolvableHost(EgressError):
    """The destination's host name cannot be resolved."""
