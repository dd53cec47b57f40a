"""Execution forms generated from an OGC process description, and their answers.

:func:`form_fields` turns each input of a process into a :class:`Field` (what the
template draws: a select for an enum or a boolean, a number field with its
bounds, four numbers for a bounding box, a URL field (plus an optional STAC
asset) for an input given by reference, a text area for JSON); :func:`execute_body`
turns the submitted form back into an OGC execute request, which the job service
validates like any other. Errors name the input they are about
(:func:`field_of_error`), so the page shows them next to the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from processes.definition import ProcessDefinition

BBOX_PARTS = ("minx", "miny", "maxx", "maxy")
#: The form's site choice (the execute request's ``hpcSite``; empty: routing decides).
SITE_FIELD = "hpcSite"
_INPUT_IN_MESSAGE = re.compile(r"input(?:\(s\))? '([^']+)'")


@dataclass(frozen=True)
class Field:
    """One input of the form."""

    name: str
    title: str
    description: str
    #: ``select``, ``number``, ``bbox``, ``reference``, ``json`` or ``text``.
    kind: str
    required: bool
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    default: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def form_fields(process: ProcessDefinition) -> list[Field]:
    """The form's fields, in the description's order."""
    return [_field(name, spec) for name, spec in process.inputs.items()]


def _field(name: str, spec: Mapping[str, Any]) -> Field:
    schema: Mapping[str, Any] = spec.get("schema") or {}
    common: dict[str, Any] = {
        "name": name,
        "title": str(spec.get("title") or name),
        "description": str(spec.get("description") or ""),
        "required": int(spec.get("minOccurs", 1)) > 0,
        "default": "" if schema.get("default") is None else _text(schema.get("default")),
    }
    kind = schema.get("type")
    if isinstance(schema.get("enum"), list):
        return Field(kind="select", options=tuple(str(v) for v in schema["enum"]), **common)
    if kind == "boolean":
        return Field(kind="select", options=("true", "false"), **common)
    if kind in ("integer", "number"):
        return Field(
            kind="number",
            minimum=schema.get("minimum"),
            maximum=schema.get("maximum"),
            step="1" if kind == "integer" else "any",
            **common,
        )
    if kind == "object" and schema.get("format") == "ogc-bbox":
        return Field(kind="bbox", **common)
    if kind == "string" and (schema.get("contentMediaType") or schema.get("format") == "uri"):
        return Field(kind="reference", **common)
    if kind in ("object", "array") or kind is None:
        return Field(kind="json", **common)
    return Field(kind="text", **common)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class FormError(ValueError):
    """A value the form cannot even turn into JSON (named field)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def execute_body(fields: list[Field], form: Mapping[str, str]) -> dict[str, Any]:
    """The execute request the form describes (empty fields are left out)."""
    inputs: dict[str, Any] = {}
    for f in fields:
        value = _value(f, form)
        if value is not None:
            inputs[f.name] = value
    body: dict[str, Any] = {"inputs": inputs}
    site = form.get(SITE_FIELD, "").strip()
    if site:
        body[SITE_FIELD] = site
    return body


def _value(f: Field, form: Mapping[str, str]) -> Any:
    if f.kind == "bbox":
        parts = [form.get(f"{f.name}.{p}", "").strip() for p in BBOX_PARTS]
        if not any(parts):
            return None
        try:
            return {"bbox": [float(p) for p in parts]}
        except ValueError:
            raise FormError(f.name, "give four numbers: min x, min y, max x, max y") from None
    if f.kind == "reference":
        href = form.get(f"{f.name}.href", "").strip()
        if not href:
            return None
        asset = form.get(f"{f.name}.asset", "").strip()
        return {"href": href, "asset": asset} if asset else {"href": href}
    raw = form.get(f.name, "").strip()
    if not raw:
        return None
    if f.kind == "select" and f.options == ("true", "false"):
        return raw == "true"
    if f.kind == "number":
        return _number(f, raw)
    if f.kind == "json":
        try:
            return json.loads(raw)
        except ValueError:
            raise FormError(f.name, "this is not valid JSON") from None
    return raw


def _number(f: Field, raw: str) -> int | float:
    try:
        return int(raw) if f.step == "1" else float(raw)
    except ValueError:
        what = "a whole number" if f.step == "1" else "a number"
        raise FormError(f.name, f"give {what}") from None


def field_of_error(message: str, fields: list[Field]) -> str | None:
    """The input an error message is about (``input 'red_band': ...``), if it names one."""
    names = {f.name for f in fields}
    match = _INPUT_IN_MESSAGE.search(message)
    if match and match.group(1) in names:
        return match.group(1)
    if SITE_FIELD in message:
        return SITE_FIELD
    return None
