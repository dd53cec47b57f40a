"""Prometheus multiprocess mode, switched on before prometheus-client is imported.

prometheus-client chooses between in-process and file-backed (multiprocess)
metric values when ``prometheus_client.values`` is first imported, from the
``PROMETHEUS_MULTIPROC_DIR`` environment variable. ``hpcgw serve`` and
``hpcgw worker`` call :func:`configure_multiprocess` before importing anything
that creates metrics, so every gunicorn worker and the job worker write their
event metrics to one directory and ``/metrics`` sums them. This module must
therefore not import prometheus-client.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"


def configure_multiprocess(directory: str | None, *, clean: bool) -> str | None:
    """Set ``PROMETHEUS_MULTIPROC_DIR`` for this process and its children.

    An existing ``PROMETHEUS_MULTIPROC_DIR`` wins over ``directory``; with
    neither, nothing changes (single-process mode). ``clean`` removes the
    value files of earlier runs (the server does at start). Returns the
    directory in use, or None.
    """
    current = os.environ.get(ENV_DIR)
    chosen = current or directory
    if not chosen:
        return None
    path = Path(chosen)
    if clean and path.is_dir():
        for item in path.glob("*.db"):
            item.unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_DIR] = str(path.resolve())
    return os.environ[ENV_DIR]


def multiprocess_enabled() -> bool:
    directory = os.environ.get(ENV_DIR)
    return bool(directory) and Path(str(directory)).is_dir()
