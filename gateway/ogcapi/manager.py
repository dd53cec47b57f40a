"""pygeoapi process manager plugin backed by the gateway's job service.

pygeoapi loads its manager from ``server.manager`` in the config
(``name: gateway.ogcapi.manager.GatewayManager``) and uses it to list processes
(``manager.processes``, ``get_processor``) and, in its own handlers, to run and
read jobs. This class maps that interface onto :class:`gateway.jobs.service.JobService`
so there is one job store and one set of rules whichever door a call uses.

Two limits of pygeoapi's manager interface, and how they are handled:

* it carries no caller identity -- the caller is taken from the current Flask
  request (see :mod:`gateway.http.security`); outside a request the manager
  sees no jobs and refuses to create any;
* it lets callers write job rows (``add_job``/``update_job``) -- here only the
  job service creates jobs and only the worker changes their state, so those
  refuse loudly instead of silently diverging from the store.

Our own HTTP handlers call the job service directly (they need the Principal,
typed errors and conformant responses); the manager exists so pygeoapi's
machinery (OpenAPI generation, process descriptions, any handler reused later)
sees the same jobs.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from pygeoapi.process.base import (
    JobNotFoundError,
    JobResultNotFoundError,
    UnknownProcessError,
)
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import JobStatus, RequestedProcessExecutionMode

from gateway.errors import NoSuchJob, NoSuchProcess, ResultNotReady
from gateway.http.security import request_principal
from gateway.identity.auth import Principal
from gateway.jobs.records import Job, JobQuery
from gateway.jobs.service import ogc_states
from gateway.ogcapi.plugin_context import TOKEN_KEY, processor_entry, services_for
from gateway.paging import DEFAULT_JOB_LIMIT, MAX_PAGE_LIMIT

log = logging.getLogger(__name__)


def pygeoapi_job(job: Job) -> dict[str, Any]:
    """A job row in the dict shape pygeoapi's handlers and templates expect."""

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "type": "process",
        "identifier": job.id,
        "process_id": job.process_id,
        "status": job.state.ogc,
        "message": job.message or "",
        "progress": job.progress if job.progress is not None else 0,
        "parameters": None,
        "created": iso(job.created),
        "started": iso(job.started),
        "finished": iso(job.finished),
        "updated": iso(job.updated),
        "location": None,
        "mimetype": "application/json",
    }


