"""Parse and validate an OGC API - Processes execute request against a process description.

pygeoapi does not validate inputs; this module does, following OGC 18-062r2:
each input is checked against its JSON schema and its ``minOccurs`` /
``maxOccurs``; unknown inputs and outputs are refused; qualified values
(``{"value": ..., "mediaType": ...}``) are unwrapped and references
(``{"href": ...}``) are kept for staging. Every problem becomes
:class:`~gateway.errors.InvalidInput` (HTTP 400) naming the input.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import jsonschema
from jsonschema import Draft202012Validator

from gateway.errors import InvalidInput
from gateway.publication.values import BASE64_ENCODINGS
from processes.definition import ProcessDefinition

_RESPONSES = ("raw", "document")
_TRANSMISSION = ("value", "reference")
_SUBSCRIBER_KEYS = ("successUri", "inProgressUri", "failedUri")
_HREF_SCHEMES = ("http", "https", "s3", "file")
_STAC_KEYS = ("asset", "role")
#: Execute-request extension member naming the HPC site the client wants.
SITE_MEMBER = "hpcSite"
_BRACKETED = re.compile(r"\[[^\]]*\](:[0-9]*)?")


@dataclass(frozen=True)
class ExecuteRequest:
    """A validated execute request: inputs ready to store, outputs and response mode."""

    inputs: dict[str, Any]
    outputs: dict[str, dict[str, Any]]
    #: ``raw`` or ``document``: the synchronous answer's encoding (1.0's default: raw).
    response: str
    subscriber: dict[str, str] | None
    #: The request named ``response`` itself. Only then does ``GET /jobs/{id}/results``
    #: use the raw encodings; a job that did not ask reads the results document there.
    response_given: bool = False
    #: The site the client asked for (extension member ``hpcSite``, docs/federation.md).
    site: str | None = None

    @property
    def results_response(self) -> str:
        """The encoding ``GET /jobs/{id}/results`` answers for this job (kept with the job)."""
        return self.response if self.response_given else "document"


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and "href" in value


def split_url(url: str, what: str) -> SplitResult:
    """``urlsplit(url)``, its port and bracketed host checked; InvalidInput naming ``what``.

    ``urlsplit`` raises ValueError for a bracketed host that is not an IPv6
    address (``http://[127.0.0.1]/``, ``http://[zz]/``) or an unclosed bracket,
    and ``.port`` for a port out of range: a client's mistake, never a 500.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise InvalidInput(f"{what}: {url!r} is not a valid URL ({exc})") from None
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.startswith("[") and not _BRACKETED.fullmatch(hostport):
        raise InvalidInput(f"{what}: {url!r} is not a valid URL (text after the ']' of its host)")
    return parts


def _check_href(name: str, ref: dict[str, Any]) -> dict[str, Any]:
    """Shape of a reference; whether it may be fetched is the staging admission's call.

    ``asset`` / ``role`` select an asset when ``href`` is a STAC Item
    (see :mod:`gateway.staging.reference`).
    """
    href = ref.get("href")
    if not isinstance(href, str) or not href:
        raise InvalidInput(f"input '{name}': 'href' must be a non-empty string")
    parts = split_url(href, f"input '{name}'")
    scheme = parts.scheme.lower()
    has_location = bool(parts.netloc) if scheme != "file" else parts.path.startswith("/")
    if scheme not in _HREF_SCHEMES or not has_location:
        raise InvalidInput(
            f"input '{name}': href scheme must be one of {', '.join(_HREF_SCHEMES)} "
            f"with a host (file: an absolute path), got {href!r}"
        )
    for key in _STAC_KEYS:
        if key in ref and (not isinstance(ref[key], str) or not ref[key]):
            raise InvalidInput(f"input '{name}': '{key}' must be a non-empty string")
    if all(key in ref for key in _STAC_KEYS):
        raise InvalidInput(f"input '{name}': give either 'asset' or 'role', not both")
    return {k: v for k, v in ref.items() if k in ("href", "type", "rel", "title", *_STAC_KEYS)}


def _unwrap(value: Any) -> Any:
    """A qualified value ``{"value": v, "mediaType": ...}`` becomes ``v``."""
    if isinstance(value, dict) and "value" in value and "href" not in value:
        return value["value"]
    return value


def _validate_one(name: str, schema: dict[str, Any], value: Any) -> Any:
    if is_reference(value):
        return _check_href(name, value)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    unwrapped = _unwrap(value)
    if unwrapped is not value and not validator.is_valid(unwrapped) and validator.is_valid(value):
        # an object input whose value merely has a "value" key, not a qualified value
        return value
    value = unwrapped
    try:
        validator.validate(value)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        at = f" at '{where}'" if where else ""
        raise InvalidInput(f"input '{name}'{at}: {exc.message}") from None
    except jsonschema.SchemaError as exc:  # a broken process definition is our bug, say so
        raise InvalidInput(f"input '{name}': process schema is invalid: {exc.message}") from None
    _check_encoding(name, schema, value)
    return value


def _check_encoding(name: str, schema: dict[str, Any], value: Any) -> None:
    """``contentEncoding: base64`` (or ``binary``, which JSON carries as base64): the
    string must decode. JSON Schema leaves the keyword unchecked (an annotation)."""
    if schema.get("contentEncoding") not in BASE64_ENCODINGS or not isinstance(value, str):
        return
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            f"input '{name}': not valid base64 (the schema's contentEncoding is "
            f"{schema['contentEncoding']})"
        ) from None


