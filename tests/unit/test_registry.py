"""The process registry and the packaged process descriptions.

Descriptions are validated against the ``process`` schema of the OpenAPI
document bundled by the OGC conformance suite (``api-processes10.yaml``, kept
offline in ``tests/ogc-schemas``; ``OGC_SCHEMAS_DIR`` overrides). That
document's schemas are OpenAPI 3.0 style (boolean ``exclusiveMinimum``), so
they are applied with a Draft 4 validator.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import jsonschema
import pytest

from processes.definition import ProcessDefinition
from processes.registry import ProcessRegistry, UnknownProcess
from tests.ogc_schemas import REPO, component_schema, openapi_components

pytestmark = pytest.mark.unit

BUILTIN_IDS = sorted(d.id for d in ProcessRegistry.builtin())


@pytest.fixture(scope="module", name="openapi_components")
def _openapi_components() -> dict[str, Any]:
    return openapi_components()


def _validator(components: dict[str, Any], name: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(component_schema(name, components))


def _errors(validator: jsonschema.Draft4Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_builtin_offers_echo_and_ndvi() -> None:
    registry = ProcessRegistry.builtin()
    assert {"echo", "ndvi"} <= set(BUILTIN_IDS)
    assert "echo" in registry and "ndvi" in registry
    assert len(registry) == len(BUILTIN_IDS)
    assert [d.id for d in ProcessRegistry.builtin(only=["ndvi"])] == ["ndvi"]


def test_unknown_processes_are_reported() -> None:
    with pytest.raises(UnknownProcess):
        ProcessRegistry.builtin().get("no-such-process")
    with pytest.raises(UnknownProcess, match="no-such-process"):
        ProcessRegistry.builtin(only=["echo", "no-such-process"])


def test_resources_and_runners_of_echo_and_ndvi() -> None:
    registry = ProcessRegistry.builtin()
    echo, ndvi = registry.get("echo"), registry.get("ndvi")
    assert (echo.version, ndvi.version) == ("1.0.0", "1.0.0")
    assert echo.hpc.runner == "processes.echo.run"
    assert ndvi.hpc.runner == "processes.ndvi.run"
    r = echo.hpc.resources
    assert (r.cores, r.memory_mb, r.walltime_minutes) == (1, 100, 5)
    r = ndvi.hpc.resources
    assert (r.cores, r.memory_mb, r.walltime_minutes) == (1, 1024, 15)
    assert ndvi.ogc_description()["inputs"]["image"]["schema"] == {
        "type": "string",
        "contentMediaType": "image/tiff; application=geotiff",
    }
    outputs = ndvi.ogc_description()["outputs"]
    assert outputs["quicklook"]["schema"]["contentMediaType"] == "image/png"
    assert outputs["statistics"]["schema"]["type"] == "object"


@pytest.mark.parametrize("process_id", BUILTIN_IDS)
def test_description_is_valid_ogc_process(process_id: str, openapi_components) -> None:
    definition: ProcessDefinition = ProcessRegistry.builtin().get(process_id)
    description = definition.ogc_description()
    assert description["id"] == process_id
    assert "hpc" not in description
    assert _errors(_validator(openapi_components, "process"), description) == []
    assert _errors(_validator(openapi_components, "processSummary"), definition.ogc_summary()) == []
    assert description["inputs"] and description["outputs"]
    for kind in ("inputs", "outputs"):
        for name, item in description[kind].items():
            assert "schema" in item, f"{kind}/{name} has no schema"
            jsonschema.Draft202012Validator.check_schema(item["schema"])
    for name, item in description["inputs"].items():
        assert isinstance(item.get("minOccurs"), int), f"inputs/{name}: minOccurs"
        assert item.get("maxOccurs") == "unbounded" or isinstance(item.get("maxOccurs"), int)
        default = item["schema"].get("default")
        if default is not None:
            jsonschema.validate(default, item["schema"], jsonschema.Draft202012Validator)


@pytest.mark.parametrize("process_id", BUILTIN_IDS)
def test_folder_name_and_runner_match_the_id(process_id: str) -> None:
    definition = ProcessRegistry.builtin().get(process_id)
    # a Python package cannot hold '-': process "sar-change" lives in processes/sar_change/
    assert (REPO / "processes" / process_id.replace("-", "_") / "process.yaml").is_file()
    assert importlib.util.find_spec(definition.hpc.runner) is not None


def test_openapi_check_can_fail(openapi_components) -> None:
    # Guard against a validator that accepts anything.
    description = ProcessRegistry.builtin().get("echo").ogc_description()
    broken = {**description, "inputs": {"x": {"title": "no schema"}}}
    assert _errors(_validator(openapi_components, "process"), broken)
    bad_keyword = {**description, "inputs": {"x": {"schema": {"type": "string", "const": "a"}}}}
    assert _errors(_validator(openapi_components, "process"), bad_keyword)
    assert _errors(_validator(openapi_components, "process"), {"title": "no id"})
