"""The process registry: every ``processes/<id>/process.yaml`` shipped with the package."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from processes.definition import ProcessDefinition, load_definition

_ROOT = Path(__file__).resolve().parent


class UnknownProcess(LookupError):
    """No process with that id is offered."""


class ProcessRegistry:
    """An ordered, read-only set of process definitions."""

    def __init__(self, definitions: Iterable[ProcessDefinition]) -> None:
        self._by_id = {d.id: d for d in definitions}

    @classmethod
    def builtin(cls, only: Iterable[str] = ()) -> ProcessRegistry:
        """All packaged processes, or only the ids listed in ``only``."""
        wanted = set(only)
        found = [load_definition(p) for p in sorted(_ROOT.glob("*/process.yaml"))]
        if wanted:
            missing = wanted - {d.id for d in found}
            if missing:
                raise UnknownProcess(f"configured processes not found: {sorted(missing)}")
            found = [d for d in found if d.id in wanted]
        return cls(found)

    def get(self, process_id: str) -> ProcessDefinition:
        try:
            return self._by_id[process_id]
        except KeyError:
            raise UnknownProcess(process_id) from None

    def __contains__(self, process_id: object) -> bool:
        return process_id in self._by_id

    def __iter__(self) -> Iterator[ProcessDefinition]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)
