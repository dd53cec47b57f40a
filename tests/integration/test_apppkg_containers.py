"""Container runtimes per site, on the two real dev clusters (``hpcgw`` and ``mesocentre``).

``mesocentre`` is configured as declaring a container runtime (apptainer),
``hpcgw`` as declaring none. A package that *requires* a container
(``DockerRequirement`` under ``requirements``) may be deployed because one
site can run it; routing never sends it to ``hpcgw`` (pinning that site is a
400 naming the reason), and on ``mesocentre`` the batch job runs cwltool with
``--singularity``.

Debian has no package for apptainer or singularity, so with the site's
runtime not on the job's PATH the job on ``mesocentre`` fails with cwltool's
own message about the missing ``singularity`` command, which is what shows the
flag was used. The container run itself is exercised with an Apptainer built
from source by ``deploy/apptainer.sh`` (``make apptainer``), given to the site as
``container_bin``, and a busybox image built without any registry in the
site's ``container_images`` folder; that test is skipped only when this
Apptainer is not installed. The refusal of a deploy no site can run is in
``test_apppkg.py`` (single site, no runtime).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.jobs.states import JobState
from tests.clusters import MESOCENTRE
from tests.conftest import REPO, require_cluster, require_root
from tests.identity_fixtures import Keycloak, keycloak
from tests.integration.test_apppkg import (
    DATA,
    Gateway,
    _execute,
    _output_text,
    _pinned_refusal,
    _wait,
    deployer_gateway,
)
from tests.integration.test_two_sites import _sites

pytestmark = pytest.mark.slurm

__all__ = ["keycloak"]

DOCKER = "requirements:\n  DockerRequirement: {dockerPull: 'debian:stable-slim'}"
#: The image of the container run: made locally, never pulled (cwltool finds it by name).
IMAGE = "busybox:hpcgw-test"
APPTAINER = [str(REPO / "deploy" / "apptainer.sh")]


@contextlib.contextmanager
def two_site_gateway(
    keycloak: Keycloak, folder: Path, mesocentre: dict[str, object], **overrides: object
) -> Iterator[Gateway]:
    """A deployer gateway on both dev clusters (``hpcgw`` the default site), with
    ``mesocentre``'s site settings extended by ``mesocentre``."""
    require_root("jobs run as alice in root-made workspaces")
    require_cluster(MESOCENTRE)
    sites = _sites("slurmrest")
    sites["mesocentre"] = {**sites["mesocentre"], **mesocentre}  # type: ignore[dict-item]
    with deployer_gateway(
        keycloak, folder, sites=sites, default_site="hpcgw", **overrides
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def two(
    cluster: str, keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("containers")
    with two_site_gateway(keycloak, folder, {"container_runtime": "apptainer"}) as gateway:
        yield gateway


def test_a_container_package_runs_only_on_a_site_with_a_runtime(two: Gateway) -> None:
    text = (DATA / "wordcount.cwl").read_text().replace("id: wordcount", "id: wc-docker")
    resp = two.deploy("dora", text.replace("requirements:", DOCKER, 1))
    assert resp.status_code == 201, resp.get_json()
    try:
        assert two.services.registry.get("wc-docker").hpc.container
        inputs = {"text": "one two three"}
        assert "declares no container runtime" in _pinned_refusal(two, "wc-docker", inputs, "hpcgw")

        job_id = _execute(two, "dora", "wc-docker", inputs)
        job = _wait(two, job_id)
        assert job.site == "mesocentre", job.routing_reason
        # no apptainer/singularity on the dev clusters: cwltool --singularity says so
        assert job.state is JobState.FAILED
        assert "singularity" in (job.message or "").lower(), job.message
    finally:
        assert two.client.delete("/processes/wc-docker", headers=two.h("dora")).status_code == 204


def _apptainer_bin() -> str:
    """The bin folder of the Apptainer ``deploy/apptainer.sh`` installed; skip without it."""
    done = subprocess.run(["bash", *APPTAINER, "bin"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip("apptainer is not installed: run `make apptainer` (deploy/apptainer.sh)")
    return done.stdout.strip()


def test_a_container_package_runs_in_apptainer_as_the_user(
    cluster: str, keycloak: Keycloak, tmp_path: Path
) -> None:
    """A ``DockerRequirement`` package runs to ``successful`` in a real Apptainer
    container on ``mesocentre``, as the user, from an image no registry provided."""
    bin_folder = _apptainer_bin()
    with tempfile.TemporaryDirectory(prefix="hpcgw-sif-") as images:
        Path(images).chmod(0o755)  # the users' jobs read the image
        image = Path(images) / f"{IMAGE}.sif"
        subprocess.run(["bash", *APPTAINER, "image", str(image)], check=True)
        runtime = {
            "container_runtime": "apptainer",
            "container_bin": bin_folder,
            "container_images": images,
        }
        with two_site_gateway(keycloak, tmp_path, runtime) as gateway:
            text = (DATA / "wordcount.cwl").read_text().replace("id: wordcount", "id: wc-sif")
            docker = f"requirements:\n  DockerRequirement: {{dockerPull: '{IMAGE}'}}"
            resp = gateway.deploy("dora", text.replace("requirements:", docker, 1))
            assert resp.status_code == 201, resp.get_json()
            job_id = _execute(gateway, "dora", "wc-sif", {"text": "one two three four"})
            job = _wait(gateway, job_id)
            assert job.site == "mesocentre", job.routing_reason
            assert job.state is JobState.SUCCESSFUL, job.message
            # wc ran inside the container: it saw the input at cwltool's staging path
            counts = _output_text(gateway, "dora", job_id, "counts")
            assert counts.split()[0] == "4", counts
            assert "/var/lib/cwl/" in counts, counts
