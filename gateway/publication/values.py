"""An inline output value as its own bytes and media type.

One rule for every place a value leaves the JSON world: an output published
by reference (its file under ``/jobs/{id}/outputs/``) and the raw encodings of
OGC API results (a bare value, a ``multipart/related`` part):

* a string whose schema names a ``contentMediaType`` is that document: XML as
  XML, GeoJSON as GeoJSON; with ``contentEncoding: base64`` (or ``binary``,
  which JSON carries as base64) it is decoded to its bytes first;
* any other string is a literal: ``text/plain; charset=utf-8``, without JSON quotes;
* everything else (numbers, booleans, objects, arrays) is ``application/json``.

A qualified value (``{"value": ..., "mediaType": ..., "encoding": ...}``) names its
own media type and encoding, which win over the schema's.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
from dataclasses import dataclass
from typing import Any

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
OCTET = "application/octet-stream"
#: ``contentEncoding`` values whose JSON form is base64 text.
BASE64_ENCODINGS = ("base64", "binary")
_EXTENSIONS = {
    "application/json": ".json",
    "application/xml": ".xml",
    "text/xml": ".xml",
    "text/plain": ".txt",
    "image/tiff": ".tif",
    "application/geo+json": ".geojson",
}


@dataclass(frozen=True)
class EncodedValue:
    """The bytes of one output value, their media type and a file name extension."""

    data: bytes
    media_type: str

    @property
    def extension(self) -> str:
        base = self.media_type.split(";")[0].strip().lower()
        if base in _EXTENSIONS:
            return _EXTENSIONS[base]
        if base.endswith("+xml"):
            return ".xml"
        if base.endswith("+json"):
            return ".json"
        return mimetypes.guess_extension(base) or ".bin"


def _schema_facts(schema: Any) -> tuple[str | None, str | None]:
    """``(contentMediaType, contentEncoding)`` of a schema (first of a oneOf/anyOf)."""
    if not isinstance(schema, dict):
        return None, None
    media, encoding = schema.get("contentMediaType"), schema.get("contentEncoding")
    if media is None:
        for key in ("oneOf", "anyOf"):
            for alt in schema.get(key) or []:
                alt_media, alt_encoding = _schema_facts(alt)
                if alt_media:
                    return alt_media, alt_encoding
    return (
        str(media) if isinstance(media, str) else None,
        str(encoding) if isinstance(encoding, str) else None,
    )


def encode_value(schema: Any, value: Any) -> EncodedValue:
    """``value`` (an inline output value) as bytes, by the rules in the module docstring."""
    media, encoding = _schema_facts(schema)
    if isinstance(value, dict) and "value" in value and "href" not in value:
        media = value.get("mediaType") or media
        encoding = value.get("encoding") or encoding
        value = value["value"]
    if isinstance(value, str) and media:
        if encoding in BASE64_ENCODINGS:
            try:
                return EncodedValue(base64.b64decode(value, validate=True), str(media))
            except (binascii.Error, ValueError):
                pass  # not base64 after all: the text itself
        return EncodedValue(value.encode("utf-8"), str(media))
    if isinstance(value, str):
        return EncodedValue(value.encode("utf-8"), TEXT)
    return EncodedValue(json.dumps(value, ensure_ascii=False).encode("utf-8"), JSON)
