"""The worker loop: dispatch, monitor, finalise and clean up, one short cycle at a time.

:meth:`Worker.run_once` runs the job stages in turn (tests, one-shot runs):
dispatch, monitor, finalise, clean up. :meth:`Worker.run_forever` runs them in
three threads, none per job: the job loop (claims, whose submissions go to the
dispatcher's small fixed thread pool, finalisation and clean-up), the monitor
(scheduler polls), and the stages that do not move jobs through their states
(usage reads from Slurm accounting, subscriber callbacks, trigger feeds); the
health prober, which only starts its own probe thread, is started from every
turn of the job loop. Neither a slurmdb query of ~0.4 s nor a scheduler poll
holds up the turns that submit new jobs. State lives in the database only,
so any number of workers -- threads, processes or hosts -- can run side by
side, and a restarted worker carries on where it stopped. The stages are put
together by the composition root, :func:`gateway.app.build_worker`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.jobs.records import JobUpdate
from gateway.jobs.service import JobService
from gateway.jobs.store import JobStore
from gateway.publication.publisher import PublicationError, Publisher
from gateway.sites import Sites
from gateway.workflow.dispatcher import Dispatcher
from gateway.workflow.finaliser import Finaliser
from gateway.workflow.monitor import Monitor
from hpc_adapters.base import HpcIdentity
from hpc_adapters.errors import HpcError

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Cleaner:
    """Settles what dismiss left owed: scheduler cancels, workspace and published outputs
    removal (a job dismissed while its outputs were being published)."""

    def __init__(
        self,
        *,
        store: JobStore,
        jobs: JobService,
        sites: Sites,
        publisher: Publisher | None = None,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.sites = sites
        self.publisher = publisher

    def run_once(self) -> int:
        owed = self.store.pending_cancels()
        for job in owed:
            if job.cancel_pending and not self.jobs.cancel_now(job):
                continue
            if job.workspace:
                files = self.sites.adapter(job.site).files(HpcIdentity(job.owner.hpc_login))
                try:
                    files.remove_tree(job.workspace)
                except HpcError as exc:
                    log.warning("job %s: workspace clean-up deferred: %s", job.id, exc.detail)
                    continue
            # only a job whose Slurm job completed can have had its outputs published
            if job.scheduler_state == "COMPLETED" and self.publisher is not None:
                try:
                    self.publisher.remove(job)
                except PublicationError as exc:
                    log.warning("job %s: outputs removal deferred: %s", job.id, exc.detail)
                    continue
            self.store.update(job.id, JobUpdate(cleanup_pending=False))
        return len(owed)


@dataclass
class Worker:
    """One worker: every stage of the job workflow, run in short cycles."""

    dispatcher: Dispatcher
    monitor: Monitor
    finaliser: Finaliser
    cleaner: Cleaner
    #: Shortest time between scheduler polls; longer when a poll is slow (see run_forever).
    interval: float
    #: Between full cycles, new and ended jobs are picked up this often (database only).
    fast_interval: float = 0.05
    #: Further stages: after the others in :meth:`run_once`; in their own thread, once
    #: per ``interval``, in :meth:`run_forever` (e.g. accounting usage reads).
    extra_stages: list[Callable[[], int]] = field(default_factory=list)
    #: Stages that never block -- they only start background work on their own schedule
    #: (the health prober's rounds): run on every turn of the loop, fast or full, so
    #: neither a slow scheduler poll (a site that is down answers late, and full cycles
    #: then space out) nor a slow extra stage delays them.
    starters: list[Callable[[], int]] = field(default_factory=list)
    #: Nice value :meth:`run_forever` runs at (0: unchanged); see :func:`lower_priority`.
    nice: int = 0
    #: Ended jobs finalised per turn of :meth:`run_forever`. Each takes tens of
    #: milliseconds (outputs read and published); the dispatcher refills its submission
    #: pool only between turns, so a long run of finalisations would hold up submissions.
    finalise_per_turn: int = 4

    def run_once(self, wait: bool = True) -> int:
        """One cycle of every stage; returns the amount of work seen.

        With ``wait`` the jobs claimed this cycle are submitted when it returns;
        without, their submissions may still be under way in the dispatcher's pool.
        """
        work = self._run_job_stages(wait) + self._run_starters()
        for stage in self.extra_stages:
            work += stage()
        return work

    def _run_starters(self) -> int:
        return sum(start() for start in self.starters)

    def _run_job_stages(self, wait: bool) -> int:
        work = self.dispatcher.run_once(wait=wait)
        work += self.monitor.run_once()
        work += self.finaliser.run_once()
        return work + self.cleaner.run_once()

    def run_fast(self) -> int:
        """Between scheduler polls: claim new jobs, poll a site at once where a job wrote
        its end record, finalise ended jobs (keeps the gateway's added latency small;
        no scheduler call unless an end record is there)."""
        work = self.dispatcher.run_once(wait=False)
        work += self.monitor.run_ended()
        return work + self.finaliser.run_once(self.finalise_per_turn)

    def next_poll_delay(self) -> float:
        """Seconds from the start of a full cycle to the next: ``interval``, or twice the
        last scheduler poll when that is longer (with thousands of active jobs a poll
        takes a while; the monitor then uses at most about half of the worker's time)."""
        return max(self.interval, 2 * self.monitor.last_cycle_seconds)

    def run_forever(self, stop: threading.Event) -> None:
        """Three threads, none per job, until ``stop``: the job loop (claims and
        submissions, finalisation, clean-up), the monitor (:meth:`_run_monitor`) and the
        side stages (:meth:`_run_side_stages`).

        A scheduler poll takes hundreds of milliseconds with hundreds of jobs in
        slurmctld's list; in its own thread it no longer holds up the refills of the
        submission pool. A turn of the job loop that found work is followed by the next
        at once (a burst drains at the pace the database and the scheduler allow); an
        idle one waits ``fast_interval``.
        """
        lower_priority(self.nice)
        log.info("worker started (cycle %.2fs, fast %.2fs)", self.interval, self.fast_interval)
        threads = [
            threading.Thread(target=run, args=(stop,), name=name, daemon=True)
            for run, name in (
                (self._run_monitor, "hpcgw-worker-monitor"),
                (self._run_side_stages, "hpcgw-worker-side"),
            )
        ]
        for thread in threads:
            thread.start()
        next_clean = 0.0
        try:
            while not stop.is_set():
                work = 0
                try:
                    work = self.dispatcher.run_once(wait=False)
                    work += self.finaliser.run_once(self.finalise_per_turn)
                    if time.monotonic() >= next_clean:
                        work += self.cleaner.run_once()
                        next_clean = time.monotonic() + self.interval
                    self._run_starters()
                except Exception as exc:  # the loop must outlive any one bad cycle
                    log.exception("worker cycle failed (%s); continuing", type(exc).__name__)
                stop.wait(0.0 if work else self.fast_interval)
        finally:
            self.dispatcher.close()
            for thread in threads:
                thread.join(timeout=30)
        log.info("worker stopped")

    def _run_monitor(self, stop: threading.Event) -> None:
        """Scheduler polls until ``stop``: a full one every :meth:`next_poll_delay`, and
        between them one at once for a site where a job wrote its end record."""
        next_full = 0.0
        while not stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_full:
                    self.monitor.run_once()
                    next_full = now + self.next_poll_delay()
                else:
                    self.monitor.run_ended()
            except Exception as exc:  # the loop must outlive any one bad cycle
                log.exception("monitor cycle failed (%s); continuing", type(exc).__name__)
            stop.wait(max(0.0, min(self.fast_interval, next_full - time.monotonic())))

    def _run_side_stages(self, stop: threading.Event) -> None:
        """``extra_stages`` once per ``interval`` until ``stop``, each failure logged."""
        while not stop.is_set():
            for stage in self.extra_stages:
                try:
                    stage()
                except Exception as exc:  # the loop must outlive any one bad cycle
                    log.exception("worker stage failed (%s); continuing", type(exc).__name__)
            stop.wait(self.interval)


def lower_priority(nice: int) -> None:
    """Run the calling thread, and the threads it starts later, at nice value ``nice``.

    On Linux a nice value belongs to a thread (and is inherited by the threads it
    creates), so a worker thread inside an API process slows only itself; under
    CPU contention the API's requests then go first. (On the shared 2-core dev
    box, nice 10 made no difference to phase 2 of the benchmark beyond its noise,
    hence off by default.) Never raises the priority; a refusal is logged.
    """
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:
        log.warning("worker: cannot lower its CPU priority to nice %d: %s", nice, exc)
