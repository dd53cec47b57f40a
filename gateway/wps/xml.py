"""XML plumbing shared by the WPS facade: namespaces, element builders, safe parsing.

Every document is built with :mod:`lxml` element builders; user values only
ever become element text or attribute values (escaped by lxml), never markup
pasted into a template. Parsing refuses DTDs, entities and network access, so
a request cannot make the gateway read files or URLs (XXE) or blow up memory
(entity expansion).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from lxml import etree
from lxml.builder import ElementMaker

WPS1 = "http://www.opengis.net/wps/1.0.0"
OWS11 = "http://www.opengis.net/ows/1.1"
WPS2 = "http://www.opengis.net/wps/2.0"
OWS2 = "http://www.opengis.net/ows/2.0"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML_NS = "http://www.w3.org/XML/1998/namespace"

NSMAP1 = {"wps": WPS1, "ows": OWS11, "xlink": XLINK, "xsi": XSI}
NSMAP2 = {"wps": WPS2, "ows": OWS2, "xlink": XLINK, "xsi": XSI}

SCHEMA_LOCATIONS = {
    "capabilities1": f"{WPS1} http://schemas.opengis.net/wps/1.0.0/wpsGetCapabilities_response.xsd",
    "describe1": f"{WPS1} http://schemas.opengis.net/wps/1.0.0/wpsDescribeProcess_response.xsd",
    "execute1": f"{WPS1} http://schemas.opengis.net/wps/1.0.0/wpsExecute_response.xsd",
    "wps2": f"{WPS2} http://schemas.opengis.net/wps/2.0/wps.xsd",
    "ows11": f"{OWS11} http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd",
    "ows2": f"{OWS2} http://schemas.opengis.net/ows/2.0/owsExceptionReport.xsd",
}

#: Builders: qualified WPS 1.0 / OWS 1.1 / WPS 2.0 / OWS 2.0 elements, and
#: unqualified (no-namespace) elements, which the WPS 1.0 DescribeProcess
#: schema and the WPS 2.0 ``LiteralDataDomain`` require.
W1 = ElementMaker(namespace=WPS1, nsmap=NSMAP1)
O1 = ElementMaker(namespace=OWS11, nsmap=NSMAP1)
W2 = ElementMaker(namespace=WPS2, nsmap=NSMAP2)
O2 = ElementMaker(namespace=OWS2, nsmap=NSMAP2)
U = ElementMaker()

XML_MEDIA_TYPE = "text/xml; charset=utf-8"

_NOT_XML_CHAR = re.compile(r"[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


class XmlSyntaxError(ValueError):
    """The request body is not well-formed (or uses DTDs / entities, which we refuse)."""


def safe_text(value: object) -> str:
    """``str(value)`` with characters XML 1.0 cannot carry replaced by U+FFFD.

    Job messages (stderr tails) and echoed user strings may hold control
    characters; lxml refuses them, which must not turn into a 500.
    """
    return _NOT_XML_CHAR.sub("\ufffd", str(value))


def qn(namespace: str, local: str) -> str:
    """Clark notation ``{ns}local`` for an element or attribute name."""
    return f"{{{namespace}}}{local}"


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted XML; raises :class:`XmlSyntaxError` for anything unsafe or broken."""
    if not data.strip():
        raise XmlSyntaxError("the request body is empty")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlSyntaxError(f"the request body is not well-formed XML: {exc.msg}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise XmlSyntaxError("XML documents with a DOCTYPE are not accepted")
    return root


def parse_fragment(text: str) -> etree._Element | None:
    """An XML value (e.g. a ComplexData output) as an element, or None if it is not XML."""
    stripped = text.strip()
    if not stripped.startswith("<"):
        return None
    try:
        return parse_xml(stripped.encode("utf-8"))
    except XmlSyntaxError:
        return None


def to_bytes(element: etree._Element) -> bytes:
    """Serialise a response document (UTF-8, with XML declaration)."""
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8", pretty_print=False)


def element_text(element: etree._Element | None) -> str | None:
    """Stripped text of an element (None when absent or empty)."""
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return text or None


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def namespace_of(element: etree._Element) -> str | None:
    return etree.QName(element).namespace


def utc_timestamp(moment: datetime | None = None) -> str:
    """``2024-01-02T03:04:05Z`` (xs:dateTime, UTC)."""
    value = (moment or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
