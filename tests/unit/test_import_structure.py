"""The gateway's import graph: no cycles, and no arrow back into an HTTP surface.

Every ``import`` counts -- module level, inside functions and under
``TYPE_CHECKING`` -- because a lazy import only hides a cycle, it does not
remove it. ``from package import name`` counts as an arrow to the submodule
when ``name`` is one, else to the package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "gateway"

#: The HTTP surfaces and the composition root that builds them.
SURFACES = (
    "gateway.app",
    "gateway.wsgi",
    "gateway.cli",
    "gateway.http",
    "gateway.ogcapi",
    "gateway.wps",
    "gateway.accounting.routes",
    "gateway.accounting.cli",
    "gateway.usersync.admin_api",
    "gateway.routing.routes",
    "gateway.triggers.routes",
    "gateway.triggers.cli",
    "gateway.web",
)
#: The core: it serves every surface and must import none.
CORE = (
    "gateway.services",
    "gateway.jobs",
    "gateway.workflow",
    "gateway.staging",
    "gateway.publication",
    "gateway.identity",
    "gateway.egress",
    "gateway.accounting",  # except its routes and CLI (surfaces, above)
    "gateway.routing",  # except its routes (a surface, above)
    "gateway.apppkg",
    "gateway.triggers",  # except its routes and CLI (surfaces, above)
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for p in PACKAGE.rglob("*.py")
        if "migrations" not in p.relative_to(PACKAGE).parts
    }


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@cache
def graph() -> dict[str, frozenset[str]]:
    """module -> the gateway modules it imports (anywhere in its text)."""
    modules = _modules()
    edges: dict[str, frozenset[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                found = [s for s in subs if s in modules]
                targets.update(found or [node.module])
                if len(found) < len(subs):
                    targets.add(node.module)
        edges[name] = frozenset(t for t in targets if t in modules and t != name)
    return edges


def _cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_known_arrows() -> None:
    """Guard against a parser that finds nothing (every test below would pass)."""
    edges = graph()
    assert "gateway.services" in edges["gateway.app"]
    assert "gateway.jobs.status" in edges["gateway.workflow.callbacks"]


def test_no_import_cycle_among_gateway_modules() -> None:
    assert _cycles(graph()) == []


def test_the_core_never_imports_a_surface() -> None:
    wrong = []
    for module, targets in graph().items():
        if not any(_within(module, core) for core in CORE):
            continue
        if any(_within(module, surface) for surface in SURFACES):
            continue
        wrong += [f"{module} -> {t}" for t in targets if any(_within(t, s) for s in SURFACES)]
    assert wrong == []


def _loaded_by(
    tmp_path: Path, body: str, watched: tuple[str, ...], *, as_served: bool = False
) -> list[str]:
    """Which of ``watched`` a fresh interpreter has loaded after running ``body`` (with
    ``settings`` and ``services`` built on a scratch SQLite file). ``as_served``: the
    schema migrated as ``hpcgw serve`` / ``hpcgw worker`` do it, in a child process."""
    url = f"sqlite:///{tmp_path}/s.db"
    migrate = (
        f"import os; os.environ['HPCGW_DATABASE__URL'] = {url!r}\n"
        "gateway.cli._migrate_in_child(None)\n"
        if as_served
        else ""
    )
    code = (
        "import sys, gateway.cli\n"
        "from gateway.app import build_services, build_worker, create_app\n"
        "from gateway.settings import load_settings\n"
        f"{migrate}"
        f"settings = load_settings(database={{'url': {url!r}, 'auto_upgrade': {not as_served}}})\n"
        "services = build_services(settings)\n"
        f"{body}\n"
        "services.close()\n"
        f"print(sorted(m for m in {watched!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    return list(ast.literal_eval(out.stdout.strip().splitlines()[-1]))


def test_the_worker_side_loads_no_web_framework(tmp_path: Path) -> None:
    """``hpcgw worker`` -- the CLI, the composition root, a built worker -- imports neither
    Flask nor pygeoapi (about a second and tens of MiB each start)."""
    assert _loaded_by(tmp_path, "build_worker(services)", ("flask", "pygeoapi", "werkzeug")) == []


def test_an_api_process_loads_no_s3_or_gdal_library_until_asked(tmp_path: Path) -> None:
    """boto3 and rasterio (GDAL) are tens of MiB per process: an API process built and
    answering job lists loads them only for an S3 publication or a tiled request."""
    body = (
        "client = create_app(settings, services).test_client()\n"
        "assert client.get('/jobs').status_code in (200, 401)"
    )
    assert _loaded_by(tmp_path, body, ("boto3", "botocore", "rasterio")) == []


def test_served_processes_migrate_in_a_child_and_never_load_alembic(tmp_path: Path) -> None:
    """Alembic with Mako (and the Pygments plugin it loads) is ~11 MiB that every gunicorn
    worker would inherit from the server process: ``hpcgw serve`` and ``hpcgw worker``
    migrate the job store in a child, then answer (the tables exist) without loading it."""
    body = (
        "client = create_app(settings, services).test_client()\n"
        "assert client.get('/jobs').status_code in (200, 401)\n"
        "build_worker(services).run_once()"
    )
    watched = ("alembic", "mako")
    assert _loaded_by(tmp_path, body, watched, as_served=True) == []
    (tmp_path / "direct").mkdir()
    assert "alembic" in _loaded_by(tmp_path / "direct", "", watched)  # the test can fail
