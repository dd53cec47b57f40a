"""The README and docs describe the tree that exists, and link only inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _layout_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_readme_layout_names_every_gateway_package() -> None:
    block = _layout_block()
    packages = sorted(
        p.name
        for p in (REPO / "gateway").iterdir()
        if (p / "__init__.py").exists() and p.name != "migrations"
    )
    missing = [name for name in packages if f"{name}/" not in block]
    assert missing == []


def test_readme_layout_names_only_what_exists() -> None:
    named = re.findall(r"(?:^|\s)([a-z_]+)/(?=\s)", _layout_block(), re.MULTILINE)
    gone = [
        name
        for name in named
        if not (REPO / name).is_dir() and not (REPO / "gateway" / name).is_dir()
    ]
    assert gone == []


@pytest.mark.parametrize(
    "document",
    ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))],
)
def test_relative_links_stay_inside_the_repository(document: str) -> None:
    path = REPO / document
    outside = []
    for target in _LINK.findall(path.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        resolved = (path.parent / target).resolve()
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            outside.append(target)
    assert outside == []


def test_nothing_reads_outside_the_repository() -> None:
    """A user's clone has no shared folder beside it: the tree carries what it needs."""
    shared = "shared"  # spelt apart so this test's own text is no finding
    needles = (f"../{shared}", f'.parent / "{shared}"', "parent.parent.parent")
    found = []
    for top in ("gateway", "processes", "hpc_adapters", "tests", "bench", "deploy"):
        for path in (REPO / top).rglob("*"):
            if (
                path.suffix not in (".py", ".sh", ".yaml", ".md", ".in")
                or "ogc-schemas" in path.parts
            ):
                continue
            text = path.read_text(errors="ignore")
            if path == Path(__file__).resolve():
                continue
            found += [f"{path.relative_to(REPO)}: {n}" for n in needles if n in text]
    assert found == []
