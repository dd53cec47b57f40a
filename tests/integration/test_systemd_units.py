"""deploy/systemd: the units pass ``systemd-analyze verify`` and keep their hardening.

The units name ``/opt/hpcgw/venv/bin/hpcgw``, which ``verify`` requires to be
executable: a temporary copy points them at this venv's ``hpcgw`` instead.
``verify`` only warns (exit 0) about an unknown or unparsable directive, so any
line it prints about our units fails the test. ``systemd-analyze security
--offline`` scores the sandbox of each unit as systemd would apply it (drop-ins
included). Neither needs systemd running as PID 1; *starting* the units does,
which this container (and the CI's) cannot: that part is not tested here.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

UNITS = REPO / "deploy" / "systemd"
INSTALLED_BINARY = "/opt/hpcgw/venv/bin/hpcgw"
HARDENING = UNITS / "hpcgw-.service.d" / "10-hardening.conf"


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    return tool


def _copy(tmp_path: Path) -> Path:
    here = Path(sys.executable).with_name("hpcgw")
    assert here.exists(), f"{here}: the venv has no hpcgw entry point"
    copy = tmp_path / "units"
    shutil.copytree(UNITS, copy)
    for unit in copy.glob("*.service"):
        unit.write_text(unit.read_text().replace(INSTALLED_BINARY, str(here)))
    # the template as systemctl would instantiate it: hpcgw-worker@2.service
    os.symlink("hpcgw-worker@.service", copy / "hpcgw-worker@2.service")
    return copy


def _analyze(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze ARGS`` on the unit copy in ``copy`` (units named relative to it)."""
    return subprocess.run(
        [_systemd_analyze(), *args],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    units = ["hpcgw-api.service", "hpcgw-worker@2.service", "hpcgw-cleanup.service"]
    result = _verify(copy, *units, "hpcgw-cleanup.timer")
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "hpcgw" in line]
    assert result.returncode == 0 and not ours, "\n".join(ours) or result.stderr


def test_the_chown_drop_in_verifies_and_keeps_only_three_capabilities(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    dropins = copy / "hpcgw-worker@.service.d"
    dropins.mkdir()
    shutil.copy(UNITS / "chown-workspaces.conf", dropins)
    result = _verify(copy, "hpcgw-worker@2.service")
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "hpcgw" in line]
    assert result.returncode == 0 and not ours, "\n".join(ours) or result.stderr
    service = _service_section(UNITS / "chown-workspaces.conf")
    assert service["CapabilityBoundingSet"].split() == [
        "CAP_CHOWN",
        "CAP_FOWNER",
        "CAP_DAC_OVERRIDE",
    ]


#: The highest ``systemd-analyze security`` exposure (0-100, printed divided by 10)
#: a shipped unit may reach: below 40 is "OK". They score 35 (systemd 252).
EXPOSURE_LIMIT = 40


def _verify(copy: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return _analyze(copy, "verify", *units)


def _exposure(copy: Path, unit: str, limit: int) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze security --offline``: exit status 1 above ``limit``."""
    return _analyze(copy, "security", "--offline=true", f"--threshold={limit}", unit)


def test_every_unit_is_sandboxed_as_systemd_scores_it(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    for unit in ("hpcgw-api.service", "hpcgw-worker@2.service", "hpcgw-cleanup.service"):
        scored = _exposure(copy, unit, EXPOSURE_LIMIT)
        assert scored.returncode == 0, f"{unit}: {scored.stdout[-600:]}{scored.stderr}"
    # the score means something: the API unit without the hardening drop-in is unsafe
    shutil.rmtree(copy / "hpcgw-.service.d")
    bare = _exposure(copy, "hpcgw-api.service", 90)
    assert bare.returncode != 0 and "UNSAFE" in bare.stdout, bare.stdout[-300:]


def test_the_chown_worker_keeps_a_sandbox(tmp_path: Path) -> None:
    """Root with three capabilities still scores below "MEDIUM" (50; it scores 42)."""
    copy = _copy(tmp_path)
    dropins = copy / "hpcgw-worker@.service.d"
    dropins.mkdir()
    shutil.copy(UNITS / "chown-workspaces.conf", dropins)
    scored = _exposure(copy, "hpcgw-worker@2.service", 50)
    assert scored.returncode == 0, scored.stdout[-600:]


def test_verify_catches_a_broken_directive(tmp_path: Path) -> None:
    """The check above can fail: a bad value in the shared hardening drop-in is reported."""
    copy = _copy(tmp_path)
    dropin = copy / "hpcgw-.service.d" / "10-hardening.conf"
    dropin.write_text(dropin.read_text().replace("ProtectSystem=strict", "ProtectSystem=bogus"))
    result = _verify(copy, "hpcgw-api.service")
    assert "10-hardening.conf" in result.stderr and "bogus" in result.stderr


def _service_section(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return dict(parser["Service"])


def test_every_service_runs_unprivileged_with_the_hardening() -> None:
    hardening = _service_section(HARDENING)
    assert hardening["NoNewPrivileges"] == "yes"
    assert hardening["ProtectSystem"] == "strict"
    assert hardening["CapabilityBoundingSet"] == ""  # no capability at all
    assert hardening["AmbientCapabilities"] == ""
    # writable: the state directory and the workspaces, nothing else
    assert hardening["StateDirectory"] == "hpcgw"
    # ("-": a host without local workspaces, only SSH sites, has no such folder)
    assert hardening["ReadWritePaths"].split() == ["-/srv/hpcgw/work"]
    services = sorted(UNITS.glob("hpcgw-*.service"))
    assert [p.name for p in services] == [
        "hpcgw-api.service",
        "hpcgw-cleanup.service",
        "hpcgw-worker@.service",
    ]
    for unit in services:
        service = _service_section(unit)
        assert service["User"] == "hpcgw", unit.name
        assert service["EnvironmentFile"] == "/etc/hpcgw/hpcgw.env", unit.name
        assert service["ExecStart"].startswith(INSTALLED_BINARY), unit.name
