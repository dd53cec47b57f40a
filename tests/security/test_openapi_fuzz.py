"""Schemathesis against the app's own ``/openapi``: no 5xx, every answer as documented.

The app runs in-process (WSGI) with its real job store; nothing reaches a
cluster (no worker runs) and execution is not fuzzed (no job is created), nor
are the admin user sync and relink (they would call the identity provider). Each generated
request -- valid and invalid ones alike -- must get an answer that is not a
5xx and that the document describes: a documented status code and media
type, a body valid against the documented schema.

``make test`` runs a bounded sample (``HPCGW_FUZZ_EXAMPLES``, default 10 per
operation, a few hundred requests); ``make fuzz`` runs thousands.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.accounting.reports import ReportError, parse_time
from gateway.app import build_services, create_app
from gateway.identity.auth import ROLE_ADMIN, ROLE_USER, Principal
from gateway.services import Services
from tests.security.conftest import ALICE, accepted_job, finished_job, security_settings

pytestmark = pytest.mark.unit

EXAMPLES = int(os.environ.get("HPCGW_FUZZ_EXAMPLES", "10"))
#: Where a schema-valid request may still be refused with 400, because what makes it
#: valid cannot be said in JSON Schema: a WPS request (KVP or XML: its operation,
#: identifiers and inputs are checked against the process, as OWS asks), the
#: opaque page cursors the server itself issues (``next``), and a period whose
#: end is not after its start (``from``/``to``, ``minDuration``/``maxDuration``), and a
#: trigger rule (its process must exist and its input template fit that process).
_NOT_EXPRESSIBLE_PATHS = ("/wps", "/triggers", "/triggers/{triggerId}")
_OPAQUE_PARAMETERS = ("next",)


def _reversed_period(query: dict[str, Any]) -> bool:
    """``to`` not after ``from``, or ``minDuration`` over ``maxDuration``."""
    low, high = query.get("minDuration"), query.get("maxDuration")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        return True
    if not query.get("from"):
        return False
    try:  # ``to`` defaults to now
        end = parse_time(str(query["to"]), end=True) if query.get("to") else datetime.now(UTC)
        return end <= parse_time(str(query["from"]))
    except ReportError:
        return False


@schemathesis.check
def schema_valid_requests_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """``positive_data_acceptance``, except where validity is not expressible (above)."""
    query = case.query or {}
    if case.operation.path in _NOT_EXPRESSIBLE_PATHS or _reversed_period(query):
        return None
    if any(name in query for name in _OPAQUE_PARAMETERS):
        return None
    return positive_data_acceptance(ctx, response, case)


@schemathesis.check
def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """No 5xx -- but WPS's documented 501 OperationNotSupported (OWS 1.1/2.0 mandate it)."""
    if case.operation.path == "/wps" and response.status_code == 501:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    schema_valid_requests_accepted,
]
#: Part 2 deploy/replace: a body the OpenAPI schema allows (any object) is rarely a
#: valid CWL package, so "schema-valid data is accepted" cannot hold; every other
#: check does (no 5xx, documented statuses and bodies for hostile packages).
PACKAGE_OPERATIONS = {("POST", "/processes"), ("PUT", "/processes/{processId}")}
PACKAGE_CHECKS = [c for c in CHECKS if c is not schema_valid_requests_accepted]


class _AdminAlice:
    """The caller of every fuzzed request: alice, provisioned, and an administrator.

    An administrator reaches every route (budgets, usage of all, user mappings);
    alice's HPC login lets her own the seeded jobs. Authentication itself is
    fuzzed elsewhere (tests/unit/test_oidc.py, tests/integration/test_identity_http.py).
    """

    principal = Principal(
        sub=ALICE.sub,
        username=ALICE.username,
        hpc_login=ALICE.hpc_login,
        roles=frozenset({ROLE_USER, ROLE_ADMIN}),
        is_admin=True,
    )

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return self.principal


def _app() -> tuple[Flask, Services, Path, list[str]]:
    """The app under test, built at import: schemathesis parametrises from its document.

    (``schemathesis.pytest.from_fixture`` would build it lazily, but fails on
    pytest 9: it reads ``request.node._nodeid``.) Two of alice's jobs are in the
    store -- one successful with results, one accepted -- so job routes answer
    their documents too, not only 404.
    """
    tmp = Path(tempfile.mkdtemp(prefix="hpcgw-fuzz-"))
    settings_ = security_settings(tmp)
    services = build_services(settings_)
    done = finished_job(services, {"string_input": "hi"}, {"string_output": "hi"})
    waiting = accepted_job(services, {"string_input": "x"})
    app = create_app(settings_, services, authenticator=_AdminAlice())
    # also when the test is deselected (the module is imported at collection)
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    atexit.register(services.close)
    return app, services, tmp, [done.id, waiting.id]


APP, SERVICES, TMP, JOB_IDS = _app()
SEEDED = len(JOB_IDS)


#: HTTP status -> number of answers, over the whole run (reported at its end).
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _run_report() -> Iterator[None]:
    yield
    jobs = SERVICES.store.count() - SEEDED
    assert jobs == 0, f"the fuzz run created {jobs} job(s)"


def summary() -> str | None:
    """One line for the end of the pytest run (``tests/security/conftest.py``)."""
    total = sum(STATUSES.values())
    if not total:
        return None
    by_status = ", ".join(f"{code}: {n}" for code, n in sorted(STATUSES.items()))
    return f"schemathesis: {total} requests; answers by status: {by_status}"


schema = (
    schemathesis.openapi.from_wsgi("/openapi?f=json", APP)
    .exclude(path_regex=r"/execution$")
    .exclude(path="/admin/users/sync")
    .exclude(path="/admin/users/{username}/relink")
)


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """A ``jobId`` is as often one of the seeded jobs as a generated one."""
    if "jobId" not in (path_parameters or {}):
        return st.just(path_parameters)
    known = [{**path_parameters, "jobId": job_id} for job_id in JOB_IDS]
    return st.sampled_from([path_parameters, path_parameters, *known])


@schema.hook
def filter_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> bool:
    """No WPS Execute in KVP: the fuzz run creates no job."""
    return not (query and str(query.get("request", "")).lower() == "execute")


@schema.hook
def filter_body(context: schemathesis.HookContext, body: Any) -> bool:
    """No WPS Execute in a form-encoded or XML body either."""
    if isinstance(body, dict):
        return str(body.get("request", "")).lower() != "execute"
    return not (isinstance(body, str | bytes) and b"Execute" in _bytes(body))


def _bytes(body: str | bytes) -> bytes:
    return body.encode("utf-8", "replace") if isinstance(body, str) else body


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("HPCGW_FUZZ_RANDOM") != "1",
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_answer_is_documented_and_no_5xx(case: schemathesis.Case) -> None:
    response = case.call()
    STATUSES[response.status_code] += 1
    package = (case.method.upper(), case.path) in PACKAGE_OPERATIONS
    case.validate_response(response, checks=PACKAGE_CHECKS if package else CHECKS)
