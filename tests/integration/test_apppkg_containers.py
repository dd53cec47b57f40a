"""Container runtimes per site, on the two real dev clusters (``hpcgw`` and ``mesocentre``).

``mesocentre`` is configured as declaring a container runtime (apptainer),
``hpcgw`` as declaring none. A package that *requires* a container
(``DockerRequirement`` under ``requirements``) may be deployed because one
site can run it; routing never sends it to ``hpcgw`` (pinning that site is a
400 naming the reason), and on ``mesocentre`` the batch job runs cwltool with
``--singularity``.

Neither apptainer nor singularity is installed on these clusters (Debian has
no package for either), so the container run itself is not exercised: the
job on ``mesocentre`` fails with cwltool's own message about the missing
``singularity`` command, which is what shows the flag was used. The refusal of
a deploy no site can run is in ``test_apppkg.py`` (single site, no runtime).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.jobs.states import JobState
from tests.clusters import MESOCENTRE
from tests.conftest import require_cluster, require_root
from tests.identity_fixtures import Keycloak, keycloak
from tests.integration.test_apppkg import (
    DATA,
    Gateway,
    _execute,
    _pinned_refusal,
    _wait,
    deployer_gateway,
)
from tests.integration.test_two_sites import _sites

pytestmark = pytest.mark.slurm

__all__ = ["keycloak"]

DOCKER = "requirements:\n  DockerRequirement: {dockerPull: 'debian:stable-slim'}"


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
