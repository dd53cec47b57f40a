"""The batch script's end record: written after the runner exits, with its status,
and the script still ends the way the runner did (Slurm records the same exit)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway.settings import SiteSettings
from gateway.workflow.batch import END_RECORD, render_script
from processes.registry import ProcessRegistry

pytestmark = pytest.mark.unit


def _script(tmp_path: Path, runner_body: str, array: bool = False) -> Path:
    """The echo process's batch script, with a stand-in interpreter running ``runner_body``."""
    fake_python = tmp_path / "python"
    fake_python.write_text(f"#!/bin/bash\n{runner_body}\n")
    fake_python.chmod(0o755)
    site = SiteSettings(workspace_root=str(tmp_path), python=str(fake_python))
    process = ProcessRegistry.builtin(["echo"]).get("echo")
    script = tmp_path / "job.sh"
    script.write_text(render_script(process, site, str(tmp_path), array=array))
    return script


@pytest.mark.parametrize("code", [0, 3])
def test_the_record_holds_the_runner_status_and_the_script_exits_with_it(
    tmp_path: Path, code: int
) -> None:
    script = _script(tmp_path, f"echo ran >out.txt; exit {code}")
    done = subprocess.run(["bash", str(script)], check=False)
    assert done.returncode == code
    assert (tmp_path / "out.txt").read_text() == "ran\n"
    assert (tmp_path / END_RECORD).read_text() == f"{code}\n"


def test_a_runner_killed_by_a_signal_ends_the_script_by_the_same_signal(tmp_path: Path) -> None:
    script = _script(tmp_path, "kill -9 $$")
    done = subprocess.run(["bash", str(script)], check=False)
    assert done.returncode == -9  # as with `exec`: Slurm sees a job killed by signal 9
    assert (tmp_path / END_RECORD).read_text() == "137\n"


def test_an_array_task_writes_no_record(tmp_path: Path) -> None:
    """An array ends when its last task does: each task's end is not the job's."""
    script = _script(tmp_path, "exit 0", array=True)
    assert subprocess.run(["bash", str(script)], check=False).returncode == 0
    assert not (tmp_path / END_RECORD).exists()
