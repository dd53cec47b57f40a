"""Process definitions: what runs on the cluster, independent of site and transport.

Runners start as ``python -m processes.<id>.run`` inside every Slurm job, which
imports this package first: it therefore imports nothing itself (the
definitions need pydantic and YAML, ~0.4 s of CPU per job start on the dev
box). The names below are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from processes.definition import ProcessDefinition, Resources, load_definition
    from processes.registry import ProcessRegistry, UnknownProcess

__all__ = ["ProcessDefinition", "ProcessRegistry", "Resources", "UnknownProcess", "load_definition"]

_HOMES = {
    "ProcessDefinition": "processes.definition",
    "Resources": "processes.definition",
    "load_definition": "processes.definition",
    "ProcessRegistry": "processes.registry",
    "UnknownProcess": "processes.registry",
}


def __getattr__(name: str) -> Any:
    """Load an exported name from its module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'processes' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
