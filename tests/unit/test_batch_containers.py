"""A site's container runtime as the job sees it: the runtime's commands first on the
PATH and the site's image folder as cwltool's image cache, only where a runtime is
declared (the container run itself: ``tests/integration/test_apppkg_containers.py``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway.settings import SiteSettings
from gateway.workflow.batch import render_script
from processes.registry import ProcessRegistry

pytestmark = pytest.mark.unit

PRINT_ENV = 'echo "$PATH" >path.txt; echo "${CWL_SINGULARITY_CACHE-unset}" >images.txt'


def _run(tmp_path: Path, **site: object) -> tuple[str, str]:
    """The PATH and CWL_SINGULARITY_CACHE the echo process's runner starts with."""
    fake_python = tmp_path / "python"
    fake_python.write_text(f"#!/bin/bash\n{PRINT_ENV}\n")
    fake_python.chmod(0o755)
    settings = SiteSettings(workspace_root=str(tmp_path), python=str(fake_python), **site)
    script = tmp_path / "job.sh"
    script.write_text(
        render_script(ProcessRegistry.builtin(["echo"]).get("echo"), settings, str(tmp_path))
    )
    env = {"PATH": "/usr/bin:/bin"}
    assert subprocess.run(["/bin/bash", str(script)], env=env, check=False).returncode == 0
    return (tmp_path / "path.txt").read_text().strip(), (
        tmp_path / "images.txt"
    ).read_text().strip()


def test_the_runtime_folder_leads_the_path_and_the_images_are_cwltools_cache(
    tmp_path: Path,
) -> None:
    path, images = _run(
        tmp_path,
        container_runtime="apptainer",
        container_bin="/opt/apptainer 1.4/bin",
        container_images="/srv/sif",
    )
    assert path == "/opt/apptainer 1.4/bin:/usr/bin:/bin"
    assert images == "/srv/sif"


def test_a_site_without_a_runtime_keeps_the_nodes_path(tmp_path: Path) -> None:
    path, images = _run(tmp_path, container_bin="/opt/apptainer/bin", container_images="/srv/sif")
    assert path == "/usr/bin:/bin"
    assert images == "unset"
