"""From a CWL document to an OGC process: cwl-utils reads it, this module maps it.

The process description is derived from the CWL process's inputs and
outputs (types, formats, defaults, optional and array types as min/max
occurs); the deployer's ``processDescription`` may set ``id``, ``title``,
``description``, ``keywords`` and ``version``. Resources come from
:mod:`gateway.apppkg.policy`. The result is a
:class:`~processes.package.PackagedDefinition` whose stored package is the CWL
document as canonical JSON and whose digest is that text's sha256.

CWL type -> OGC schema: ``string``/``int``/``long``/``float``/``double``/
``boolean`` -> the JSON type; an ``enum`` -> a string enum; ``File`` (and
``stdout``/``stderr`` outputs) -> a string with a ``contentMediaType`` (from an
IANA ``format``, else ``application/octet-stream``), given by reference
(``href``) or inline as text; ``Directory`` (the EO Application Package
convention) -> a STAC Item or Catalog given by reference, staged as a STAC
catalog folder (:mod:`gateway.staging.stac_folder`); ``T?`` -> ``minOccurs: 0``;
``T[]`` -> ``maxOccurs: unbounded``; ``Any`` -> any value. Records and unions
are refused.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from typing import Any

from gateway.apppkg.body import DeployRequest
from gateway.apppkg.policy import SiteAbilities, check_requirements, requested_runner, resources
from gateway.apppkg.validate import cwltool_validate
from gateway.errors import BadRequest
from gateway.publication.values import OCTET
from gateway.settings_apppkg import AppPkgSettings
from processes.definition import HpcSection
from processes.package import CWL_RUNNER, CwlOutput, CwlRun, Kind, PackagedDefinition

#: The URI the package is loaded under: never read (nothing is fetched).
BASE_URI = "file:///deployed/package.cwl"
IANA = "https://www.iana.org/assignments/media-types/"
_PRIMITIVES = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "boolean": {"type": "boolean"},
    "Any": {},
}
_FILE_TYPES = ("File", "stdout", "stderr")
#: A ``Directory`` input is given as a STAC Item (or Catalog) href.
STAC_ITEM = "application/geo+json"
_CLASSES = ("CommandLineTool", "Workflow", "ExpressionTool")


def shortname(uri: str) -> str:
    """``file:///deployed/package.cwl#tool/input`` -> ``input``."""
    return urllib.parse.urldefrag(uri)[1].rsplit("/", 1)[-1] or uri.rsplit("/", 1)[-1]


def _load(request: DeployRequest, entry: str) -> Any:
    """The CWL process object (cwl-utils), ``entry`` picking one of a ``$graph``."""
    import cwl_utils.parser
    from schema_salad.exceptions import SchemaSaladException
    from schema_salad.runtime import LoadingOptions

    from gateway.apppkg.validate import _only

    options = LoadingOptions(fetcher=_only(BASE_URI)({}, None), no_link_check=True)
    try:
        loaded = cwl_utils.parser.load_document_by_string(
            request.text, BASE_URI, options, load_all=True
        )
    except (SchemaSaladException, ValueError, KeyError, TypeError) as exc:
        raise BadRequest(f"the CWL document is not valid: {exc}") from None
    processes = loaded if isinstance(loaded, list) else [loaded]
    if len(processes) > 1 or entry:
        wanted = entry.lstrip("#") or "main"
        chosen = [p for p in processes if shortname(str(p.id)) == wanted]
        if not chosen:
            names = ", ".join(sorted(shortname(str(p.id)) for p in processes))
            raise BadRequest(f"the CWL document has no process '{wanted}' (w=); it has {names}")
        return chosen[0]
    return processes[0]


def _media_type(fmt: Any) -> str:
    if isinstance(fmt, list):
        fmt = fmt[0] if fmt else None
    if isinstance(fmt, str) and fmt.startswith(IANA):
        return fmt[len(IANA) :]
    return OCTET


def _mapped(name: str, cwl_type: Any, fmt: Any) -> tuple[dict[str, Any], Kind, bool, bool]:
    """(schema, kind, optional, array) of one CWL input/output type."""
    optional = False
    if isinstance(cwl_type, list):
        kept = [t for t in cwl_type if t != "null"]
        optional = len(kept) < len(cwl_type)
        if len(kept) != 1:
            raise BadRequest(f"'{name}': union types are not supported; use one type (or T?)")
        cwl_type = kept[0]
    array = getattr(cwl_type, "type_", None) == "array"
    if array:
        cwl_type = cwl_type.items
    symbols = getattr(cwl_type, "symbols", None)
    if symbols is not None:
        return (
            {"type": "string", "enum": [shortname(str(s)) for s in symbols]},
            "value",
            optional,
            array,
        )
    if isinstance(cwl_type, str) and cwl_type in _PRIMITIVES:
        return dict(_PRIMITIVES[cwl_type]), "value", optional, array
    if cwl_type in _FILE_TYPES:
        return {"type": "string", "contentMediaType": _media_type(fmt)}, "File", optional, array
    if cwl_type == "Directory":  # EO Application Package: a STAC catalog folder
        return {"type": "string", "contentMediaType": STAC_ITEM}, "Directory", optional, array
    what = cwl_type if isinstance(cwl_type, str) else type(cwl_type).__name__
    raise BadRequest(
        f"'{name}': CWL type {shortname(str(what))!r} is not supported by this gateway "
        "(strings, numbers, booleans, enums, Files, Directories and arrays of them are)"
    )


