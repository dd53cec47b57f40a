"""The worker loop: dispatch, monitor, finalise and clean up, one short cycle at a time.

A single thread runs every stage in turn (no thread per job). State lives in
the database only, so any number of workers -- threads, processes or hosts --
can run side by side, and a restarted worker carries on where it stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from gateway.app import Services
from gateway.jobs.store import JobStore
from gateway.service import JobService
from gateway.sites import Sites
from gateway.staging import Stager
from gateway.workflow.dispatcher import Dispatcher
from gateway.workflow.finaliser import Finaliser
from gateway.workflow.monitor import Monitor
from gateway.workflow.publication import Publisher
from gateway.workflow.retry import RetryPolicy
from hpc_adapters.base import HpcIdentity
from hpc_adapters.errors import HpcError

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Cleaner:
    """Settles what dismiss left owed: scheduler cancels and workspace removal."""

    def __init__(self, store: JobStore, jobs: JobService, sites: Sites) -> None:
        self.store = store
        self.jobs = jobs
        self.sites = sites

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
            self.store.update(job.id, cleanup_pending=False)
        return len(owed)


@dataclass
class Worker:
    """One worker: every stage of the job workflow, run in short cycles."""

    dispatcher: Dispatcher
    monitor: Monitor
    finaliser: Finaliser
    cleaner: Cleaner
    interval: float

    @classmethod
    def from_services(cls, services: Services, worker_id: str | None = None) -> Worker:
        s = services.settings
        wid = worker_id or new_worker_id()
        w = s.worker
        retry = RetryPolicy(
            services.store, w.max_attempts, w.backoff_base_seconds, w.backoff_max_seconds
        )
        publisher = Publisher(services.publication_root, s.server.base_url)
        return cls(
            dispatcher=Dispatcher(
                services.store,
                services.registry,
                services.sites,
                Stager(),
                retry,
                wid,
                w.dispatch_batch,
                w.lease_seconds,
            ),
            monitor=Monitor(
                services.store, services.sites, wid, max(5.0, 5 * w.poll_interval_seconds)
            ),
            finaliser=Finaliser(
                services.store,
                services.registry,
                services.sites,
                publisher,
                retry,
                wid,
                w.max_manifest_bytes,
                w.lease_seconds,
            ),
            cleaner=Cleaner(services.store, services.jobs, services.sites),
            interval=w.poll_interval_seconds,
        )

    def run_once(self) -> int:
        """One cycle of every stage; returns the amount of work seen."""
        work = self.dispatcher.run_once()
        work += self.monitor.run_once()
        work += self.finaliser.run_once()
        work += self.cleaner.run_once()
        return work

    def run_forever(self, stop: threading.Event) -> None:
        log.info("worker started (cycle %.2fs)", self.interval)
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:
                log.exception("worker cycle failed; continuing")
            stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        log.info("worker stopped")


def start_background_worker(services: Services) -> tuple[threading.Thread, threading.Event]:
    """Run a worker in a daemon thread (tests and single-process demos)."""
    stop = threading.Event()
    worker = Worker.from_services(services)
    thread = threading.Thread(
        target=worker.run_forever, args=(stop,), name="hpcgw-worker", daemon=True
    )
    thread.start()
    return thread, stop
