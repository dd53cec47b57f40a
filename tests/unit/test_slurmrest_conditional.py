"""The adapter's conditional ``GET /jobs`` over a replayed wire (answers recorded from the
real slurmrestd 22.05; the live behaviour is in tests/integration/test_slurmrest_conditional.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from hpc_adapters.base import HpcIdentity
from hpc_adapters.errors import TransportError
from hpc_adapters.slurmrest import SlurmRestAdapter

pytestmark = pytest.mark.unit

JOBS = json.loads(
    (Path(__file__).parent / "fixtures" / "slurmrest" / "v0038_jobs.json").read_text()
)


class Fixed:
    def token_for(self, identity: HpcIdentity) -> str:
        return "token"


class Slurmrestd:
    """Answers ``GET /jobs`` with ``answers`` in turn (status; 200 carries the recorded list)."""

    def __init__(self, *answers: int) -> None:
        self.answers = list(answers)
        self.queries: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.queries.append(request.url.query.decode())
        status = self.answers.pop(0)
        if status == 304:
            return httpx.Response(304)  # what slurmrestd sends: no body at all
        return httpx.Response(status, json=JOBS)


def adapter(wire: Slurmrestd, clock: list[float]) -> SlurmRestAdapter:
    return SlurmRestAdapter(
        "test",
        "http://slurm.test",
        "v0.0.38",
        Fixed(),
        "hpcgw",
        lambda identity: pytest.fail("no files here"),
        transport=httpx.MockTransport(wire),
        clock=lambda: clock[0],
    )


def test_no_change_reuses_the_previous_list_and_asks_from_its_time() -> None:
    wire, clock = Slurmrestd(200, 304, 304), [1000.7]
    a = adapter(wire, clock)
    first = a.statuses(["30", "31"])
    clock[0] = 1005.2
    assert a.statuses(["30", "31"]) == first
    assert [s.job_id for s in a.find_by_name(first["30"].name or "")] == ["30"]
    # first unconditional; then 1 s before the time the list was asked for (floored)
    assert wire.queries == ["", "update_time=999", "update_time=999"]


def test_later_requests_are_relative_to_the_newest_full_answer() -> None:
    wire, clock = Slurmrestd(200, 200, 304), [2000.0]
    a = adapter(wire, clock)
    a.statuses(["30"])
    clock[0] = 2003.5
    a.statuses(["30"])
    a.statuses(["30"])
    assert wire.queries == ["", "update_time=1999", "update_time=2002"]


def test_an_unasked_for_304_is_a_transport_error_not_an_empty_list() -> None:
    a = adapter(Slurmrestd(304), [0.0])
    with pytest.raises(TransportError, match="304"):
        a.statuses(["30"])
