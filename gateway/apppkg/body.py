"""The deploy request body -> a CWL document (a plain dict) and the deployer's description.

Accepted media types (OGC API - Processes Part 2, requirement classes
``ogcapppkg`` and ``cwl``):

* ``application/ogcapppkg+json``: ``{"processDescription": {...},
  "executionUnit": {"unit": <CWL object or CWL text>}}`` (``executionUnit`` may
  be a list of one such object); an execution unit given by ``href`` is refused
  (the gateway does not fetch packages: give the package inline);
* ``application/cwl``, ``application/cwl+yaml``: a CWL document as YAML;
* ``application/cwl+json`` (and ``application/json`` holding ``cwlVersion``): CWL as JSON.

Hostile documents are refused with :class:`~gateway.errors.BadRequest` before
any CWL library sees them: YAML aliases (billion laughs), nesting deeper than
:data:`MAX_DEPTH`, and the schema-salad directives that would read other
documents (``$import``, ``$include``, ``$mixin``, ``$schemas``, ``$base``) or a
workflow step whose ``run`` names another file or URL. Every package is
therefore self-contained: nothing is fetched while it is validated or run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.strict_json import MAX_DEPTH, decode_json

OGCAPPPKG = "application/ogcapppkg+json"
CWL_TYPES = ("application/cwl", "application/cwl+yaml", "application/cwl+json")
JSON = "application/json"
ACCEPTED = (OGCAPPPKG, *CWL_TYPES)

#: Keys schema-salad resolves by reading another document.
FORBIDDEN_DIRECTIVES = frozenset({"$import", "$include", "$mixin", "$schemas", "$base"})


@dataclass(frozen=True)
class DeployRequest:
    """What a deploy (or replace) request carries."""

    #: The CWL document (``cwlVersion`` ... or ``$graph``), self-contained.
    cwl: dict[str, Any]
    #: The CWL document as the deployer wrote it (validation messages give its lines).
    text: str
    #: The deployer's OGC process description (ogcapppkg only): overrides of the derived one.
    description: dict[str, Any]
    #: The execution unit's ``config`` (ogcapppkg only): cpuMin/Max, memoryMin/Max, jobTimeout.
    config: dict[str, Any]


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and with a nesting limit."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise BadRequest(
                f"the CWL document uses a YAML alias (line {event.start_mark.line + 1}); "
                "aliases are not accepted in application packages"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise BadRequest(
                    f"the CWL document nests deeper than {MAX_DEPTH} levels "
                    f"(line {event.start_mark.line + 1})"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str | bytes, what: str = "the CWL document") -> Any:
    """YAML (a superset of JSON) parsed safely; BadRequest with the line on a syntax error."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise BadRequest(f"{what} is not valid YAML (line {line}): {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise BadRequest(f"{what} is not valid YAML: {exc}") from None


def parse_body(raw: bytes, mimetype: str, max_bytes: int) -> DeployRequest:
    """The request body as a :class:`DeployRequest`, or the 400/413/415 that explains why not."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"an application package may have at most {max_bytes} bytes")
    if not raw.strip():
        raise BadRequest("the request body is empty; send an application package")
    if mimetype == OGCAPPPKG:
        return _ogcapppkg(decode_json(raw, "the application package"))
    if mimetype in ("application/cwl", "application/cwl+yaml"):
        text = _text(raw)
        return DeployRequest(_cwl_object(load_yaml(text)), text, {}, {})
    if mimetype in ("application/cwl+json", JSON):
        document = decode_json(raw, "the CWL document")
        if mimetype == JSON and isinstance(document, dict) and "processDescription" in document:
            return _ogcapppkg(document)
        return DeployRequest(_cwl_object(document), _text(raw), {}, {})
    raise UnsupportedMediaType(
        f"deploy an application package as one of {', '.join(ACCEPTED)}, not {mimetype or '-'}"
    )


def _ogcapppkg(document: Any) -> DeployRequest:
    if not isinstance(document, dict):
        raise BadRequest("an application package is a JSON object")
    description = document.get("processDescription", {})
    if not isinstance(description, dict):
        raise BadRequest("processDescription must be an object")
    # OGC 20-044 examples nest the description under "process"
    if isinstance(description.get("process"), dict):
        description = description["process"]
    units = document.get("executionUnit")
    if isinstance(units, list):
        if len(units) != 1:
            raise BadRequest("executionUnit must hold exactly one CWL execution unit")
        units = units[0]
    if not isinstance(units, dict):
        raise BadRequest("executionUnit is missing; give the CWL document in executionUnit.unit")
    if "href" in units and "unit" not in units:
        raise BadRequest(
            "an execution unit by reference (href) is not fetched by this server; "
            "give the CWL document inline in executionUnit.unit"
        )
    unit = units.get("unit")
    if isinstance(unit, str):
        text = unit
        unit = load_yaml(unit)
    else:
        text = json.dumps(unit, indent=2)
    config = units.get("config", {})
    if not isinstance(config, dict):
        raise BadRequest("executionUnit.config must be an object")
    return DeployRequest(_cwl_object(unit), text, description, config)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the CWL document is not UTF-8 text (byte {exc.start})") from None


def _cwl_object(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise BadRequest("a CWL document is a mapping (cwlVersion, class, inputs, ...)")
    if "cwlVersion" not in document:
        raise BadRequest("the CWL document has no cwlVersion")
    _refuse_references(document, "")
    return document


def _refuse_references(node: Any, where: str) -> None:
    """BadRequest for any directive or step that would read another document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in FORBIDDEN_DIRECTIVES:
                raise BadRequest(
                    f"{key} at {where or '/'} is not accepted: an application package must be "
                    "self-contained (pack it, e.g. with cwltool --pack)"
                )
            if key == "run" and isinstance(value, str) and not value.startswith("#"):
                raise BadRequest(
                    f"the step at {where} runs {value!r}: embed the tool (run: {{...}}) "
                    "or pack the workflow (cwltool --pack)"
                )
            _refuse_references(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_references(value, f"{where}/{i}")
