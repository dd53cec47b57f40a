"""Typed WPS requests: what the KVP and XML parsers produce and the handlers consume.

Both encodings (KVP over GET, XML over POST) and both versions (1.0.0, 2.0.0)
parse into these records, so the handlers never look at raw parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED_VERSIONS = ("2.0.0", "1.0.0")  # preference order: newest first


@dataclass(frozen=True)
class GetCapabilities:
    """GetCapabilities; the version is negotiated from ``accept_versions``."""

    accept_versions: tuple[str, ...] = ()
    #: A ``version`` parameter some clients send anyway (OWSLib does).
    version: str | None = None


@dataclass(frozen=True)
class DescribeProcess:
    version: str
    identifiers: tuple[str, ...]


@dataclass(frozen=True)
class InputValue:
    """One input occurrence as the client sent it, before typing by the process schema.

    Exactly one of ``text`` (literal or complex content), ``href`` (by
    reference) or ``bbox`` (bounding box corners) is set.
    """

    identifier: str
    text: str | None = None
    href: str | None = None
    bbox: tuple[float, ...] | None = None
    crs: str | None = None
    mime_type: str | None = None
    data_type: str | None = None
    #: The content was XML markup (ComplexData child elements), serialised to ``text``.
    is_xml: bool = False


@dataclass(frozen=True)
class OutputRequest:
    identifier: str
    #: True: by reference; False: by value; None: the server's default (value).
    as_reference: bool | None = None
    mime_type: str | None = None


@dataclass(frozen=True)
class Execute:
    """An Execute request of either version.

    WPS 1.0.0: ``mode`` is ``async`` when ``storeExecuteResponse`` is true,
    ``response`` is ``raw`` for a RawDataOutput. WPS 2.0.0: both come from
    the ``mode`` and ``response`` attributes.
    """

    version: str
    identifier: str
    inputs: tuple[InputValue, ...] = ()
    outputs: tuple[OutputRequest, ...] = ()
    response: str = "document"  # document | raw
    mode: str = "sync"  # sync | async | auto
    status: bool = False
    lineage: bool = False


@dataclass(frozen=True)
class JobRequest:
    """GetStatus, GetResult or Dismiss (WPS 2.0.0)."""

    operation: str
    version: str
    job_id: str


WpsRequest = GetCapabilities | DescribeProcess | Execute | JobRequest
