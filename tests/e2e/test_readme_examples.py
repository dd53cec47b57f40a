"""The README's shell examples, run as pasted, against a demo-like gateway and EO mirror.

What the test uses: the real Keycloak of ``deploy/keycloak`` (realm ``gep``,
started once by ``make test``); what it starts itself, each on a free port: the
demo's EO mirror (``deploy/eo_mirror``) and
``hpcgw serve --with-worker`` signing users in with Keycloak and
allow-listing exactly that mirror, like ``deploy/config/demo.yaml``. The
README's demo addresses (gateway :5000, Keycloak :8180, mirror :8190)
are replaced by the URLs in use; nothing else in a block is changed.

Every ```` ```sh ```` block of README.md runs, in order, in one bash (``-e -o
pipefail``), unless the line before its fence is a marker
``<!-- readme-example: not run (why) -->`` -- for blocks that install, restart
the demo or need a production configuration.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deploy.eo_mirror.catalog import ensure_mirror
from deploy.eo_mirror.server import MirrorServer
from gateway.db import make_engine
from gateway.identity.identity_map import IdentityStatus, IdentityStore
from tests.conftest import REPO
from tests.e2e.conftest import GatewayDirs, free_port, running_gateway, write_config
from tests.identity_fixtures import Keycloak, auth_config, keycloak, password_token

__all__ = ["keycloak"]

README = REPO / "README.md"
SKIP_MARKER = re.compile(r"<!-- readme-example: not run \(.+\) -->")
FENCE = re.compile(r"^```sh\n(.*?)^```\n", re.M | re.S)
DEMO_GATEWAY, DEMO_IDP, DEMO_MIRROR = (
    "http://127.0.0.1:5000",
    "http://127.0.0.1:8180",
    "http://127.0.0.1:8190",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Block:
    """One shell block of the README: its first line number and text."""

    line: int
    text: str
    run: bool


def readme_blocks(text: str) -> list[Block]:
    """Every ```sh block; ``run`` is False when the line before it is a skip marker."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start()) + 2
        blocks.append(Block(line, match.group(1), not SKIP_MARKER.fullmatch(before.strip())))
    return blocks


@pytest.mark.unit
def test_readme_blocks_are_either_run_or_marked() -> None:
    text = README.read_text()
    blocks = readme_blocks(text)
    assert [b.line for b in blocks if not b.run], "some blocks are marked not run"
    ran = [b for b in blocks if b.run]
    assert any("/processes/ndvi/execution" in b.text for b in ran)
    assert any("/processes/echo/execution" in b.text for b in ran)
    assert "data.example.org" not in text
    # a block that runs names only the demo's own services (the test replaces them)
    for block in ran:
        for url in re.findall(r"https?://[^\s'\"/]+", block.text):
            assert url in (DEMO_GATEWAY, DEMO_IDP, DEMO_MIRROR), (block.line, url)


@dataclass(frozen=True)
class Demo:
    gateway: str
    idp: Keycloak
    mirror: str


@pytest.fixture(scope="module")
def demo(
    cluster: str,
    keycloak: Keycloak,
    tmp_path_factory: pytest.TempPathFactory,
    gateway_dirs: GatewayDirs,
) -> Iterator[Demo]:
    """Keycloak, and an EO mirror and a gateway each on a free port (demo-like settings)."""
    mirror = MirrorServer(ensure_mirror(tmp_path_factory.mktemp("mirror") / "v")).start()
    tmp = gateway_dirs.mktemp("readme-gateway")
    port = free_port()
    config = write_config(
        tmp,
        port,
        auth=auth_config(keycloak),
        workflow={
            "egress": {"allow_origins": [mirror.url]},
            "cache": {"root": str(tmp / "cache")},
        },
    )
    try:
        with running_gateway(tmp, config, port) as url:
            provision(f"sqlite:///{tmp}/hpcgw.db", keycloak, "alice")
            yield Demo(url, keycloak, mirror.url)
    finally:
        mirror.stop()


def provision(database_url: str, kc: Keycloak, name: str) -> None:
    """What ``hpcgw users sync`` records for a portal user (HPC login = user name here)."""
    engine = make_engine(database_url)
    try:
        IdentityStore(engine).save(kc.user_id(name), name, name, IdentityStatus.ACTIVE, ["gep"])
    finally:
        engine.dispose()


def script_for(blocks: list[Block], demo: Demo) -> str:
    """The runnable blocks as one bash script, demo addresses replaced, one banner each."""
    parts = []
    for block in blocks:
        if not block.run:
            continue
        text = (
            block.text.replace(DEMO_GATEWAY, demo.gateway)
            .replace(DEMO_IDP, demo.idp.url)
            .replace(DEMO_MIRROR, demo.mirror)
        )
        parts.append(f"echo '== README block at line {block.line}'\n{text}")
    return "\n".join(parts)


@pytest.mark.e2e
def test_readme_shell_blocks_work_as_pasted(demo: Demo, tmp_path: Path) -> None:
    blocks = readme_blocks(README.read_text())
    script = tmp_path / "readme.sh"
    script.write_text(script_for(blocks, demo))
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    shown = f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    assert done.returncode == 0, shown
    assert done.stdout.count("== README block at line") == sum(b.run for b in blocks), shown
    assert '"string_output"' in done.stdout and '"hi"' in done.stdout, shown  # echo results
    assert '"valid_pixels"' in done.stdout, shown  # NDVI statistics
    assert '"id": "hpcgw-demo-mirror"' in done.stdout, shown  # the mirror's catalog
    assert '"demo:change_db": 6.0' in done.stdout, shown  # the SAR pair's known change
    print(done.stdout)  # shown with -s / -rP: what a reader of the README would see
    assert (tmp_path / "quicklook.png").read_bytes().startswith(PNG_MAGIC)
    # the NDVI job ran on the mirror scene, as alice
    token = password_token(demo.idp, "alice")
    jobs = httpx.get(
        f"{demo.gateway}/jobs",
        params={"processID": "ndvi"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()["jobs"]
    assert [job["status"] for job in jobs] == ["successful"]


@pytest.mark.e2e
def test_another_loopback_port_is_still_refused(demo: Demo) -> None:
    """Only the mirror's origin is allowed: Keycloak, on the same loopback
    address, is refused with 400 before any job exists."""
    token = password_token(demo.idp, "alice")
    elsewhere = f"{demo.idp.url}/realms/gep/protocol/openid-connect/certs"
    for image in ({"href": elsewhere}, {"href": elsewhere, "asset": "image"}):
        answer = httpx.post(
            f"{demo.gateway}/processes/ndvi/execution",
            json={"inputs": {"image": image}},
            headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"},
            timeout=30,
        )
        assert answer.status_code == 400, answer.text
        assert "loopback" in answer.text, answer.text
