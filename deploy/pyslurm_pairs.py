"""Say which pyslurm x Slurm pair the tests will run, and why the others are skipped.

pyslurm X.Y.* wraps libslurm of Slurm X.Y exactly, and libslurm is loaded once
per process with the host's slurm.conf, so the pyslurm adapter can only be
tested against the cluster whose release it was built for. Run by ``make test``
after ``deploy/install-pyslurm.sh`` (``python deploy/pyslurm_pairs.py``).
"""

from __future__ import annotations

import subprocess

#: (cluster, its slurmctld binary, why no pyslurm can be had for it if it is not installed)
CLUSTERS = (
    (
        "hpcgw",
        "/usr/sbin/slurmctld",
        "pyslurm 22.5.x exists only as git tags on GitHub (PyPI serves 25.11.x and "
        "releases older than 19.x), which this machine cannot reach; "
        "deploy/install-pyslurm.sh builds it where PYSLURM_SOURCE or the tag is reachable",
    ),
    (
        "mesocentre",
        "/opt/slurm-24.11/sbin/slurmctld",
        "not tested: libslurm is per process and this gateway's libslurm is hpcgw's 22.05 "
        "(pyslurm 24.11.0 is also only a GitHub tag; no Slurm 25.11 source is served by "
        "Debian for a 25.11 cluster + pyslurm 25.11 from PyPI)",
    ),
)


def slurm_release(slurmctld: str) -> str:
    try:
        out = subprocess.run([slurmctld, "-V"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "not installed"
    return out.stdout.split()[-1] if out.stdout.strip() else "unknown"


def pyslurm_line(release: str) -> str:
    """pyslurm's spelling of a Slurm release: ``22.05.8`` -> ``22.5.``."""
    parts = release.split(".")
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return "?"
    return f"{int(parts[0])}.{int(parts[1])}."


def main() -> None:
    try:
        import pyslurm  # type: ignore[import-not-found]

        installed: str | None = str(pyslurm.__version__)
    except ImportError:
        installed = None
    for name, slurmctld, reason in CLUSTERS:
        release = slurm_release(slurmctld)
        if installed and name == "hpcgw" and installed.startswith(pyslurm_line(release)):
            print(f"[pyslurm] {name} (Slurm {release}): pyslurm {installed} - tests RUN")
        else:
            have = f"pyslurm {installed} installed" if installed else "no pyslurm installed"
            print(f"[pyslurm] {name} (Slurm {release}): {have} - tests SKIPPED: {reason}")


if __name__ == "__main__":
    main()
