"""The echo process: its runner as a real subprocess in a temporary workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from processes.registry import ProcessRegistry
from tests.polling import eventually

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ECHO_PAIRS = {
    "string_input": "string_output",
    "number_input": "number_output",
    "integer_input": "integer_output",
    "boolean_input": "boolean_output",
    "object_input": "object_output",
    "bounding_box_input": "bounding_box_output",
    "xml_input": "xml_output",
    "array_input": "array_output",
    "binary_input": "binary_output",
    "mixed_input": "mixed_output",
    "enum_input": "enum_output",
}
XML = '<?xml version="1.0"?>\n<doc xmlns="urn:test"><a b="1">text &amp; more</a></doc>\n'


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _workspace(tmp_path: Path, inputs: dict[str, Any]) -> Path:
    (tmp_path / "inputs.json").write_text(json.dumps({"inputs": inputs}), encoding="utf-8")
    return tmp_path


def run_echo(workspace: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processes.echo.run"],
        cwd=workspace,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _manifest(workspace: Path) -> dict[str, Any]:
    return json.loads((workspace / "outputs.json").read_text(encoding="utf-8"))["outputs"]


def _progress(workspace: Path) -> dict[str, Any]:
    return json.loads((workspace / "progress.json").read_text(encoding="utf-8"))


def test_demo_input_gives_only_string_output(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, {"string_input": "hi"})
    done = run_echo(ws)
    assert done.returncode == 0, done.stderr
    assert _manifest(ws) == {"string_output": {"value": "hi"}}
    assert _progress(ws)["percent"] == 100


def test_every_input_is_echoed_unchanged(tmp_path: Path) -> None:
    inputs = {
        "string_input": "héllo wörld",
        "number_input": 3.25,
        "integer_input": -7,
        "boolean_input": False,
        "object_input": {"a": [1, 2, {"b": None}], "value": "not unwrapped"},
        "bounding_box_input": {
            "bbox": [5.9, 45.8, 10.5, 47.8],
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        },
        "xml_input": XML,
        "array_input": [1, 2, 3],
        "binary_input": "AAEC/w==",
        "mixed_input": "plain text",
        "enum_input": "Value2",
    }
    ws = _workspace(tmp_path, {**inputs, "pause": 0, "exit_code": 0})
    done = run_echo(ws)
    assert done.returncode == 0, done.stderr
    assert _manifest(ws) == {ECHO_PAIRS[k]: {"value": v} for k, v in inputs.items()}


def test_qualified_values_are_unwrapped(tmp_path: Path) -> None:
    ws = _workspace(
        tmp_path,
        {
            "string_input": {"value": "hi", "mediaType": "text/plain"},
            "integer_input": {"value": 42},
            "bounding_box_input": {"value": {"bbox": [0, 0, 1, 1, 2, 3]}},
        },
    )
    done = run_echo(ws)
    assert done.returncode == 0, done.stderr
    assert _manifest(ws) == {
        "string_output": {"value": "hi"},
        "integer_output": {"value": 42},
        "bounding_box_output": {"value": {"bbox": [0, 0, 1, 1, 2, 3]}},
    }


def test_staged_xml_reference_is_echoed_as_its_content(tmp_path: Path) -> None:
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "doc.xml").write_text(XML, encoding="utf-8")
    ref = {"href": "https://example.org/doc.xml", "path": "inputs/doc.xml"}
    ws = _workspace(tmp_path, {"xml_input": ref})
    done = run_echo(ws)
    assert done.returncode == 0, done.stderr
    assert _manifest(ws) == {"xml_output": {"value": XML}}


def test_staged_references_of_the_mixed_and_binary_inputs(tmp_path: Path) -> None:
    """Text by reference is echoed as its text, bytes as their base64 form."""
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "note.txt").write_text("from a URL\n", encoding="utf-8")
    (tmp_path / "inputs" / "blob.bin").write_bytes(b"\x00\x01\x02\xff")
    ws = _workspace(
        tmp_path,
        {
            "mixed_input": {"href": "https://example.org/note.txt", "path": "inputs/note.txt"},
            "binary_input": {"href": "https://example.org/blob.bin", "path": "inputs/blob.bin"},
        },
    )
    done = run_echo(ws)
    assert done.returncode == 0, done.stderr
    assert _manifest(ws) == {
        "mixed_output": {"value": "from a URL\n"},
        "binary_output": {"value": "AAEC/w=="},
    }


def test_staged_path_outside_workspace_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "secret.xml").write_text("<secret/>", encoding="utf-8")
    _workspace(ws, {"xml_input": {"href": "x", "path": "../secret.xml"}})
    done = run_echo(ws)
    assert done.returncode == 2
    assert "outside the workspace" in done.stderr
    assert not (ws / "outputs.json").exists()


def test_pause_delays_completion_and_reports_progress(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, {"string_input": "slow", "pause": 1.5})
    proc = subprocess.Popen(
        [sys.executable, "-m", "processes.echo.run"],
        cwd=ws,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[dict[str, Any]] = []

    def ended() -> bool:
        if (ws / "progress.json").exists():
            seen.append(_progress(ws))
        return proc.poll() is not None

    eventually(ended, 30, "the pausing echo runner to end", every=0.1)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    # the pause is seen as several progress reports while pausing, not by a stopwatch
    pausing = [p for p in seen if p["message"].startswith("pausing")]
    assert pausing, seen
    assert all(5 <= p["percent"] < 100 for p in pausing)
    assert len({p["percent"] for p in pausing}) > 1
    assert _progress(ws)["percent"] == 100
    assert _manifest(ws) == {"string_output": {"value": "slow"}}


def test_exit_code_fails_with_message_and_no_outputs(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, {"string_input": "disk quota exceeded", "exit_code": 3})
    done = run_echo(ws)
    assert done.returncode == 3
    assert "failing as requested (exit_code=3): disk quota exceeded" in done.stderr
    assert not (ws / "outputs.json").exists()


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"pause": -1}, "pause must be between 0 and 240"),
        ({"pause": 1000}, "pause must be between 0 and 240"),
        ({"pause": "10"}, "pause must be a number"),
        ({"exit_code": 256}, "exit_code must be between 0 and 255"),
        ({"exit_code": 1.5}, "exit_code must be an integer"),
        ({"exit_code": True}, "exit_code must be a number"),
    ],
)
def test_invalid_control_inputs_exit_2(tmp_path: Path, inputs: dict, fragment: str) -> None:
    done = run_echo(_workspace(tmp_path, {"string_input": "x", **inputs}))
    assert done.returncode == 2
    assert fragment in done.stderr
    assert not (tmp_path / "outputs.json").exists()


# --- the description, as the OGC conformance suite (ets-ogcapi-processes10) uses it


@pytest.fixture(scope="module")
def echo_description() -> dict[str, Any]:
    return ProcessRegistry.builtin(only=["echo"]).get("echo").ogc_description()


def test_each_echoed_input_has_an_output_with_the_same_schema(echo_description) -> None:
    inputs, outputs = echo_description["inputs"], echo_description["outputs"]
    assert set(outputs) == set(ECHO_PAIRS.values())
    for name, out in ECHO_PAIRS.items():
        assert outputs[out]["schema"] == inputs[name]["schema"], name
    assert set(inputs) == set(ECHO_PAIRS) | {"pause", "exit_code"}


def _valid(description: dict[str, Any], name: str, value: Any) -> bool:
    schema = description["inputs"][name]["schema"]
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def test_suite_request_values_are_valid(echo_description) -> None:
    # Values the suite sends: "teststring" to every string input, a bbox with an
    # EPSG URN or CRS84, and {"value": "teststring"} to the first object input.
    assert _valid(echo_description, "string_input", "teststring")
    assert _valid(echo_description, "xml_input", "teststring")
    urn_bbox = {"crs": "urn:ogc:def:crs:EPSG:6.6:4326", "bbox": [345345345] * 4}
    assert _valid(echo_description, "bounding_box_input", urn_bbox)
    crs84 = {"bbox": [51.9, 7, 52, 7.1], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
    assert _valid(echo_description, "bounding_box_input", crs84)
    assert _valid(echo_description, "object_input", {"value": "teststring"})
    first_object = next(
        n for n, d in echo_description["inputs"].items() if d["schema"].get("type") == "object"
    )
    assert first_object == "object_input"
    # Every input is optional: the suite's bbox test sends the bbox input alone.
    assert all(d["minOccurs"] == 0 for d in echo_description["inputs"].values())


def test_invalid_values_are_rejected_by_the_schemas(echo_description) -> None:
    # The suite's input-validation test sends this for inputs with a contentMediaType.
    assert not _valid(echo_description, "xml_input", {"type": "wrong/type_1234"})
    assert not _valid(echo_description, "bounding_box_input", {"bbox": [1, 2, 3, 4, 5]})
    assert not _valid(echo_description, "bounding_box_input", {"crs": "EPSG:4326"})
    assert not _valid(echo_description, "integer_input", 1.5)
    assert not _valid(echo_description, "pause", 241)
    assert not _valid(echo_description, "exit_code", 256)
    assert not _valid(echo_description, "boolean_input", "true")
    assert not _valid(echo_description, "enum_input", "Value4")
    assert not _valid(echo_description, "array_input", [1])  # minItems 2
    assert not _valid(echo_description, "array_input", [1, "2"])
