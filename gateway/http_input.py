"""The one reader of request bodies and JSON documents, used by every HTTP surface.

Two parts, so no handler can get it wrong on its own:

* :class:`BodyLimit`, WSGI middleware around the whole app: a body sent
  without ``Content-Length`` (chunked) is read here, up to the limit and one
  byte more; a larger one is *refused* (413 via :func:`refuse_oversized`),
  never cut at the limit and acted on. A body within the limit is handed on
  as a sized body, so werkzeug's own ``MAX_CONTENT_LENGTH`` check (413 for a
  ``Content-Length`` over the limit) applies to both kinds alike.
* :func:`decode_json`: strict JSON (RFC 8259) for execute and quotation bodies,
  budgets and WPS JSON inputs -- UTF-8 only, no lone surrogates (a string
  Python could hold but not write back out: it broke a job's results for
  good), no ``NaN``/``Infinity``, no number beyond a binary64 double (integers
  past 64 bits are read as doubles, as JavaScript does), nesting at most
  :data:`MAX_DEPTH` deep. Every refusal is a 400
  :class:`~gateway.errors.BadRequest` that names where the offending value is
  (a JSON pointer such as ``/inputs/number_input``).

Query parameters must be UTF-8 text too (:func:`refuse_non_utf8_query`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, request

from gateway.errors import BadRequest, PayloadTooLarge
from gateway.strict_json import MAX_DEPTH, decode_json

__all__ = ["MAX_DEPTH", "BodyLimit", "decode_json", "install_body_limit", "refuse_oversized"]

#: Deepest nesting of arrays/objects accepted (process inputs need a handful).
#: Marks a request whose chunked body went over the limit (environ key).
OVERSIZED = "hpcgw.body_oversized"
_CHUNK = 65536

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyLimit:
    """WSGI middleware: bodies without ``Content-Length`` are bounded like sized ones."""

    def __init__(self, app: WsgiApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            data = _read_at_most(environ["wsgi.input"], self.limit + 1)
            if len(data) > self.limit:
                environ[OVERSIZED] = True
                data = b""
            environ["wsgi.input"] = io.BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
            # now a sized body: werkzeug ignores Content-Length next to "chunked"
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            del environ["wsgi.input_terminated"]
        return self.app(environ, start_response)


def _read_at_most(stream: Any, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``stream`` (fewer at its end); never reads past ``limit``."""
    parts: list[bytes] = []
    left = limit
    while left > 0:
        chunk = stream.read(min(_CHUNK, left))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def refuse_oversized() -> None:
    """``before_request`` hook: 413 for a chunked body :class:`BodyLimit` found too large."""
    if request.environ.get(OVERSIZED):
        raise PayloadTooLarge("the request body is larger than this server accepts")


def refuse_non_utf8_query() -> None:
    """``before_request`` hook: 400 for a query or form parameter that is not UTF-8 text.

    werkzeug decodes them with replacement characters, so a value sent as
    invalid UTF-8 (or as an encoded surrogate, ``%ED%A0%80``) would reach the
    handlers altered; it is refused instead, naming the parameter.
    """
    _check_urlencoded(request.query_string, "query parameter")
    if request.mimetype == "application/x-www-form-urlencoded":
        _check_urlencoded(request.get_data(cache=True), "form field")


def _check_urlencoded(data: bytes, what: str) -> None:
    for pair in data.split(b"&"):
        name, _, value = pair.partition(b"=")
        try:
            unquote_to_bytes(name + value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            shown = unquote_to_bytes(name).decode("utf-8", "replace")
            raise BadRequest(
                f"{what} '{shown}' is not UTF-8 text (percent-encode UTF-8 bytes)"
            ) from None


def install_body_limit(app: Flask, limit: int) -> None:
    """Bound every request body of ``app`` at ``limit`` bytes, sized or chunked.

    Also refuses query parameters that are not UTF-8 (:func:`refuse_non_utf8_query`).
    """
    app.config["MAX_CONTENT_LENGTH"] = limit
    app.wsgi_app = BodyLimit(app.wsgi_app, limit)  # type: ignore[method-assign]
    # first in line: a body refused for its size is not authenticated or parsed
    hooks = app.before_request_funcs.setdefault(None, [])
    hooks[:0] = [refuse_oversized, refuse_non_utf8_query]