def _validate_inputs(process: ProcessDefinition, raw: Any) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput("'inputs' must be an object mapping input ids to values")
    unknown = sorted(set(raw) - set(process.inputs))
    if unknown:
        raise InvalidInput(f"unknown input(s) for process '{process.id}': {', '.join(unknown)}")
    inputs: dict[str, Any] = {}
    for name, desc in process.inputs.items():
        min_occurs = int(desc.get("minOccurs", 1))
        max_occurs = desc.get("maxOccurs", 1)
        limit = None if max_occurs == "unbounded" else int(max_occurs)
        if name not in raw:
            if min_occurs > 0:
                raise InvalidInput(f"missing required input '{name}'")
            continue
        value = raw[name]
        schema = desc.get("schema", {})
        if limit is not None and limit <= 1:
            inputs[name] = _validate_one(name, schema, value)
            continue
        values = value if isinstance(value, list) else [value]
        if len(values) < min_occurs or (limit is not None and len(values) > limit):
            raise InvalidInput(
                f"input '{name}' takes between {min_occurs} and {max_occurs} values, "
                f"got {len(values)}"
            )
        inputs[name] = [_validate_one(name, schema, v) for v in values]
    return inputs


def _validate_outputs(process: ProcessDefinition, raw: Any) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput("'outputs' must be an object mapping output ids to options")
    outputs: dict[str, dict[str, Any]] = {}
    for name, options in raw.items():
        if name not in process.outputs:
            raise InvalidInput(f"unknown output '{name}' for process '{process.id}'")
        options = options or {}
        if not isinstance(options, dict):
            raise InvalidInput(f"output '{name}': options must be an object")
        mode = options.get("transmissionMode", "value")
        if mode not in _TRANSMISSION:
            raise InvalidInput(f"output '{name}': transmissionMode must be value or reference")
        entry: dict[str, Any] = {"transmissionMode": mode}
        if isinstance(options.get("format"), dict):
            entry["format"] = options["format"]
        outputs[name] = entry
    return outputs


def _validate_subscriber(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput("'subscriber' must be an object with callback URIs")
    out: dict[str, str] = {}
    for key, uri in raw.items():
        if key not in _SUBSCRIBER_KEYS:
            raise InvalidInput(f"unknown subscriber key '{key}'")
        parts = split_url(uri, f"subscriber '{key}'") if isinstance(uri, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"subscriber '{key}' must be an http(s) URL")
        out[key] = uri
    if "successUri" not in out:
        raise InvalidInput("subscriber requires 'successUri'")
    return out


def _validate_site(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(f"'{SITE_MEMBER}' must be the name of an HPC site")
    return raw.strip()


def parse_execute_request(process: ProcessDefinition, body: Any) -> ExecuteRequest:
    """Validate a decoded JSON execute body for ``process``."""
    if not isinstance(body, dict):
        raise InvalidInput("the execute request must be a JSON object")
    response = body.get("response")
    if response is not None and response not in _RESPONSES:
        raise InvalidInput("'response' must be 'raw' or 'document'")
    return ExecuteRequest(
        inputs=_validate_inputs(process, body.get("inputs")),
        outputs=_validate_outputs(process, body.get("outputs")),
        response=response or "raw",
        subscriber=_validate_subscriber(body.get("subscriber")),
        response_given=response is not None,
        site=_validate_site(body.get(SITE_MEMBER)),
    )