def _inputs(process: Any) -> tuple[dict[str, dict[str, Any]], dict[str, Kind]]:
    described: dict[str, dict[str, Any]] = {}
    kinds: dict[str, Kind] = {}
    for param in process.inputs:
        name = shortname(str(param.id))
        schema, kind, optional, array = _mapped(name, param.type_, getattr(param, "format", None))
        if param.default is not None and kind == "value":
            schema["default"] = param.default
        described[name] = {
            "title": param.label or name,
            "description": param.doc if isinstance(param.doc, str) else "",
            "minOccurs": 0 if optional or param.default is not None else 1,
            "maxOccurs": "unbounded" if array else 1,
            "schema": schema,
        }
        kinds[name] = kind
    return described, kinds


def _outputs(process: Any) -> tuple[dict[str, dict[str, Any]], dict[str, CwlOutput]]:
    described: dict[str, dict[str, Any]] = {}
    plans: dict[str, CwlOutput] = {}
    for param in process.outputs:
        name = shortname(str(param.id))
        schema, kind, _optional, array = _mapped(name, param.type_, param.format)
        if array and kind != "value":
            raise BadRequest(f"output '{name}': arrays of files are not published yet")
        if array:
            schema = {"type": "array", "items": schema}
        if kind == "Directory":  # a STAC catalog: its assets, each a published file
            schema = {"type": "array", "items": {"type": "string", "contentMediaType": OCTET}}
        described[name] = {
            "title": param.label or name,
            "description": param.doc if isinstance(param.doc, str) else "",
            "schema": schema,
        }
        plans[name] = CwlOutput(kind=kind, type=schema.get("contentMediaType"))
    return described, plans


def _version(cwl: dict[str, Any], description: dict[str, Any]) -> str:
    for value in (
        description.get("version"),
        cwl.get("s:softwareVersion"),
        cwl.get("https://schema.org/softwareVersion"),
    ):
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)[:32]
    return "1.0.0"


def canonical(cwl: dict[str, Any]) -> str:
    """The stored form of a package: JSON, sorted keys (its sha256 is the digest)."""
    return json.dumps(cwl, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def package_definition(
    request: DeployRequest,
    entry: str,
    caps: AppPkgSettings,
    sites: SiteAbilities = SiteAbilities(),  # noqa: B008 - frozen, never mutated
) -> PackagedDefinition:
    """The process a deploy request describes, or BadRequest saying what is wrong.

    ``sites``: which sites declare a container runtime and toil (a package that
    requires either is refused when no site has it).
    """
    container = check_requirements(request.cwl, sites.container)
    runner = requested_runner(request.config, sites.toil)
    process = _load(request, entry)
    if type(process).__name__ not in _CLASSES:
        raise BadRequest("a package runs a CommandLineTool, Workflow or ExpressionTool")
    graph_entry = f"#{shortname(str(process.id))}" if "$graph" in request.cwl else ""
    cwltool_validate(request.text, graph_entry)
    inputs, input_kinds = _inputs(process)
    outputs, output_plans = _outputs(process)
    text = canonical(request.cwl)
    description = request.description
    raw = process_node(request.cwl, graph_entry)
    raw_id = raw.get("id")
    process_id = description.get("id") or (raw_id.lstrip("#") if isinstance(raw_id, str) else None)
    if not isinstance(process_id, str) or not process_id:
        raise BadRequest("give the process an id (the CWL 'id', or processDescription.id)")
    data = {
        "id": process_id,
        "version": _version(request.cwl, description),
        "title": description.get("title") or process.label or process_id,
        "description": description.get("description")
        or (process.doc if isinstance(process.doc, str) else ""),
        "keywords": description.get("keywords") or ["cwl", "application package"],
        "jobControlOptions": ["async-execute", "sync-execute", "dismiss"],
        "inputs": inputs,
        "outputs": outputs,
        "hpc": HpcSection(
            resources=resources(raw, request.config, caps),
            runner=CWL_RUNNER,
            container=container,
            toil=runner == "toil",
        ).model_dump(),
        "package": text,
        "digest": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "cwl_run": CwlRun(
            entry=graph_entry,
            inputs=input_kinds,
            outputs=output_plans,
            container=container,
            runner=runner,
            workflow=type(process).__name__ == "Workflow",
        ),
    }
    try:
        return PackagedDefinition.model_validate(data)
    except ValueError as exc:
        raise BadRequest(f"the process description is not valid: {exc}") from None


def process_node(cwl: dict[str, Any], graph_entry: str) -> dict[str, Any]:
    """The raw mapping of the process that runs (the ``$graph`` entry, or the document)."""
    if not graph_entry:
        return cwl
    for node in cwl.get("$graph", []):
        if isinstance(node, dict) and str(node.get("id", "")).lstrip("#") == graph_entry[1:]:
            return node
    return cwl
