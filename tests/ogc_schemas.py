"""The official OGC schemas the tests validate against, shipped in ``tests/ogc-schemas``.

One place resolves where they are (``$OGC_SCHEMAS_DIR``, else the project's own
copy in ``tests/ogc-schemas``, with its licence notices) and validates documents
against components of the OGC API - Processes OpenAPI document. Nothing here
reads outside the repository: a fresh clone has everything it needs.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = Path(os.environ.get("OGC_SCHEMAS_DIR") or REPO / "tests" / "ogc-schemas")
OPENAPI = SCHEMAS_DIR / "ogcapi-processes-1" / "api-processes10.yaml"


@cache
def _components() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))["components"]


def openapi_components() -> dict[str, Any]:
    """The OpenAPI ``components``; fails (never skips) when the project's copy is missing:
    the schemas ship with the repository, so a missing file is a broken checkout."""
    if not OPENAPI.is_file():
        pytest.fail(f"OGC OpenAPI document not found at {OPENAPI} (it ships in tests/ogc-schemas)")
    return _components()


def component_schema(name: str, components: dict[str, Any]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}", "components": components}


def validate(doc: Any, component: str, components: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``doc`` matches the component."""
    jsonschema.Draft202012Validator(component_schema(component, components)).validate(doc)
