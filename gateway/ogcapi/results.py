"""The results of a successful job, encoded as OGC API - Processes 1.0 asks.

``job.results`` is already the OGC results mapping (output id -> inline value
or ``{"href", "type"}`` for published files). How it goes on the wire in a
synchronous execute response depends on the execute request's ``response``
(18-062r2, /req/core/process-execute-sync-*):

* ``document`` -> 200, ``application/json``, the results mapping;
* ``raw``, one output by value -> 200 with the bare value, as
  :func:`gateway.publication.values.encode_value` gives it: a string output whose
  schema names a ``contentMediaType`` (or a qualified value with a ``mediaType``)
  is sent as that document (base64 decoded for ``contentEncoding: base64``), a
  literal string as ``text/plain``, any other value as ``application/json``. A
  file output requested by value is streamed from the publication store;
* ``raw``, every output by reference -> 204 with one ``Link`` header per output;
* ``raw``, several outputs -> 200 ``multipart/related`` (RFC 2387, built by
  :mod:`gateway.ogcapi.multipart` with the ``email`` package), one part per
  output with its own ``Content-Type`` and ``Content-ID: <output id>``; outputs
  by reference, and files too large to inline, are empty parts with
  ``Content-Location``;
* ``raw`` with no output produced -> 204.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Response

from gateway.errors import ServiceUnavailable
from gateway.http.responses import send_published
from gateway.jobs.records import Job
from gateway.ogcapi.documents import REL_RESULTS
from gateway.ogcapi.multipart import RelatedBody
from gateway.publication.publisher import PublicationError, Publisher
from gateway.publication.trees import MAX_DEPTH, SAFE_PART
from gateway.publication.values import encode_value

OCTET = "application/octet-stream"
#: Largest published file inlined in a multipart response (larger: Content-Location).
INLINE_FILE_MAX = 1_048_576
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def published_file(root: Path, job_id: str, name: str) -> Path | None:
    """The published file ``name`` of ``job_id`` under ``root``, or None.

    Only a plain file name (no separators, no dot-dot, no leading dot) in the
    job's folder, or a path of such names inside a published directory (a Zarr
    store; there a leading dot is allowed, never dot-dot), is accepted, and the
    resolved path must stay under ``root`` (a symlink planted in the store
    cannot lead out of it).
    """
    first, *inner = name.split("/")
    if not _SAFE_NAME.match(first) or not _SAFE_NAME.match(job_id):
        return None
    if len(inner) > MAX_DEPTH + 1 or not all(SAFE_PART.match(part) for part in inner):
        return None
    base = root.resolve()
    path = (base / job_id / name).resolve()
    if not path.is_relative_to(base / job_id) or not path.is_file():
        return None
    return path


def s3_redirect(publisher: Publisher, job: Job, name: str) -> Response | None:
    """302 to a fresh URL of ``name`` when ``job`` published it to S3, else None.

    The link is made after the caller checked who may read the job, and is not
    cached: a pre-signed URL stops working after its expiry, the route does not.
    """
    try:
        location = publisher.location(job, name)
    except PublicationError as exc:
        raise ServiceUnavailable(f"cannot link the S3 object: {exc.detail}") from None
    if location is None:
        return None
    return Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def media_type_of(name: str, declared: str | None = None) -> str:
    if declared:
        return declared
    guessed, _ = mimetypes.guess_type(name)
    return guessed or OCTET


@dataclass(frozen=True)
class _Output:
    name: str
    value: Any
    by_reference: bool

    @property
    def is_link(self) -> bool:
        return isinstance(self.value, dict) and isinstance(self.value.get("href"), str)


class ResultsEncoder:
    """Encodes one job's results.

    ``declared`` is the process's output descriptions (their schemas give media
    types and the default output set; empty if the process is no longer offered);
    files are read back from the publication store under ``publication_root``.
    """

    def __init__(
        self,
        declared: dict[str, dict[str, Any]],
        publication_root: Path,
        base_url: str,
        inline_max: int = INLINE_FILE_MAX,
    ) -> None:
        self.declared = declared
        self.root = publication_root
        self.base_url = base_url
        self.inline_max = inline_max

    def raw(self, job: Job, headers: dict[str, str] | None = None) -> Response:
        """The raw encoding of ``job``'s results (the callers answer ``document`` themselves)."""
        headers = dict(headers or {})
        results = job.results or {}
        outputs = self._outputs(job, results)
        if not outputs:
            return Response(status=204, headers=headers)
        if len(outputs) == 1 and not outputs[0].by_reference:
            return self._one_value(job, outputs[0], headers)
        if all(o.is_link for o in outputs) and all(o.by_reference for o in outputs):
            return self._links(outputs, headers)
        return self._multipart(job, outputs, headers)

    # -- selection ----------------------------------------------------------

    def _outputs(self, job: Job, results: dict[str, Any]) -> list[_Output]:
        requested = job.outputs_request or {}
        wanted = [n for n in (requested or self.declared or results) if n in results]
        # in the process description's order (stable, whatever the store keeps)
        names = [n for n in self.declared if n in wanted] + [
            n for n in wanted if n not in self.declared
        ]
        outputs = []
        for name in names:
            mode = (requested.get(name) or {}).get("transmissionMode", "value")
            value = results[name]
            is_link = isinstance(value, dict) and isinstance(value.get("href"), str)
            # A file requested by value that cannot be read back stays a reference.
            by_ref = mode == "reference" or (is_link and self._local(job, value) is None)
            outputs.append(_Output(name, value, by_ref))
        return outputs

    def _local(self, job: Job, ref: dict[str, Any]) -> Path | None:
        prefix = f"{self.base_url}/jobs/{job.id}/outputs/"
        href = str(ref.get("href", ""))
        if not href.startswith(prefix):
            return None
        return published_file(self.root, job.id, href[len(prefix) :])

    # -- encodings ----------------------------------------------------------

    def _value_bytes(self, name: str, value: Any) -> tuple[bytes, str]:
        """A bare inline value and its media type (see :func:`encode_value`)."""
        encoded = encode_value(self.declared.get(name, {}).get("schema", {}), value)
        return encoded.data, encoded.media_type

    def _one_value(self, job: Job, output: _Output, headers: dict[str, str]) -> Response:
        if output.is_link:
            path = self._local(job, output.value)
            assert path is not None  # by_reference otherwise
            response = send_published(path, media_type_of(path.name, output.value.get("type")))
            response.headers.update(headers)
            return response
        body, media = self._value_bytes(output.name, output.value)
        return Response(body, 200, headers, content_type=media)

    def _links(self, outputs: list[_Output], headers: dict[str, str]) -> Response:
        response = Response(status=204, headers=headers)
        for output in outputs:
            ref = output.value
            parts = [f"<{ref['href']}>", f'rel="{REL_RESULTS}"', f'title="{output.name}"']
            if ref.get("type"):
                parts.append(f'type="{ref["type"]}"')
            response.headers.add("Link", "; ".join(parts))
        return response

    def _multipart(self, job: Job, outputs: list[_Output], headers: dict[str, str]) -> Response:
        related = RelatedBody()
        for output in outputs:
            if not output.is_link:
                data, media = self._value_bytes(output.name, output.value)
                related.add(output.name, media, data)
                continue
            ref = output.value
            media = media_type_of(ref["href"], ref.get("type"))
            path = None if output.by_reference else self._local(job, ref)
            if path is not None and path.stat().st_size <= self.inline_max:
                related.add(output.name, media, path.read_bytes())
            else:
                related.add(output.name, media, b"", location=ref["href"])
        body, content_type = related.encode()
        return Response(body, 200, headers, content_type=content_type)
