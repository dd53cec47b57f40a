"""Application packages (Part 2) without a server: parsing, hostile documents, CWL mapping.

Every refusal is a :class:`~gateway.errors.GatewayError` with a 4xx status and a
message naming the problem -- never another exception (which would be a 500).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.apppkg.body import parse_body
from gateway.apppkg.cwl import package_definition
from gateway.apppkg.policy import SiteAbilities
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, UnsupportedMediaType
from gateway.settings_apppkg import AppPkgSettings
from processes.cwl_runner import RunnerError, container_flag, job_order, manifest

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parent.parent / "apppkg_data"
YAML = "application/cwl+yaml"
CAPS = AppPkgSettings()
TOOL = (DATA / "wordcount.cwl").read_text()


def _definition(text: str, mimetype: str = YAML, entry: str = "", caps: AppPkgSettings = CAPS):
    return package_definition(parse_body(text.encode(), mimetype, 256 * 1024), entry, caps)


def _refused(text: str | bytes, mimetype: str = YAML, status: int = 400) -> str:
    raw = text.encode() if isinstance(text, str) else text
    with pytest.raises(GatewayError) as info:
        package_definition(parse_body(raw, mimetype, 64 * 1024), "", CAPS)
    assert info.value.status == status, info.value.detail
    return info.value.detail


def test_a_command_line_tool_becomes_a_process() -> None:
    d = _definition(TOOL)
    assert (d.id, d.title, d.version) == ("wordcount", "Count words", "1.0.0")
    assert d.inputs["text"]["minOccurs"] == 1 and d.inputs["text"]["maxOccurs"] == 1
    assert d.outputs["counts"]["schema"] == {"type": "string", "contentMediaType": "text/plain"}
    assert d.hpc.runner == "processes.cwl_runner"
    assert (d.hpc.resources.cores, d.hpc.resources.memory_mb) == (1, 256)
    assert d.cwl_run.inputs == {"text": "File"}
    assert json.loads(d.package)["baseCommand"] == ["wc", "-w"]
    assert len(d.run_version) == 32 and d.digest.startswith(d.run_version)
    assert set(d.workspace_files()) == {"package.cwl", "cwl_run.json"}
    assert "package" not in d.ogc_description() and "cwl_run" not in d.ogc_description()


def test_types_optional_arrays_enums_and_defaults() -> None:
    text = """
cwlVersion: v1.2
class: CommandLineTool
id: kinds
baseCommand: echo
inputs:
  names: {type: 'string[]', inputBinding: {position: 1}}
  level: {type: 'int?'}
  ratio: {type: double, default: 0.5}
  colour: {type: {type: enum, symbols: [red, green]}}
  files: {type: 'File[]?'}
outputs:
  out: {type: stdout}
"""
    d = _definition(text)
    assert d.inputs["names"]["maxOccurs"] == "unbounded"
    assert d.inputs["names"]["schema"] == {"type": "string"}
    assert d.inputs["level"]["minOccurs"] == 0
    assert d.inputs["ratio"]["schema"] == {"type": "number", "default": 0.5}
    assert d.inputs["ratio"]["minOccurs"] == 0
    assert d.inputs["colour"]["schema"] == {"type": "string", "enum": ["red", "green"]}
    assert d.cwl_run.inputs["files"] == "File"


def test_the_same_document_as_json_and_in_an_ogcapppkg() -> None:
    import yaml

    cwl = yaml.safe_load(TOOL)
    as_json = _definition(json.dumps(cwl), "application/cwl+json")
    pkg = {"processDescription": {"id": "words"}, "executionUnit": [{"unit": cwl}]}
    wrapped = _definition(json.dumps(pkg), "application/ogcapppkg+json")
    assert as_json.digest == wrapped.digest == _definition(TOOL).digest
    assert wrapped.id == "words"


def test_a_graph_document_and_w() -> None:
    graph = """
cwlVersion: v1.2
$graph:
- id: first
  class: CommandLineTool
  baseCommand: echo
  inputs: {}
  outputs: {}
