"""slurmrestd OpenAPI dialects: the registry, and how a version is chosen.

The transport (:mod:`hpc_adapters.slurmrest`) only moves bytes; everything
that depends on the slurmrestd OpenAPI version (paths, the job description,
field names and encodings of answers) lives in a :class:`Dialect`:

=========  ======================  =========================================
version    Slurm releases          module
=========  ======================  =========================================
v0.0.38    22.05 (23.02)           :mod:`hpc_adapters.slurm.v0038`
v0.0.40    23.11, 24.05, 24.11     :mod:`hpc_adapters.slurm.v004x`
v0.0.41    24.05, 24.11            :mod:`hpc_adapters.slurm.v004x`
v0.0.42    24.11 (25.05)           :mod:`hpc_adapters.slurm.v004x`
=========  ======================  =========================================

:func:`dialect_for` picks one by version string; ``api_version: auto`` reads
the server's ``/openapi/v3`` document (:func:`offered_versions`) and speaks
the newest version both sides know (:func:`choose_version`). A new version is
added by writing a class and registering it in ``_DIALECTS``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hpc_adapters.slurm.dialect_base import (
    AccountingRecord,
    Dialect,
    Json,
    SlurmApiError,
    SubmitResult,
    as_dict,
    epoch,
    valid_job_id,
    wait_status,
)
from hpc_adapters.slurm.v0038 import V0038Dialect
from hpc_adapters.slurm.v004x import V0040Dialect, V0041Dialect, V0042Dialect

__all__ = [
    "AUTO",
    "AccountingRecord",
    "Dialect",
    "Json",
    "SlurmApiError",
    "SubmitResult",
    "V0038Dialect",
    "V0040Dialect",
    "V0041Dialect",
    "V0042Dialect",
    "choose_version",
    "dialect_for",
    "epoch",
    "offered_versions",
    "supported_versions",
    "valid_job_id",
    "wait_status",
]

_DIALECTS: dict[str, type[Dialect]] = {
    d.version: d for d in (V0038Dialect, V0040Dialect, V0041Dialect, V0042Dialect)
}

#: ``api_version`` value asking the adapter to pick the newest dialect the server offers.
AUTO = "auto"
_PATH_VERSION = re.compile(r"^/slurm(?:db)?/(v[0-9]+\.[0-9]+\.[0-9]+)/")


def offered_versions(openapi: Json) -> list[str]:
    """The API versions a slurmrestd OpenAPI document has paths for, oldest first."""
    found = {m.group(1) for p in as_dict(openapi.get("paths")) if (m := _PATH_VERSION.match(p))}
    return sorted(found, key=_version_key)


def choose_version(offered: Sequence[str]) -> str | None:
    """The newest of ``offered`` that a dialect speaks, or None."""
    spoken = [v for v in offered if v in _DIALECTS]
    return max(spoken, key=_version_key) if spoken else None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.lstrip("v").split("."))


def dialect_for(version: str) -> Dialect:
    """The dialect for an OpenAPI version (``"v0.0.42"`` or ``"0.0.42"``)."""
    key = version if version.startswith("v") else f"v{version}"
    try:
        return _DIALECTS[key]()
    except KeyError:
        supported = ", ".join(supported_versions())
        raise ValueError(
            f"unsupported slurmrestd OpenAPI version {version!r} (supported: {supported})"
        ) from None


def supported_versions() -> list[str]:
    """Versions :func:`dialect_for` knows, oldest first."""
    return sorted(_DIALECTS, key=_version_key)
