"""``hpcgw accounting budget``: per-site budgets from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gateway.cli import app as cli_app

pytestmark = pytest.mark.unit


def _site(url: str) -> dict[str, object]:
    return {"adapter": "slurmrest", "slurmrest": {"url": url, "jwt_key_file": "/dev/null"}}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    sites = {"hpcgw": _site("http://127.0.0.1:6820"), "mesocentre": _site("http://127.0.0.1:6920")}
    path.write_text(
        yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path}/hpcgw.db"}, "sites": sites})
    )
    return path


def _budget(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, ["accounting", "budget", *args, "-c", str(config)])
    return result.exit_code, result.output


def test_a_budget_for_one_site_is_set_shown_and_deleted(config: Path) -> None:
    code, out = _budget(config, "set", "--project", "gep", "--limit", "500", "--site", "mesocentre")
    assert (code, out.strip()) == (0, "project gep: 500 core-hours per month at site mesocentre")
    assert _budget(config, "set", "--project", "gep", "--limit", "900")[0] == 0  # every site
    code, out = _budget(config, "show", "--project", "gep", "--json")
    rows = {(r["site"], r["limit_core_hours"]) for r in json.loads(out)}
    assert code == 0 and rows == {("*", 900.0), ("mesocentre", 500.0)}
    code, out = _budget(config, "set", "--project", "gep", "--limit", "1", "--site", "atlantis")
    assert code == 2 and "unknown site 'atlantis': one of hpcgw, mesocentre or '*'" in out
    assert _budget(config, "delete", "--project", "gep", "--site", "mesocentre")[0] == 0
    assert _budget(config, "delete", "--project", "gep", "--site", "mesocentre")[0] == 1
    code, out = _budget(config, "show", "--project", "gep")
    assert code == 0 and "mesocentre" not in out and "900.0000" in out
