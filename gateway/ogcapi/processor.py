"""The generic pygeoapi processor for every gateway process.

pygeoapi wants one ``BaseProcessor`` per process to read its metadata (process
list, description, OpenAPI document). Our processes are described by
:class:`processes.definition.ProcessDefinition`, so one class serves them all:
the ``process_id`` in the processor definition selects the description.

Processes run as Slurm jobs created by the job service and driven by the
worker; running one inside the web process would bypass identity, quotas and
the durable job store, so :meth:`HpcProcessor.execute` always refuses.
"""

from __future__ import annotations

from typing import Any

from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError

from gateway.ogcapi.plugin_context import services_for


class HpcProcessor(BaseProcessor):
    """Metadata-only processor: the OGC description of one registered process."""

    def __init__(self, processor_def: dict[str, Any]) -> None:
        process_id = processor_def.get("process_id")
        if not isinstance(process_id, str):
            raise ValueError("HpcProcessor needs 'process_id' in its processor definition")
        definition = services_for(processor_def).jobs.process(process_id)
        # A fresh dict per instance: pygeoapi's OpenAPI generator mutates metadata.
        metadata = definition.ogc_description()
        if definition.example is not None:
            metadata["example"] = definition.example
        super().__init__(processor_def, metadata)
        self.supports_outputs = True

    def execute(self, data: dict[str, Any], outputs: dict[str, Any] | None = None) -> Any:
        """Never runs anything here: jobs go through the job service to Slurm."""
        msg = (
            f"process '{self.metadata.get('id')}' runs as a batch job on the HPC cluster; "
            "submit it with POST /processes/{id}/execution (the job service), "
            "it is never executed inside the web process"
        )
        raise ProcessorExecuteError(msg, user_msg=msg)

    def __repr__(self) -> str:
        return f"<HpcProcessor {self.metadata.get('id')}>"
