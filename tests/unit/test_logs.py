"""Log lines: JSON lines with the job and user they concern; text with a ``[job … user …]``."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from gateway.logs import (
    ContextFilter,
    LogSettings,
    bind_user,
    configure,
    formatter,
    job_context,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("test.logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, stream, handler
    logger.removeHandler(handler)
    bind_user(None)


def test_json_lines_carry_the_job_and_user_only_inside_their_context(capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(formatter(LogSettings(format="json")))
    logger.info("before")
    with job_context("3f1c-job", "alice"):
        logger.warning("job %s: deferred (%d)", "3f1c-job", 2)
    logger.info("after")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["before", "job 3f1c-job: deferred (2)", "after"]
    inside = lines[1]
    assert (inside["job_id"], inside["user"], inside["level"]) == ("3f1c-job", "alice", "WARNING")
    assert inside["logger"] == "test.logs" and inside["time"].endswith("+00:00")
    assert "job_id" not in lines[0] and "user" not in lines[2]  # nothing leaks out
    assert "context" not in inside  # the text form's suffix is not a JSON field


def test_text_lines_name_the_job_and_user(capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(formatter(LogSettings()))
    bind_user("bob")  # an HTTP request's caller
    with job_context("42-job"):
        logger.info("dismissed")
    logger.info("listed")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("test.logs: dismissed [job 42-job user bob]")
    assert second.endswith("test.logs: listed [user bob]")


def test_an_unknown_level_is_a_configuration_error() -> None:
    assert LogSettings(level="warning").level == "WARNING"
    with pytest.raises(ValidationError, match="unknown log level 'chatty'"):
        LogSettings(level="chatty")
    with pytest.raises(ValidationError):
        LogSettings(format="xml")  # type: ignore[arg-type]


def test_configure_leaves_a_root_logger_configured_by_someone_else() -> None:
    root = logging.getLogger()
    foreign = logging.NullHandler()
    saved = (list(root.handlers), root.level)
    for h in saved[0]:
        root.removeHandler(h)
    try:
        root.addHandler(foreign)
        configure(LogSettings(format="json"), "ERROR")
        assert root.handlers == [foreign] and root.level == saved[1]  # untouched
        root.removeHandler(foreign)
        configure(LogSettings(format="json"))
        configure(LogSettings(), "WARNING")  # a second call replaces the first
        [ours] = root.handlers
        assert ours.get_name() == "hpcgw" and root.level == logging.WARNING
        root.removeHandler(ours)
    finally:
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
