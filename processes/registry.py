"""The process registry: the processes shipped with the package, plus deployed ones.

Built-in processes are the ``processes/<id>/process.yaml`` folders; they are
immutable. Deployed processes (CWL application packages, OGC API - Processes
Part 2) come from a :class:`DeployedSource` the gateway supplies (its database),
so every gateway instance sees the same set. A built-in id always wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from processes.definition import ProcessDefinition, load_definition

_ROOT = Path(__file__).resolve().parent


class UnknownProcess(LookupError):
    """No process with that id is offered."""


class DeployedSource(Protocol):
    """Where deployed processes are read from (the gateway's database)."""

    def current(self, process_id: str) -> ProcessDefinition | None:
        """The deployed process ``process_id`` as it is now, or None."""
        ...

    def pinned(self, process_id: str, run_version: str) -> ProcessDefinition | None:
        """The version a job recorded (``Job.process_version``), even if replaced since."""
        ...

    def all(self) -> Sequence[ProcessDefinition]:
        """Every deployed process, ordered by id."""
        ...


class ProcessRegistry:
    """The built-in process definitions (ordered, read-only) and the deployed ones."""

    def __init__(
        self, definitions: Iterable[ProcessDefinition], deployed: DeployedSource | None = None
    ) -> None:
        self._by_id = {d.id: d for d in definitions}
        self._deployed = deployed

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

    def with_deployed(self, deployed: DeployedSource) -> ProcessRegistry:
        """This registry's built-in processes plus those of ``deployed``."""
        return ProcessRegistry(self._by_id.values(), deployed)

    def is_builtin(self, process_id: str) -> bool:
        """True for a process shipped with the gateway (never replaced or undeployed)."""
        return process_id in self._by_id

    def get(self, process_id: str) -> ProcessDefinition:
        found = self._by_id.get(process_id)
        if found is None and self._deployed is not None:
            found = self._deployed.current(process_id)
        if found is None:
            raise UnknownProcess(process_id)
        return found

    def for_job(self, process_id: str, run_version: str) -> ProcessDefinition:
        """The definition a job runs: a deployed one at the version the job recorded."""
        found = self._by_id.get(process_id)
        if found is None and self._deployed is not None:
            found = self._deployed.pinned(process_id, run_version)
        if found is None:
            raise UnknownProcess(process_id)
        return found

    def __contains__(self, process_id: object) -> bool:
        if not isinstance(process_id, str):
            return False
        if process_id in self._by_id:
            return True
        return self._deployed is not None and self._deployed.current(process_id) is not None

    def __iter__(self) -> Iterator[ProcessDefinition]:
        yield from self._by_id.values()
        if self._deployed is not None:
            yield from (d for d in self._deployed.all() if d.id not in self._by_id)

    def __len__(self) -> int:
        return sum(1 for _ in self)
