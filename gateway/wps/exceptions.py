"""WPS exceptions and their OWS ExceptionReport documents.

:class:`WpsError` carries an OWS ``exceptionCode``, an optional ``locator``
and the HTTP status. Errors from the job service (:class:`~gateway.errors.GatewayError`)
are translated through their ``wps_code``. WPS 1.0.0 answers with an OWS 1.1
report, WPS 2.0.0 with an OWS 2.0 report. HTTP statuses follow OWS Common 2.0
(table 28) for the generic codes; the job-service codes keep the gateway's
status (404 for an unknown process or job, or results not ready).
"""

from __future__ import annotations

from lxml import etree

from gateway.errors import GatewayError
from gateway.wps.xml import (
    NSMAP1,
    NSMAP2,
    O1,
    O2,
    OWS2,
    OWS11,
    SCHEMA_LOCATIONS,
    XML_NS,
    XSI,
    qn,
    safe_text,
)

MISSING = "MissingParameterValue"
INVALID = "InvalidParameterValue"
VERSION_FAILED = "VersionNegotiationFailed"
NOT_SUPPORTED = "OperationNotSupported"
OPTION_NOT_SUPPORTED = "OptionNotSupported"
NO_SUCH_PROCESS = "NoSuchProcess"
NO_SUCH_JOB = "NoSuchJob"
RESULT_NOT_READY = "ResultNotReady"
NO_SUCH_MODE = "NoSuchMode"
NO_APPLICABLE = "NoApplicableCode"

_STATUS = {
    MISSING: 400,
    INVALID: 400,
    VERSION_FAILED: 400,
    NO_SUCH_MODE: 400,
    NOT_SUPPORTED: 501,
    OPTION_NOT_SUPPORTED: 501,
    NO_SUCH_PROCESS: 404,
    NO_SUCH_JOB: 404,
    RESULT_NOT_READY: 404,
    NO_APPLICABLE: 500,
}


class WpsError(Exception):
    """An error reported to a WPS client as an OWS ExceptionReport."""

    def __init__(
        self,
        code: str,
        text: str,
        locator: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.locator = locator
        self.status = status or _STATUS.get(code, 500)
        self.headers = headers or {}


def missing(name: str) -> WpsError:
    return WpsError(MISSING, f"parameter '{name}' is required", locator=name)


def invalid(name: str, text: str) -> WpsError:
    return WpsError(INVALID, text, locator=name)


def from_gateway(error: GatewayError, version: str) -> WpsError:
    """Translate a job-service error for a WPS client of ``version``.

    WPS 1.0.0 has no ``NoSuchProcess`` code: its DescribeProcess and Execute
    report an unknown identifier as ``InvalidParameterValue`` located at
    ``Identifier`` (OGC 05-007r7, tables 38 and 50).
    """
    code = error.wps_code
    if version.startswith("1") and code == NO_SUCH_PROCESS:
        return WpsError(INVALID, error.detail, locator="Identifier", status=400)
    return WpsError(code, error.detail, status=error.status, headers=dict(error.headers))


def exception_report(errors: list[WpsError], version: str) -> etree._Element:
    """An ``ows:ExceptionReport``: OWS 1.1 for WPS 1.0.0, OWS 2.0 for WPS 2.0.0."""
    if version.startswith("2"):
        maker, ows, nsmap, loc, report_version = O2, OWS2, NSMAP2, "ows2", "2.0.0"
    else:
        maker, ows, nsmap, loc, report_version = O1, OWS11, NSMAP1, "ows11", "1.0.0"
    report = maker.ExceptionReport({"version": report_version, qn(XML_NS, "lang"): "en"})
    report.set(qn(XSI, "schemaLocation"), SCHEMA_LOCATIONS[loc])
    for error in errors:
        attrs = {"exceptionCode": error.code}
        if error.locator:
            attrs["locator"] = safe_text(error.locator)
        exc = etree.SubElement(report, qn(ows, "Exception"), attrs, nsmap=nsmap)
        text = etree.SubElement(exc, qn(ows, "ExceptionText"), nsmap=nsmap)
        text.text = safe_text(error.text)
    return report
