"""GetCapabilities documents (WPS 1.0.0 and 2.0.0) and version negotiation."""

from __future__ import annotations

import re

from lxml import etree
from lxml.builder import ElementMaker

from gateway.wps.context import WpsContext
from gateway.wps.exceptions import VERSION_FAILED, WpsError, invalid
from gateway.wps.model import SUPPORTED_VERSIONS, GetCapabilities
from gateway.wps.xml import (
    O1,
    O2,
    SCHEMA_LOCATIONS,
    W1,
    W2,
    WPS1,
    XLINK,
    XML_NS,
    XSI,
    qn,
    safe_text,
)
from processes.definition import ProcessDefinition

LANGUAGE = "en-US"
_OPERATIONS_1 = ("GetCapabilities", "DescribeProcess", "Execute")
_OPERATIONS_2 = (
    "GetCapabilities",
    "DescribeProcess",
    "Execute",
    "GetStatus",
    "GetResult",
    "Dismiss",
)
_VERSION_TYPE = re.compile(r"^\d+\.\d?\d\.\d?\d$")


def negotiate(request: GetCapabilities) -> str:
    """The version to answer GetCapabilities in (OWS Common 7.3.2).

    The first supported entry of AcceptVersions wins; none supported is
    VersionNegotiationFailed. Without AcceptVersions, a supported ``version``
    parameter is honoured (OWSLib sends one), else the newest version.
    """
    if request.accept_versions:
        for version in request.accept_versions:
            if version in SUPPORTED_VERSIONS:
                return version
        raise WpsError(
            VERSION_FAILED,
            f"none of the versions {', '.join(request.accept_versions)} is supported; "
            f"this server offers {', '.join(SUPPORTED_VERSIONS)}",
            locator="AcceptVersions",
        )
    if request.version:
        if request.version not in SUPPORTED_VERSIONS:
            raise invalid(
                "version",
                f"version '{request.version}' is not supported; "
                f"use one of {', '.join(SUPPORTED_VERSIONS)}",
            )
        return request.version
    return SUPPORTED_VERSIONS[0]


def process_version(process: ProcessDefinition) -> str | None:
    """The process version if it is an OWS VersionType (x.y.z), else None."""
    return process.version if _VERSION_TYPE.match(process.version) else None


def _keywords(maker: ElementMaker, keywords: list[str]) -> list[etree._Element]:
    if not keywords:
        return []
    return [maker.Keywords(*[maker.Keyword(safe_text(k)) for k in keywords])]


def _identification(ctx: WpsContext, maker: ElementMaker, version: str) -> etree._Element:
    return maker.ServiceIdentification(
        maker.Title(safe_text(ctx.title)),
        maker.Abstract(safe_text(ctx.abstract)),
        *_keywords(maker, ["WPS", "HPC", "Slurm", "Earth observation"]),
        maker.ServiceType("WPS"),
        maker.ServiceTypeVersion(version),
        maker.Fees("NONE"),
        maker.AccessConstraints("NONE"),
    )


def _provider(ctx: WpsContext, maker: ElementMaker) -> etree._Element:
    return maker.ServiceProvider(
        maker.ProviderName(safe_text(ctx.title)),
        maker.ProviderSite({qn(XLINK, "href"): ctx.base_url}),
        maker.ServiceContact(),
    )


def _operations(
    ctx: WpsContext, maker: ElementMaker, names: tuple[str, ...], post_only: tuple[str, ...] = ()
) -> etree._Element:
    href = {qn(XLINK, "href"): ctx.wps_url}
    operations = []
    for name in names:
        methods = [maker.Post(dict(href))]
        if name not in post_only:
            methods.insert(0, maker.Get(dict(href)))
        operations.append(maker.Operation(maker.DCP(maker.HTTP(*methods)), name=name))
    return maker.OperationsMetadata(*operations)


def capabilities_1(ctx: WpsContext) -> etree._Element:
    """WPS 1.0.0 ``wps:Capabilities``."""
    processes = []
    for process in ctx.services.registry:
        brief = W1.Process(
            O1.Identifier(process.id),
            O1.Title(safe_text(process.title)),
            *([O1.Abstract(safe_text(process.description))] if process.description else []),
        )
        brief.set(qn(WPS1, "processVersion"), process.version)
        processes.append(brief)
    doc = W1.Capabilities(
        _identification(ctx, O1, "1.0.0"),
        _provider(ctx, O1),
        _operations(ctx, O1, _OPERATIONS_1),
        W1.ProcessOfferings(*processes),
        W1.Languages(
            W1.Default(O1.Language(LANGUAGE)),
            W1.Supported(O1.Language(LANGUAGE)),
        ),
        {"service": "WPS", "version": "1.0.0", qn(XML_NS, "lang"): LANGUAGE},
    )
    doc.set(qn(XSI, "schemaLocation"), SCHEMA_LOCATIONS["capabilities1"])
    return doc


def process_properties(process: ProcessDefinition) -> dict[str, str]:
    """WPS 2.0 ``processPropertiesAttributes`` of a process."""
    attrs = {
        "jobControlOptions": " ".join(process.jobControlOptions),
        "outputTransmission": " ".join(process.outputTransmission),
    }
    version = process_version(process)
    if version:
        attrs["processVersion"] = version
    return attrs


def capabilities_2(ctx: WpsContext) -> etree._Element:
    """WPS 2.0.0 ``wps:Capabilities``."""
    summaries = [
        W2.ProcessSummary(
            O2.Title(safe_text(process.title)),
            *([O2.Abstract(safe_text(process.description))] if process.description else []),
            *_keywords(O2, process.keywords),
            O2.Identifier(process.id),
            process_properties(process),
        )
        for process in ctx.services.registry
    ]
    doc = W2.Capabilities(
        _identification(ctx, O2, "2.0.0"),
        _provider(ctx, O2),
        _operations(ctx, O2, _OPERATIONS_2, post_only=("Execute",)),
        W2.Contents(*summaries),
        {"service": "WPS", "version": "2.0.0"},
    )
    doc.set(qn(XSI, "schemaLocation"), SCHEMA_LOCATIONS["wps2"])
    return doc
