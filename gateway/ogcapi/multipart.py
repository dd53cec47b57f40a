"""``multipart/related`` bodies (RFC 2387) built with the standard library's ``email`` package.

The raw encoding of several outputs (OGC 18-062r2, /req/core/process-execute-sync-raw-mixed-multi
and /req/core/job-results-async-raw-mixed-multi) is one MIME part per output with
its own ``Content-Type`` and ``Content-ID``. :class:`RelatedBody` collects the
parts as :class:`email.message.MIMEPart` objects (boundary, header syntax and
parameter quoting are the ``email`` package's) and :meth:`RelatedBody.encode`
serialises them for HTTP.

Parts carry ``Content-Transfer-Encoding: binary``: HTTP is 8-bit clean, and a
client must get each output's own bytes. The stock generator rewrites the line
endings of every body it writes, which would corrupt a GeoTIFF (and change an XML
document's newlines), so :class:`_BinaryGenerator` writes binary bodies verbatim.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import EmailMessage, MIMEPart
from email.policy import HTTP


class _BinaryGenerator(BytesGenerator):
    """``BytesGenerator`` that writes ``binary`` bodies byte for byte."""

    def _writeBody(self, msg: EmailMessage) -> None:  # the stdlib generator's hook name
        if str(msg.get("Content-Transfer-Encoding", "")).lower() == "binary":
            payload = msg.get_payload(decode=True)
            self._fp.write(payload if isinstance(payload, bytes) else b"")  # type: ignore[attr-defined]
            return
        super()._writeBody(msg)  # type: ignore[misc]


def split_media_type(media_type: str) -> tuple[str, str, dict[str, str]]:
    """``"image/tiff; application=geotiff"`` -> ``("image", "tiff", {"application": "geotiff"})``.

    Parsed by the ``email`` header machinery (quoting, case, whitespace); anything
    that is not ``type/subtype`` becomes ``application/octet-stream``.
    """
    probe = EmailMessage()
    probe["Content-Type"] = media_type
    header = probe["Content-Type"]
    params = {k: str(v) for k, v in getattr(header, "params", {}).items()}
    maintype, subtype = probe.get_content_maintype(), probe.get_content_subtype()
    if header is None or getattr(header, "defects", None) or "/" not in media_type:
        maintype, subtype, params = "application", "octet-stream", {}
    return maintype, subtype, params


@dataclass
class RelatedBody:
    """A ``multipart/related`` document under construction (parts in order)."""

    parts: list[MIMEPart] = field(default_factory=list)

    def add(
        self, content_id: str, media_type: str, data: bytes, location: str | None = None
    ) -> None:
        """One part: ``data`` as ``media_type``, ``Content-ID: <content_id>``.

        ``location`` (an output by reference, or a file too large to inline) is
        sent as ``Content-Location``; such a part usually has an empty body.
        """
        maintype, subtype, params = split_media_type(media_type)
        part = MIMEPart(policy=HTTP)
        headers = [f"Content-Location: {location}"] if location else None
        part.set_content(
            data,
            maintype,
            subtype,
            cte="binary",
            cid=f"<{content_id}>",
            params=params,
            headers=headers,
        )
        self.parts.append(part)

    def encode(self) -> tuple[bytes, str]:
        """The HTTP body and its ``Content-Type`` (with ``boundary``, ``type`` and ``start``)."""
        root = MIMEPart(policy=HTTP)
        root.make_related()
        for part in self.parts:
            root.attach(part)
        if self.parts:
            root.set_param("type", self.parts[0].get_content_type())
            root.set_param("start", str(self.parts[0]["Content-ID"]))
        buffer = io.BytesIO()
        _BinaryGenerator(buffer, policy=HTTP).flatten(root)
        _headers, _, body = buffer.getvalue().partition(b"\r\n\r\n")
        return body, str(root["Content-Type"])
