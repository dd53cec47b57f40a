"""Failover: an accepted job whose site went down is routed again before it is submitted.

The dispatcher calls :class:`Rerouter` for each job it claims in state
``accepted`` (it holds the job's lease, so nothing else moves the job
meanwhile). When the site's latest health probe (or the router's cached reading of
its queue) says it is down, the router
decides again for the job's owner, without that site; the job then carries
its new site and a reason that says so (``re-routed from mesocentre (down:
...): queue: hpcgw 0 min``), in its status, its ``extra.routing`` record and
the audit log. A job whose client asked for the site, or that no other site
can take now, waits (its message says why) and is looked at again later.

Jobs already handed to Slurm are never moved: their site's monitor follows
them again when it answers (nothing is submitted twice).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from gateway.errors import GatewayError
from gateway.identity.auth import Principal
from gateway.jobs.execute_request import ExecuteRequest
from gateway.jobs.records import Job, JobUpdate
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.routing.health import HealthView
from gateway.routing.readings import Down
from gateway.routing.router import Router
from processes.registry import ProcessRegistry, UnknownProcess

log = logging.getLogger(__name__)
audit = logging.getLogger("gateway.audit")

#: Seconds a job that cannot be re-routed now waits before it is looked at again.
WAIT_SECONDS = 15.0


class Rerouter:
    """``reroute(job)``: the job to dispatch now (moved if its site is down), or None to wait."""

    def __init__(
        self, store: JobStore, registry: ProcessRegistry, router: Router, health: HealthView
    ) -> None:
        self.store = store
        self.registry = registry
        self.router = router
        self.health = health

    def __call__(self, job: Job) -> Job | None:
        if job.state is not JobState.ACCEPTED:
            return job
        detail = self._down(job.site)
        if detail is None:
            return job
        why = f"{job.site} is down ({detail})"
        routing = job.extra.get("routing")
        if isinstance(routing, dict) and routing.get("requested"):
            self._wait(job, f"{why}; the job asked for it and waits")
            return None
        try:
            process = self.registry.for_job(job.process_id, job.process_version)
            routed = self.router.route(
                _owner(job), process, _request(job), purpose="reroute", exclude=job.site
            )
        except (GatewayError, UnknownProcess) as exc:
            detail = getattr(exc, "detail", str(exc))
            self._wait(job, f"{why} and no other site can take it now: {detail}")
            return None
        reason = f"re-routed from {job.site} (down: {detail}): {routed.decision.reason}"
        record = {**routed.record(), "reason": reason, "reroutedFrom": job.site}
        self.store.update(
            job.id,
            JobUpdate(
                site=routed.site,
                message=f"Job accepted for {routed.site}: {reason}",
                extra_keys={"routing": record},
            ),
        )
        audit.info(
            "job %s of %s (%s) re-routed from %s to %s: %s",
            job.id,
            job.owner.username,
            job.process_id,
            job.site,
            routed.site,
            reason,
        )
        return replace(job, site=routed.site, extra={**job.extra, "routing": record})

    def _down(self, site: str) -> str | None:
        """Why ``site`` is down now, or None: its latest probe, else the router's cached
        reading of its queue (the same one every routing decision uses, so a dispatcher
        that claims a job before the first probe still sees the outage)."""
        probe = self.health.down(site)
        if probe is not None:
            return probe.detail or "probe failed"
        reading = self.router.readings.load(site)
        return reading.detail if isinstance(reading, Down) else None

    def _wait(self, job: Job, message: str) -> None:
        log.info("job %s waits: %s", job.id, message)
        self.store.release(job.id, JobUpdate(message=message), retry_in=WAIT_SECONDS)


def _owner(job: Job) -> Principal:
    owner = job.owner
    return Principal(sub=owner.sub, username=owner.username, hpc_login=owner.hpc_login)


def _request(job: Job) -> ExecuteRequest:
    return ExecuteRequest(
        inputs=job.inputs,
        outputs=job.outputs_request or {},
        response=job.response,
        subscriber=job.subscriber,
    )
