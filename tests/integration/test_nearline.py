"""Nearline inputs: a source that answers "accepted, come back later" keeps the job waiting
in the gateway -- never in Slurm -- until the input is online.

The tape-like source is :class:`tests.trigger_fixtures.TapeServer` (no real
tape archive is reachable here): ``/tape/<name>`` answers 202 with
``Retry-After`` a few times, ``/busy/<name>`` 503 with ``Retry-After``, then
the file. The cluster is the real dev cluster: ``squeue``/``sacct`` by the job's
Slurm name show that no Slurm job exists while the job waits.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import build_services
from gateway.identity.auth import Principal
from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.batch import job_name
from tests.conftest import make_settings, sacct_field, worker_thread
from tests.polling import eventually
from tests.trigger_fixtures import TapeServer, serving

pytestmark = pytest.mark.slurm

ALICE = Principal(sub="sub-alice", username="alice", hpc_login="alice", roles=frozenset())
NOTE = b"a scene brought back from tape\n"


def _services(tmp_path: Path, backend: str = "httpx", max_wait: float = 600) -> Services:
    workflow: dict[str, Any] = {
        "egress": {"allow_cidrs": ["127.0.0.1/32"]},
        "cache": {"root": str(tmp_path / "cache")},
        "staging": {
            "http_backend": backend,
            "nearline_retry_seconds": 0.5,
            "nearline_max_retry_seconds": 2,
            "nearline_max_wait_seconds": max_wait,
        },
    }
    return build_services(make_settings(tmp_path, workflow=workflow))


def _slurm_jobs_named(name: str) -> list[str]:
    """Slurm jobs with this name, live (squeue) or in accounting (sacct), since yesterday."""
    live = subprocess.run(
        ["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, check=True
    ).stdout.split()
    accounted = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", "JobID", "--name", name, "-S", "now-1days"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(set(live) | set(accounted))


def _metrics(services: Services) -> dict[str, float]:
    from gateway.accounting.metrics import DatabaseCollector

    collector = DatabaseCollector(services.engine, "EUR")
    return {m.name: m.samples[0].value for m in collector.collect() if m.samples}


@pytest.fixture
def tape() -> Iterator[TapeServer]:
    with serving(TapeServer({"scene.txt": NOTE}, waits=3, retry_after=1)) as server:
        yield server


@pytest.mark.parametrize(("kind", "backend"), [("tape", "httpx"), ("busy", "curl")])
def test_an_input_on_tape_is_staged_after_the_waits_and_no_slurm_job_before(
    cluster: str, tmp_path: Path, tape: TapeServer, kind: str, backend: str
) -> None:
    services = _services(tmp_path, backend)
    try:
        href = f"{tape.url}/{kind}/scene.txt"
        job = services.jobs.submit(ALICE, "echo", {"inputs": {"mixed_input": {"href": href}}})
        name = job_name(job.id)
        waiting_seen: list[Job] = []
        with worker_thread(services):

            def done() -> Job | None:
                current = services.store.get(job.id)
                if "Waiting for input from tape" in (current.message or ""):
                    # while it waits: no Slurm job, live or accounted (checked only when
                    # the source had not served the file yet when Slurm was asked)
                    assert current.scheduler_job_id is None
                    in_slurm = _slurm_jobs_named(name)
                    if 200 not in [s for _, s in tape.answers]:
                        assert in_slurm == []
                        waiting_seen.append(current)
                return current if current.final else None

            final = eventually(
                done, 120, lambda: f"job {job.id}: {services.store.get(job.id).message}", every=0.3
            )
        assert final.state is JobState.SUCCESSFUL, final.message
        assert final.results == {"mixed_output": NOTE.decode()}
        assert [s for _, s in tape.answers] == [202 if kind == "tape" else 503] * 3 + [200]
        assert waiting_seen, "the job was never seen waiting for its input"
        assert waiting_seen[0].state is JobState.STAGING
        assert waiting_seen[0].extra["awaiting_input"]["tries"] >= 1
        # exactly one Slurm job, once slurmdbd has it (accounting lags the controller)
        eventually(
            lambda: _slurm_jobs_named(name) == [final.scheduler_job_id],
            30,
            lambda: f"one Slurm job named {name}, not {_slurm_jobs_named(name)}",
        )
        assert sacct_field(final.scheduler_job_id or "", "User") == "alice"
        assert "awaiting_input" not in final.extra
    finally:
        services.close()


def test_a_dismissed_waiting_job_never_reaches_slurm(cluster: str, tmp_path: Path) -> None:
    services = _services(tmp_path)
    with serving(TapeServer({"scene.txt": NOTE}, waits=10_000, retry_after=1)) as tape:
        try:
            href = f"{tape.url}/tape/scene.txt"
            job = services.jobs.submit(ALICE, "echo", {"inputs": {"mixed_input": {"href": href}}})
            with worker_thread(services):
                eventually(
                    lambda: len(tape.answers) >= 2, 60, "the job to wait for its input twice"
                )
                # the metrics show the waiting job and for how long it has waited
                metrics = _metrics(services)
                assert metrics["hpcgw_jobs_waiting_for_input"] == 1
                assert metrics["hpcgw_jobs_waiting_for_input_longest_seconds"] > 0
                status = services.jobs.get(ALICE, job.id)
                assert status.state is JobState.STAGING and status.scheduler_job_id is None
                dismissed = services.jobs.dismiss(ALICE, job.id)
                assert dismissed.state is JobState.DISMISSED
                asked = len(tape.answers)
                # the worker cleans up, then runs on past the input's Retry-After (1 s):
                # the job is not staged again
                eventually(
                    lambda: job.id not in {j.id for j in services.store.pending_cancels()},
                    30,
                    "the dismissed job's clean-up",
                )
                time.sleep(3)
            assert len(tape.answers) <= asked + 1  # at most a try already under way
            assert services.store.get(job.id).scheduler_job_id is None
            assert _slurm_jobs_named(job_name(job.id)) == []
        finally:
            services.close()


def test_a_job_waiting_past_the_limit_fails_saying_so(cluster: str, tmp_path: Path) -> None:
    services = _services(tmp_path, max_wait=3)
    with serving(TapeServer({"scene.txt": NOTE}, waits=10_000, retry_after=1)) as tape:
        try:
            href = f"{tape.url}/tape/scene.txt"
            job = services.jobs.submit(ALICE, "echo", {"inputs": {"mixed_input": {"href": href}}})
            with worker_thread(services):
                final = eventually(
                    lambda: ((j := services.store.get(job.id)).final and j) or None, 60, "failure"
                )
            assert final.state is JobState.FAILED
            assert "Input not online after waiting" in (final.message or "")
            assert "HTTP 202" in (final.message or "")
            assert _slurm_jobs_named(job_name(job.id)) == []
        finally:
            services.close()
