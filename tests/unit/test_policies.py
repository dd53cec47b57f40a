"""One policy per fact: the backoff, the retryable statuses and the limit parser."""

from __future__ import annotations

import pytest

from gateway.backoff import RETRYABLE_STATUS, backoff_delay
from gateway.errors import BadRequest
from gateway.paging import MAX_PAGE_LIMIT, parse_limit

pytestmark = pytest.mark.unit


def test_backoff_doubles_from_base_up_to_the_cap() -> None:
    assert [backoff_delay(n, 2.0, 30.0) for n in range(0, 7)] == [2, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(10, 1.0) == 512.0
    assert backoff_delay(10**6, 1.0, 60.0) == 60.0  # no huge powers


def test_retryable_statuses() -> None:
    assert {408, 429, 503} <= RETRYABLE_STATUS
    assert not {400, 401, 403, 404, 501} & RETRYABLE_STATUS


@pytest.mark.parametrize(("raw", "expected"), [(None, 7), ("", 7), ("1", 1), ("1000", 1000)])
def test_limit_values(raw: str | None, expected: int) -> None:
    assert parse_limit(raw, default=7) == expected


@pytest.mark.parametrize("raw", ["0", "1001", "-1", "+5", " 5", "x", "²", "1e3", "5.0"])
def test_bad_limits_are_bad_requests(raw: str) -> None:
    with pytest.raises(BadRequest, match="limit must be an integer"):
        parse_limit(raw, default=10)


def test_unbounded_limit() -> None:
    assert parse_limit(str(MAX_PAGE_LIMIT * 5), default=1, maximum=None) == MAX_PAGE_LIMIT * 5


def test_worker_errors_are_transient_or_permanent_by_class() -> None:
    from gateway.publication.s3 import PublicationError as FromS3
    from gateway.staging import StagingError as FromStaging
    from gateway.workflow.errors import (
        PublicationError,
        StagingError,
        TransientError,
        TransientPublicationError,
        TransientStagingError,
        publication_error,
        staging_error,
    )

    assert FromS3 is PublicationError and FromStaging is StagingError  # one class each
    for cls, transient in [
        (StagingError, False),
        (TransientStagingError, True),
        (PublicationError, False),
        (TransientPublicationError, True),
    ]:
        error = cls("detail")
        assert error.detail == "detail"
        assert isinstance(error, TransientError) is transient is error.transient
    assert isinstance(staging_error("x", transient=True), TransientStagingError)
    assert type(staging_error("x", transient=False)) is StagingError
    assert isinstance(publication_error("x", transient=True), TransientPublicationError)
    assert type(publication_error("x", transient=False)) is PublicationError