- id: main
  class: CommandLineTool
  baseCommand: [echo, main]
  inputs: {}
  outputs: {}
"""
    assert _definition(graph).id == "main"
    first = _definition(graph, entry="#first")
    assert first.id == "first" and first.cwl_run.entry == "#first"
    with pytest.raises(BadRequest, match="no process 'nope'"):
        _definition(graph, entry="#nope")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        # YAML bombs and deep nesting, refused before any CWL library sees them
        ("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "alias"),
        ("cwlVersion: v1.2\nx: " + "[" * 200 + "]" * 200 + "\n", "nests deeper"),
        ("cwlVersion: v1.2\nclass: [unclosed\n", "not valid YAML (line"),
        # references to other documents: local files, internal URLs
        ("cwlVersion: v1.2\nclass: CommandLineTool\ninputs:\n  $import: /etc/passwd\n", "$import"),
        (
            "cwlVersion: v1.2\nclass: CommandLineTool\ndoc: {$include: file:///etc/shadow}\n",
            "$include",
        ),
        ("cwlVersion: v1.2\n$schemas: [http://169.254.169.254/latest]\n", "$schemas"),
        (
            "cwlVersion: v1.2\nclass: Workflow\nid: w\ninputs: {}\noutputs: {}\n"
            "steps:\n  s:\n    run: ../../etc/tool.cwl\n    in: {}\n    out: []\n",
            "embed the tool",
        ),
        (
            "cwlVersion: v1.2\nclass: Workflow\nid: w\ninputs: {}\noutputs: {}\n"
            "steps:\n  s:\n    run: http://127.0.0.1:8180/tool.cwl\n    in: {}\n    out: []\n",
            "embed the tool",
        ),
        # requirements this gateway refuses
        (TOOL.replace("requirements:", "requirements:\n  ShellCommandRequirement: {}"), "shell"),
        (
            TOOL.replace(
                "requirements:",
                "requirements:\n  InitialWorkDirRequirement:\n"
                "    listing: [{entry: x, entryname: ../x}]",
            ),
            "InitialWorkDirRequirement",
        ),
        (
            TOOL.replace("requirements:", "requirements:\n  DockerRequirement: {dockerPull: x}"),
            "container runtime",
        ),
        (TOOL.replace("coresMin: 1", "coresMin: 4096"), "allows 16"),
        (TOOL.replace("ramMin: 256", "ramMin: $(inputs.n)"), "must be a number"),
        # ids that are not process ids (path traversal, slashes, nothing)
        (TOOL.replace("id: wordcount", "id: ../../etc"), "process id"),
        (TOOL.replace("id: wordcount", "id: a/b"), "process id"),
        (TOOL.replace("id: wordcount\n", ""), "give the process an id"),
        # CWL that cwl-utils / cwltool reject, with the line
        (TOOL.replace("type: File", "type: Fle"), "package.cwl:"),
        (TOOL.replace("baseCommand:", "baseComand:"), "baseComand"),
        ("cwlVersion: v9.9\nclass: CommandLineTool\n", "v9.9"),
        ("just text", "mapping"),
        ("class: CommandLineTool\n", "cwlVersion"),
        (TOOL.replace("type: File", "type: [File, string]"), "union types"),
    ],
)
def test_hostile_or_invalid_packages_are_400(text: str, needle: str) -> None:
    assert needle.lower() in _refused(text).lower()


def test_size_media_type_and_encoding() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_body(b"x" * 2048, YAML, 1024)
    with pytest.raises(UnsupportedMediaType):
        parse_body(TOOL.encode(), "text/plain", 10_000)
    assert "UTF-8" in _refused(b"cwlVersion: v1.2\nid: \xff\n")
    pkg = {"executionUnit": {"href": "http://10.0.0.1/tool.cwl"}}
    assert "not fetched" in _refused(json.dumps(pkg), "application/ogcapppkg+json")


def test_the_runner_maps_inputs_and_outputs_inside_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "a.txt").write_text("x")
    order = job_order(
        {"text": {"href": "http://h/a.txt", "path": "inputs/a.txt"}, "n": {"value": 3}},
        {"text": "File", "n": "value"},
        tmp_path,
    )
    assert order == {"text": {"class": "File", "path": str(tmp_path / "inputs/a.txt")}, "n": 3}
    inline = job_order({"text": "some words"}, {"text": "File"}, tmp_path)
    assert Path(inline["text"]["path"]).read_text() == "some words"
    with pytest.raises(RunnerError, match="outside inputs"):
        job_order({"text": {"href": "h", "path": "../../etc/passwd"}}, {"text": "File"}, tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "c.txt").write_text("5")
    found = manifest(
        {"c": {"class": "File", "path": str(tmp_path / "outputs/c.txt")}, "n": 2},
        {"c": {"kind": "File", "type": "text/plain"}, "n": {"kind": "value"}},
        tmp_path,
    )
    assert found == {"c": {"path": "outputs/c.txt", "type": "text/plain"}, "n": {"value": 2}}
    with pytest.raises(RunnerError, match="not a file under"):
        manifest({"c": {"path": "/etc/passwd"}}, {"c": {"kind": "File"}}, tmp_path)


DOCKER = TOOL.replace("requirements:", "requirements:\n  DockerRequirement: {dockerPull: x}")


def test_a_required_container_is_marked_and_needs_a_site_with_a_runtime() -> None:
    request = parse_body(DOCKER.encode(), YAML, 256 * 1024)
    d = package_definition(request, "", CAPS, SiteAbilities(container=("mesocentre",)))
    assert d.hpc.container and d.cwl_run.container
    hinted = _definition(
        TOOL.replace("requirements:", "hints:\n  DockerRequirement: {dockerPull: x}\n#")
    )
    assert not hinted.hpc.container and not hinted.cwl_run.container
    assert container_flag(True, "apptainer") == "--singularity"
    assert container_flag(False, "apptainer") == container_flag(False, "") == "--no-container"
    with pytest.raises(RunnerError, match="declares no runtime"):
        container_flag(True, "")


def test_the_runner_publishes_the_assets_of_a_directory_output(tmp_path: Path) -> None:
    out = tmp_path / "outputs" / "out"
    (out / "s1").mkdir(parents=True)
    (out / "s1" / "a.tif").write_bytes(b"tif")
    item = {"id": "s1", "assets": {"B 4": {"href": "./a.tif", "type": "image/tiff"}}}
    (out / "s1" / "item.json").write_text(json.dumps(item))
    catalog = {
        "links": [
            {"rel": "root", "href": "./catalog.json"},
            {"rel": "item", "href": "s1/item.json"},
        ]
    }
    (out / "catalog.json").write_text(json.dumps(catalog))
    found = manifest(
        {"d": {"class": "Directory", "path": str(out)}}, {"d": {"kind": "Directory"}}, tmp_path
    )
    assert found == {"d": {"files": [{"path": "outputs/d-s1-B_4.tif", "type": "image/tiff"}]}}
    assert (tmp_path / "outputs" / "d-s1-B_4.tif").read_bytes() == b"tif"
    # an asset outside the catalog folder, or no catalog at all: refused
    item["assets"] = {"x": {"href": "../../../../etc/passwd"}}
    (out / "s1" / "item.json").write_text(json.dumps(item))
    with pytest.raises(RunnerError, match="not a file inside"):
        manifest({"d": {"path": str(out)}}, {"d": {"kind": "Directory"}}, tmp_path)
    (out / "catalog.json").unlink()
    with pytest.raises(RunnerError, match=r"catalog\.json"):
        manifest({"d": {"path": str(out)}}, {"d": {"kind": "Directory"}}, tmp_path)
    with pytest.raises(RunnerError, match="STAC Item or Catalog href"):
        job_order({"d": "text"}, {"d": "Directory"}, tmp_path)
