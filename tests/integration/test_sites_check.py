"""Dialect choice and ``hpcgw sites check`` against the REAL slurmrestd of both dev clusters.

``api_version: auto`` must speak v0.0.38 to hpcgw (22.05) and v0.0.42 to
mesocentre (24.11); a slurmrestd that offers no version we speak (here a real
22.05 slurmrestd started with only its v0.0.37 plugin) is reported with what
it offers, by the adapter and by ``sites check``, while the other sites still
answer.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from gateway.cli import app as cli_app
from gateway.settings import SiteSettings
from gateway.sites import Sites, log_sites
from hpc_adapters.errors import UnsupportedApiError
from tests.clusters import CLUSTERS, HPCGW, MESOCENTRE, DevCluster
from tests.conftest import WORK_ROOT, require_root
from tests.integration.adapters import make_slurmrest, require_cluster
from tests.polling import eventually

pytestmark = pytest.mark.slurm


@pytest.fixture(params=list(CLUSTERS))
def dev(request: pytest.FixtureRequest, cluster: str) -> DevCluster:
    found = CLUSTERS[request.param]
    require_cluster(found)
    return found


def test_auto_speaks_the_newest_dialect_each_cluster_offers(dev: DevCluster) -> None:
    under_test = make_slurmrest(dev, "auto")
    try:
        facts = under_test.adapter.check()
    finally:
        under_test.close()
    assert facts["dialect"] == dev.api_version
    assert facts["slurm_release"].startswith(dev.release)
    assert facts["cluster"] == dev.name
    assert float(facts["rtt_ms"]) > 0


def test_a_pinned_dialect_the_server_lacks_is_unsupported(cluster: str) -> None:
    require_cluster(MESOCENTRE)
    under_test = make_slurmrest(MESOCENTRE, "v0.0.38")  # 24.11 serves no v0.0.38
    try:
        with pytest.raises(UnsupportedApiError, match="does not serve"):
            under_test.adapter.check()
    finally:
        under_test.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def old_slurmrestd(cluster: str) -> Iterator[str]:
    """A real slurmrestd 22.05 serving only OpenAPI v0.0.37, on a free loopback port."""
    require_root("starting a slurmrestd as nobody needs root")
    port = _free_port()
    argv = ["/usr/sbin/slurmrestd", "-u", "nobody", "-g", "nogroup", "-a", "rest_auth/jwt"]
    proc = subprocess.Popen(
        [*argv, "-s", "openapi/v0.0.37", f"127.0.0.1:{port}"],
        env={**os.environ, "SLURM_JWT": "daemon", "SLURM_CONF": HPCGW.slurm_conf},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert proc.poll() is None, "slurmrestd exited at start"
        try:
            httpx.get(f"{url}/openapi/v3", timeout=1)
        except httpx.HTTPError:
            return False
        return True

    eventually(answers, 20, f"the v0.0.37-only slurmrestd on {url}")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_sites_check_lists_both_clusters_and_the_site_it_cannot_speak_to(
    old_slurmrestd: str, tmp_path: Path
) -> None:
    require_cluster(MESOCENTRE)

    def site(url: str, key: str) -> dict[str, object]:
        rest = {"url": url, "jwt_key_file": key, "api_version": "auto"}
        return {"adapter": "slurmrest", "slurmrest": rest, "workspace_root": str(WORK_ROOT)}

    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{tmp_path}/hpcgw.db"},
                "sites": {
                    "hpcgw": site(HPCGW.rest_url, HPCGW.jwt_key),
                    "mesocentre": site(MESOCENTRE.rest_url, MESOCENTRE.jwt_key),
                    "museum": site(old_slurmrestd, HPCGW.jwt_key),
                },
            }
        )
    )
    table = CliRunner().invoke(cli_app, ["sites", "check", "-c", str(config)])
    assert table.exit_code == 1, table.output  # one site is not usable
    rows = {line.split()[0]: line.split() for line in table.output.splitlines() if line}
    assert rows["hpcgw"][1:5] == ["slurmrest", "hpcgw", "22.05.8", "v0.0.38"]
    assert rows["hpcgw"][-1] == "ok"
    assert rows["mesocentre"][1:4] == ["slurmrest", "mesocentre", "24.11.5"]
    assert rows["mesocentre"][4:5] == ["v0.0.42"] and rows["mesocentre"][-1] == "ok"
    assert rows["museum"][-1] == "DOWN"
    assert "museum: slurmrestd at" in table.output and "offers v0.0.37" in table.output

    as_json = CliRunner().invoke(cli_app, ["sites", "check", "--json", "-c", str(config)])
    reports = {r["site"]: r for r in map(json.loads, as_json.output.splitlines())}
    assert reports["mesocentre"]["ok"] is True and reports["museum"]["ok"] is False
    assert reports["mesocentre"]["cluster"] == "mesocentre"
    assert "v0.0.37" in str(reports["museum"]["error"])


def test_worker_start_logs_each_site_and_the_one_it_cannot_use(
    old_slurmrestd: str, caplog: pytest.LogCaptureFixture
) -> None:
    require_cluster(MESOCENTRE)

    def site(url: str, key: str) -> SiteSettings:
        rest = {"api_version": "auto", "url": url, "jwt_key_file": key}
        return SiteSettings.model_validate({"slurmrest": rest})

    sites = Sites(
        {
            "mesocentre": site(MESOCENTRE.rest_url, MESOCENTRE.jwt_key),
            "museum": site(old_slurmrestd, HPCGW.jwt_key),
        }
    )
    with caplog.at_level(logging.INFO, logger="gateway.sites"):
        reports = log_sites(sites)
    sites.close()
    assert [r.ok for r in reports] == [True, False]
    assert "site mesocentre: slurmrest cluster mesocentre, Slurm 24.11.5" in caplog.text
    assert "site museum (slurmrest) is not usable now" in caplog.text
    assert "offers v0.0.37" in caplog.text
