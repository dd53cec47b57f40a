"""Strict JSON (RFC 8259) for everything the gateway reads as JSON.

Execute and quotation bodies, budgets, WPS JSON inputs, and the files a job's
own code writes (``outputs.json``, ``progress.json``): UTF-8 only, no lone
surrogates (a string Python could hold but not write back out: it broke a
job's results for good), no ``NaN``/``Infinity``, no number beyond a binary64
double, nesting at most :data:`MAX_DEPTH` deep. Every refusal is a 400
:class:`~gateway.errors.BadRequest` naming where the offending value is (a JSON
pointer such as ``/inputs/number_input``). Protocol-neutral: no Flask here, so
the worker can use it (:mod:`gateway.http_input` is the HTTP side).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

from gateway.errors import BadRequest

MAX_DEPTH = 64
_BOM = b"\xef\xbb\xbf"


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
