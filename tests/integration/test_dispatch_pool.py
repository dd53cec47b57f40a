"""The dispatcher's submission pool against the real dev cluster: a job whose input
download hangs does not hold up other users' jobs, and is submitted once it arrives."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.app import build_services, build_worker
from gateway.identity.auth import Principal
from gateway.jobs.records import NewJob, Owner
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.dispatcher import Dispatcher
from tests.conftest import make_settings
from tests.polling import eventually

pytestmark = pytest.mark.slurm

ALICE = Principal(sub="sub-alice", username="alice", hpc_login="alice", roles=frozenset())
BOB = Principal(sub="sub-bob", username="bob", hpc_login="bob", roles=frozenset())


class Gate:
    """A loopback HTTP server whose one file is sent only once ``open`` is set."""

    def __init__(self) -> None:
        self.open = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                gate.open.wait(120)
                body = b"not really a GeoTIFF"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "image/tiff")
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/scene.tif"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.open.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.close()


@pytest.fixture
def unprobed(cluster: str, tmp_path: Path) -> Iterator[Services]:
    """Services whose admission does not probe references (the gate would block it)."""
    settings = make_settings(
        tmp_path,
        workflow={
            "egress": {"allow_cidrs": ["127.0.0.1/32"], "probe_references": False},
            "cache": {"root": str(tmp_path / "cache")},
        },
    )
    services = build_services(settings)
    yield services
    services.close()


def cycle_until(
    dispatcher: Dispatcher, services: Services, job_id: str, state: JobState, timeout: float = 60
) -> None:
    """Run the dispatcher's cycles, without waiting, as the worker does, until ``state``."""

    def reached() -> bool:
        if services.store.get(job_id).state is state:
            return True
        dispatcher.run_once(wait=False)
        return False

    eventually(reached, timeout, lambda: f"{job_id} to reach {state}: {services.store.get(job_id)}")


def test_a_hanging_download_does_not_hold_up_other_jobs(unprobed: Services, gate: Gate) -> None:
    services = unprobed
    slow = services.jobs.submit(ALICE, "ndvi", {"inputs": {"image": {"href": gate.url}}})
    fast = services.jobs.submit(BOB, "echo", {"inputs": {"string_input": "not stuck"}})
    dispatcher = build_worker(services).dispatcher
    try:
        assert dispatcher.run_once(wait=False) == 2  # both claimed; neither awaited
        cycle_until(dispatcher, services, fast.id, JobState.QUEUED)
        assert services.store.get(slow.id).state is JobState.STAGING
        assert dispatcher.run_once(wait=False) == 0  # the hanging one is not taken twice
        gate.open.set()
        dispatcher.drain()
        queued = services.store.get(slow.id)
        assert queued.state is JobState.QUEUED and queued.scheduler_job_id
        assert queued.extra["staged_inputs"]["image"]["href"] == gate.url
    finally:
        dispatcher.close()
        services.jobs.dismiss(ALICE, slow.id)  # cancels its Slurm job: the input is no image
        services.jobs.dismiss(BOB, fast.id)


def test_the_forwarded_token_is_not_kept_once_submitted(cluster: str, services: Services) -> None:
    """Forward-mode jobs carry the user's token until submission, never after it.

    (This site mints tokens, so the stored one is only carried, never presented.)
    """
    job_id = str(uuid.uuid4())
    services.store.create(
        NewJob(
            id=job_id,
            process_id="echo",
            process_version="1.0.0",
            owner=Owner(sub=ALICE.sub, username="alice", hpc_login="alice"),
            site="dev",
            inputs={"string_input": "token"},
            forward_token="a-bearer-token",
        )
    )
    assert services.store.get(job_id).extra == {"forward_token": "a-bearer-token"}
    worker = build_worker(services)
    try:
        assert worker.dispatcher.run_once() == 1
    finally:
        worker.dispatcher.close()
    queued = services.store.get(job_id)
    assert queued.state is JobState.QUEUED, queued.message
    assert "forward_token" not in queued.extra
    services.jobs.dismiss(ALICE, job_id)