class GatewayManager(BaseManager):
    """Process manager whose jobs live in the gateway's job store."""

    def __init__(self, manager_def: dict[str, Any]) -> None:
        self._builtin: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._services = services_for(manager_def)
        self._token = manager_def.get(TOKEN_KEY)
        super().__init__(manager_def)
        # (BaseManager fills the mapping it got from the getter, a copy: set it here)
        self._builtin = OrderedDict(
            (key, dict(conf)) for key, conf in manager_def.get("processes", {}).items()
        )
        self.is_async = True
        self.supports_subscribing = True

    @property
    def processes(self) -> OrderedDict[str, dict[str, Any]]:
        """The configured (built-in) processes, then the deployed ones, read from the database.

        pygeoapi lists and describes processes from this mapping; deployed
        processes (OGC API - Processes Part 2) come and go while the app runs.
        """
        found = OrderedDict(self._builtin)
        registry = self._services.registry
        for definition in registry:
            if definition.id not in found and not registry.is_builtin(definition.id):
                found[definition.id] = {"processor": processor_entry(definition.id, self._token)}
        return found

    @processes.setter
    def processes(self, value: OrderedDict[str, dict[str, Any]]) -> None:
        self._builtin = value

    # -- identity -----------------------------------------------------------

    def _principal(self) -> Principal | None:
        return request_principal()

    # -- reads --------------------------------------------------------------

    def get_jobs(
        self,
        status: JobStatus | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """The caller's jobs, newest first; offset is emulated over the keyset pages."""
        principal = self._principal()
        if principal is None:
            return {"jobs": [], "numberMatched": 0}
        states = ogc_states([status.value] if isinstance(status, JobStatus) else [])
        wanted = max(1, min(limit or DEFAULT_JOB_LIMIT, MAX_PAGE_LIMIT))
        skip = max(0, offset or 0)
        jobs: list[Job] = []
        cursor: str | None = None
        while True:
            query = JobQuery(states=states, cursor=cursor, limit=min(MAX_PAGE_LIMIT, wanted + skip))
            page = self._services.jobs.list(principal, query)
            jobs.extend(page.jobs)
            cursor = page.next_cursor
            if cursor is None or len(jobs) >= wanted + skip:
                break
        selected = jobs[skip : skip + wanted]
        matched = len(jobs) if cursor is None else len(jobs) + 1
        return {"jobs": [pygeoapi_job(j) for j in selected], "numberMatched": matched}

    def get_job(self, job_id: str) -> dict[str, Any]:
        principal = self._principal()
        if principal is None:
            raise JobNotFoundError(job_id)
        try:
            return pygeoapi_job(self._services.jobs.get(principal, job_id))
        except NoSuchJob as exc:
            raise JobNotFoundError(exc.detail) from None

    def get_job_result(self, job_id: str) -> tuple[str, Any]:
        principal = self._principal()
        if principal is None:
            raise JobNotFoundError(job_id)
        try:
            job = self._services.jobs.results(principal, job_id)
        except NoSuchJob as exc:
            raise JobNotFoundError(exc.detail) from None
        except ResultNotReady as exc:
            raise JobResultNotFoundError(exc.detail) from None
        return "application/json", job.results or {}

    # -- writes -------------------------------------------------------------

    def add_job(self, job_metadata: dict[str, Any]) -> str:
        raise NotImplementedError(
            "jobs are created only by the job service (execute_process / JobService.submit)"
        )

    def update_job(self, job_id: str, update_dict: dict[str, Any]) -> bool:
        raise NotImplementedError("job state is changed only by the gateway worker")

    def delete_job(self, job_id: str) -> bool:
        """Dismiss (cancel) the job; pygeoapi's 'delete' is OGC's dismiss."""
        principal = self._principal()
        if principal is None:
            raise JobNotFoundError(job_id)
        try:
            self._services.jobs.dismiss(principal, job_id)
        except NoSuchJob as exc:
            raise JobNotFoundError(exc.detail) from None
        return True

    def execute_process(
        self,
        process_id: str,
        data_dict: dict[str, Any],
        execution_mode: RequestedProcessExecutionMode | None = None,
        requested_outputs: dict[str, Any] | None = None,
        subscriber: Any = None,
        requested_response: str | None = "raw",
    ) -> tuple[str, str, Any, JobStatus, dict[str, str] | None]:
        """Store a new job through the job service; it always runs asynchronously.

        Validation and admission errors are the job service's
        :class:`~gateway.errors.GatewayError` subclasses, raised unchanged.
        """
        principal = self._principal()
        if principal is None:
            raise PermissionError("no authenticated caller: jobs need a requesting user")
        body: dict[str, Any] = {"inputs": data_dict, "response": requested_response or "raw"}
        if requested_outputs is not None:
            body["outputs"] = requested_outputs
        if subscriber is not None:
            body["subscriber"] = {
                key: value
                for key, value in (
                    ("successUri", getattr(subscriber, "success_uri", None)),
                    ("inProgressUri", getattr(subscriber, "in_progress_uri", None)),
                    ("failedUri", getattr(subscriber, "failed_uri", None)),
                )
                if value
            }
        try:
            job = self._services.jobs.submit(principal, process_id, body)
        except NoSuchProcess as exc:
            raise UnknownProcessError(exc.detail) from None
        headers = None
        if execution_mode == RequestedProcessExecutionMode.respond_async:
            headers = {"Preference-Applied": RequestedProcessExecutionMode.respond_async.value}
        return job.id, "application/json", None, JobStatus.accepted, headers

    def __repr__(self) -> str:
        return "<GatewayManager>"
