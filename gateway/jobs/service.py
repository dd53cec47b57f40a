"""The job service: what every HTTP surface (OGC API, WPS) does with jobs.

It owns the rules that must hold whatever the protocol: inputs validated
before anything is stored, the job row committed before the client is
answered, a user sees only their own jobs (another user's job is "not found",
never "forbidden", so ids cannot be probed), dismiss really cancels the
scheduler job, and dismissing a finished job removes it from every API (its
row stays, state ``removed``, for accounting). It never talks HTTP; it raises
:mod:`gateway.errors`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from gateway.errors import (
    BadRequest,
    Forbidden,
    JobFailed,
    NoSuchJob,
    NoSuchProcess,
    ResultNotReady,
)
from gateway.identity.auth import Principal
from gateway.jobs.execute_request import ExecuteRequest, parse_execute_request
from gateway.jobs.records import (
    UNSET,
    Job,
    JobPage,
    JobQuery,
    JobUpdate,
    NewJob,
    Quote,
    SummaryPage,
)
from gateway.jobs.states import OGC_STATUS_TO_STATES, VISIBLE_STATES, JobState
from gateway.jobs.store import JobNotFound, JobStore
from gateway.logs import job_context
from gateway.paging import MAX_PAGE_LIMIT
from gateway.routing.router import Router
from gateway.sites import Sites
from hpc_adapters.base import HpcIdentity
from hpc_adapters.errors import InvalidJobError, TransientHpcError
from processes.definition import ProcessDefinition
from processes.registry import ProcessRegistry, UnknownProcess

log = logging.getLogger(__name__)
#: One line per routing decision (who, what, where, why): the audit trail of routing.
audit = logging.getLogger("gateway.audit")

#: Called with (principal, process, request) before a job is stored; may raise
#: (e.g. QuotaExceeded) and may return a quote to record with the job.
#: A check made before a job is stored; raises to refuse it, may return its quote.
AdmissionHook = Callable[[Principal, ProcessDefinition, ExecuteRequest], Quote | None]
#: Completes a validated request before it is quoted (the tile count from the image size).
RequestSizer = Callable[[ProcessDefinition, ExecuteRequest], ExecuteRequest]


_PageT = TypeVar("_PageT", JobPage, SummaryPage)


def ogc_states(statuses: Iterable[str]) -> frozenset[JobState]:
    """The job states behind OGC ``statuses`` (job-list ``status`` filter); empty: all.

    An unknown status is a BadRequest naming the valid ones.
    """
    states: set[JobState] = set()
    for status in statuses:
        if status not in OGC_STATUS_TO_STATES:
            raise BadRequest(
                f"unknown status '{status}'; use one of {sorted(OGC_STATUS_TO_STATES)}"
            )
        states |= OGC_STATUS_TO_STATES[status]
    return frozenset(states)


class JobService:
    """Submit, read, list, wait for, fetch results of and dismiss jobs."""

    def __init__(
        self,
        store: JobStore,
        registry: ProcessRegistry,
        sites: Sites,
        default_site: str,
        admission: Sequence[AdmissionHook] = (),
        router: Router | None = None,
        sizer: RequestSizer | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.sites = sites
        self.default_site = default_site
        self._admission = list(admission)
        #: Chooses each job's site (None: every job goes to ``default_site``).
        self.router = router
        #: Fills in a tiled process's tile count from its image size (None: never).
        self.sizer = sizer

    # -- processes ------------------------------------------------------------

    def process(self, process_id: str) -> ProcessDefinition:
        try:
            return self.registry.get(process_id)
        except UnknownProcess:
            raise NoSuchProcess(f"process '{process_id}' does not exist") from None

    # -- submission -----------------------------------------------------------

    def parse_request(self, process: ProcessDefinition, body: Any) -> ExecuteRequest:
        """The validated execute request, its tile count derived from the image size
        when the process sizes its tiles and the client gave none (quote and job agree)."""
        request = parse_execute_request(process, body)
        return self.sizer(process, request) if self.sizer is not None else request

    def submit(
        self,
        principal: Principal,
        process_id: str,
        body: Any,
        *,
        interface: str = "ogcapi",
        job_id: str | None = None,
        origin: dict[str, Any] | None = None,
    ) -> Job:
        """Validate, route and store a new job (state ``accepted``); the worker takes it on.

        The admission hooks run first (e.g. reference checks), then the router
        chooses the site (and quotes the run and checks the budgets there):
        nothing is stored when either refuses. A trigger passes the ``job_id``
        derived from its event (so a retried activation cannot make a second
        job) and its ``origin`` (trigger and event, kept in the job's record).
        """
        process = self.process(process_id)
        if not principal.hpc_login:
            raise Forbidden(
                f"user '{principal.username}' is not provisioned on the HPC cluster; "
                "ask the HPC centre to synchronise your account"
            )
        request = self.parse_request(process, body)
        quote: Quote | None = None
        for hook in self._admission:
            quote = hook(principal, process, request) or quote
        site, routing = self.default_site, None
        if self.router is not None:
            routed = self.router.route(principal, process, request)
            site, routing, quote = routed.site, routed.record(), routed.quote or quote
        elif request.site is not None and request.site != self.default_site:
            raise BadRequest(f"site '{request.site}' cannot take this job: routing is off")
        new = NewJob(
            id=job_id or str(uuid.uuid4()),
            process_id=process.id,
            process_version=process.run_version,
            owner=principal.owner(),
            site=site,
            inputs=request.inputs,
            outputs_request=request.outputs or None,
            response=request.results_response,
            interface=interface,
            quote=quote,
            subscriber=request.subscriber,
            forward_token=self._forwardable(principal, site),
            submitted_via=principal.via_client,
            routing=routing,
            origin=origin,
        )
        job = self.store.create(new)
        with job_context(job.id, principal.username):
            log.info(
                "job %s accepted: process=%s user=%s via=%s",
                job.id,
                process.id,
                principal.username,
                principal.via_client or "-",
            )
            if routing is not None:
                audit.info(
                    "job %s of %s (%s) routed to %s [%s]: %s",
                    job.id,
                    principal.username,
                    process.id,
                    site,
                    routing["rule"],
                    routing["reason"],
                )
        return job

    def _forwardable(self, principal: Principal, site_name: str) -> str | None:
        """The caller's token, kept for submission only when the site forwards tokens."""
        site = self.sites.settings(site_name)
        if site.adapter == "slurmrest" and site.slurmrest.credentials == "forward":
            return principal.token
        return None

    # -- reads ----------------------------------------------------------------

    def get(self, principal: Principal, job_id: str) -> Job:
        """A job visible to ``principal``; others' jobs and removed ones are reported as absent."""
        if not _plausible_id(job_id):
            raise NoSuchJob(f"job '{job_id}' does not exist")
        try:
            job = self.store.get(job_id, owner_sub=principal.visibility)
        except JobNotFound:
            raise NoSuchJob(f"job '{job_id}' does not exist") from None
        if not job.state.visible:
            raise NoSuchJob(f"job '{job_id}' was dismissed and removed")
        return job

    def list(self, principal: Principal, query: JobQuery | None = None) -> JobPage:
        """Whole jobs visible to ``principal``, newest first; filters as :meth:`list_summaries`."""
        return self._listing(self.store.page, principal, query or JobQuery())

    def list_summaries(self, principal: Principal, query: JobQuery | None = None) -> SummaryPage:
        """The job list of ``principal`` (what ``GET /jobs`` shows), newest first.

        Only their own jobs (admins: everyone's), never removed ones, whatever
        ``query.owner_sub`` says; the other filters of ``query`` narrow it (build
        its ``states`` from OGC statuses with :func:`ogc_states`). A bad limit or
        cursor is a BadRequest.
        """
        return self._listing(self.store.summaries, principal, query or JobQuery())

    def _listing(
        self, read: Callable[[JobQuery], _PageT], principal: Principal, query: JobQuery
    ) -> _PageT:
        if not 1 <= query.limit <= MAX_PAGE_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE_LIMIT}")
        visible = (query.states or VISIBLE_STATES) & VISIBLE_STATES
        if not visible:
            raise BadRequest("removed jobs are never listed")
        try:
            return read(replace(query, owner_sub=principal.visibility, states=visible))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    def results(self, principal: Principal, job_id: str) -> Job:
        """The job, if its results can be served; otherwise the right OGC error."""
        job = self.get(principal, job_id)
        if job.state is JobState.SUCCESSFUL:
            return job
        if job.state is JobState.FAILED:
            detail = (job.error or {}).get("detail") or job.message or "the job failed"
            raise JobFailed(detail)
        if job.state is JobState.DISMISSED:
            raise NoSuchJob(f"job '{job_id}' was dismissed; it has no results")
        raise ResultNotReady(f"job '{job_id}' is {job.state.ogc}; results are not ready yet")

    def wait(self, job_id: str, timeout: float, interval: float = 0.1) -> Job:
        """Poll the store until the job is final or ``timeout`` passes (sync execution)."""
        deadline = time.monotonic() + timeout
        job = self.store.get(job_id)
        while not job.final and time.monotonic() < deadline:
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)
            job = self.store.get(job_id)
        return job

    # -- dismiss --------------------------------------------------------------

    def dismiss(self, principal: Principal, job_id: str) -> Job:
        """Dismiss a job: an active one is cancelled, a finished one removed.

        Active: mark it dismissed, cancel its Slurm job now, clean its workspace
        later; if the scheduler cannot be reached the cancel stays owed
        (``cancel_pending``) and the worker retries it. Finished (successful,
        failed, or dismissed before): see :meth:`_remove`. Either way the job
        returned is the one to report, OGC status ``dismissed``.
        """
        job = self.get(principal, job_id)
        if job.final:
            return self._remove(job)
        has_scheduler_job = job.scheduler_job_id is not None
        moved = self.store.transition(
            job.id,
            JobState.DISMISSED,
            JobUpdate(
                message="Job dismissed by the user",
                cancel_pending=has_scheduler_job,
                cleanup_pending=True,
            ),
        )
        if not moved:  # it moved on meanwhile; if it finished, dismissing it removes it
            current = self.store.get(job.id)
            finished = current.state in (JobState.SUCCESSFUL, JobState.FAILED)
            return self._remove(current) if finished else current
        if has_scheduler_job:
            self.cancel_now(self.store.get(job.id), principal.token)
        return self.store.get(job.id)

    def _remove(self, job: Job) -> Job:
        """Remove a finished job (18-062 /req/dismiss/job-dismiss-status): state REMOVED.

        Afterwards no API shows it (status, results, outputs, lists: 404 / absent)
        and the worker's Cleaner deletes its workspace and published outputs
        (``cleanup_pending``). The row stays: ``finished`` is kept as it was
        (budgets and the usage sweep key on it) and the usage record, queued or
        written, is untouched, so its core-hours are still reported. Nothing is
        cancelled: its Slurm job is over (a cancel still owed from an earlier
        dismiss stays owed). A concurrent removal is not an error.
        """
        update = JobUpdate(
            message="Job dismissed by the user; its results and files were removed",
            cleanup_pending=True,
            # keeps the time it really finished (a final target would set it to now)
            finished=job.finished if job.finished is not None else UNSET,
        )
        if self.store.transition(job.id, JobState.REMOVED, update):
            log.info("job %s removed (was %s)", job.id, job.state.value)
        return self.store.get(job.id)

    def cancel_now(self, job: Job, token: str | None = None) -> bool:
        """Try the scheduler cancel owed for ``job``; True when nothing is owed any more.

        ``token`` is the owner's bearer token when the cancel happens in their request
        (used by sites in forward mode); the worker's retries go without it.
        """
        if job.scheduler_job_id is None:
            self.store.update(job.id, JobUpdate(cancel_pending=False))
            return True
        adapter = self.sites.adapter(job.site)
        try:
            adapter.cancel(
                job.scheduler_job_id, HpcIdentity(login=job.owner.hpc_login, token=token)
            )
        except InvalidJobError:
            log.info("job %s: scheduler no longer knows %s", job.id, job.scheduler_job_id)
        except TransientHpcError as exc:
            log.warning("job %s: cancel deferred, site unreachable: %s", job.id, exc.detail)
            return False
        self.store.update(job.id, JobUpdate(cancel_pending=False))
        return True


def _plausible_id(job_id: str) -> bool:
    try:
        uuid.UUID(job_id)
    except ValueError:
        return False
    return True
