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
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from flask import Flask, request

from gateway.errors import BadRequest, PayloadTooLarge

#: Deepest nesting of arrays/objects accepted (process inputs need a handful).
MAX_DEPTH = 64
#: Marks a request whose chunked body went over the limit (environ key).
OVERSIZED = "hpcgw.body_oversized"
_CHUNK = 65536
_BOM = b"\xef\xbb\xbf"

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


# -- strict JSON -------------------------------------------------------------------


def decode_json(raw: bytes | str, what: str = "the request body") -> Any:
    """``raw`` decoded as strict JSON (see module docstring); BadRequest naming the spot."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.startswith(_BOM):  # RFC 8259 section 8.1: a parser may ignore it
        data = data[len(_BOM) :]
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        where = pointer_at(data, exc.pos)
        at = f" at {where}" if where else ""
        raise BadRequest(f"{what} is not valid JSON{at}: {_reason(exc.msg)}") from None
    _check_depth(value, what)
    return value


def _reason(message: str) -> str:
    """orjson's message, in the words of this module's rules."""
    if "surrogate" in message:
        return f"{message} (text must be UTF-8 without lone surrogates)"
    if "infinity" in message:
        return f"{message} (numbers must fit a binary64 double)"
    if "depth limit" in message:
        return f"nested deeper than {MAX_DEPTH} levels"
    return message


def _check_depth(value: Any, what: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH (iteratively: no recursion to exhaust)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            children: Iterable[tuple[str, Any]] = node.items()
        elif isinstance(node, list):
            children = ((str(i), v) for i, v in enumerate(node))
        else:
            continue
        if len(path) >= MAX_DEPTH:
            shown = "/" + "/".join(_escape(p) for p in path[:4]) + "/..."
            raise BadRequest(f"{what} is nested deeper than {MAX_DEPTH} levels at {shown}")
        for key, child in children:
            if isinstance(child, dict | list):
                stack.append((child, (*path, key)))


_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:,]', re.S)


def pointer_at(data: bytes, pos: int) -> str:
    """The JSON pointer of the value being read at character ``pos`` of ``data`` ("" at top).

    A best-effort scan of the text before ``pos`` (strings and punctuation
    only), used to name the offending input in an error message.
    """
    text = data.decode("utf-8", "replace")[:pos].encode("utf-8")
    stack: list[list[Any]] = []  # [container, key or index, expecting a key]
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in (b"{", b"["):
            stack.append([token, "" if token == b"{" else 0, token == b"{"])
        elif token in (b"}", b"]"):
            if stack:
                stack.pop()
        elif not stack:
            continue
        elif token == b",":
            top = stack[-1]
            if top[0] == b"[":
                top[1] += 1
            else:
                top[2] = True
        elif token == b":":
            stack[-1][2] = False
        elif stack[-1][0] == b"{" and stack[-1][2]:
            stack[-1][1] = token[1:-1].decode("utf-8", "replace")
    segments = [str(entry[1]) for entry in stack]
    if len(segments) > 8:  # a pointer into deep nesting: its start is enough to find it
        return "/" + "/".join(_escape(p) for p in segments[:4]) + "/..."
    return "".join("/" + _escape(p) for p in segments)


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")
