"""Log lines: text for a terminal, JSON lines for a centre's log pipeline.

Every line says which job and which user it concerns, when it concerns one:
``job_id`` and ``user`` come from a context (:func:`job_context` around the
worker's handling of one job, :func:`bind_user` for the rest of an HTTP
request), not from the message text, so a log shipper can index and filter on
them (``jq 'select(.job_id == "…")'``). ``logging.format: json`` (or
``HPCGW_LOGGING__FORMAT=json``) writes one JSON object per line::

    {"time": "2026-12-07T17:20:01.123+00:00", "level": "INFO",
     "logger": "gateway.workflow.dispatcher", "message": "job … submitted as Slurm job 812",
     "job_id": "…", "user": "alice", "process": 4121, "thread": "hpcgw-submit_0"}

The text format adds ``[job … user …]`` to the lines that have them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, field_validator
from pythonjsonlogger.json import JsonFormatter

_JOB: ContextVar[str | None] = ContextVar("hpcgw_log_job", default=None)
_USER: ContextVar[str | None] = ContextVar("hpcgw_log_user", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
#: The record attributes a JSON line carries, renamed as in the module docstring.
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d %(threadName)s"
_RENAMED = {"asctime": "time", "levelname": "level", "name": "logger", "threadName": "thread"}


class LogSettings(BaseModel):
    """``logging:`` in the configuration."""

    #: ``text`` (a terminal, journald) or ``json`` (one JSON object per line).
    format: Literal["text", "json"] = "text"
    #: The root level; a command may ask for less (``hpcgw doctor`` logs errors only).
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        name = value.upper()
        if not isinstance(logging.getLevelName(name), int):
            raise ValueError(f"unknown log level {value!r} (DEBUG, INFO, WARNING, ERROR)")
        return name


@contextlib.contextmanager
def job_context(job_id: str, user: str | None = None) -> Iterator[None]:
    """Lines logged inside carry ``job_id`` (and ``user``: the job owner's name)."""
    job_token = _JOB.set(job_id)
    user_token = _USER.set(user) if user is not None else None
    try:
        yield
    finally:
        _JOB.reset(job_token)
        if user_token is not None:
            _USER.reset(user_token)


def bind_user(username: str | None) -> None:
    """The caller of the current request, for the lines it logs (reset per request)."""
    _USER.set(username)


def bind_job(job_id: str | None) -> None:
    """The job the current request is about (``/jobs/<id>``...), for the lines it logs."""
    _JOB.set(job_id)


class ContextFilter(logging.Filter):
    """Adds ``job_id``, ``user`` and the text form ``context`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id, user = _JOB.get(), _USER.get()
        record.job_id = job_id
        record.user = user
        parts = [f"job {job_id}" if job_id else "", f"user {user}" if user else ""]
        shown = " ".join(p for p in parts if p)
        record.context = f" [{shown}]" if shown else ""
        return True


class _JsonLines(JsonFormatter):
    """ISO 8601 UTC times; drops ``job_id``/``user`` when unset and the text-only ``context``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def process_log_record(self, log_record: dict[str, object]) -> dict[str, object]:
        log_record.pop("context", None)
        for key in ("job_id", "user"):
            if log_record.get(key) is None:
                log_record.pop(key, None)
        return log_record


def formatter(settings: LogSettings) -> logging.Formatter:
    if settings.format == "json":
        return _JsonLines(
            JSON_FIELDS, rename_fields=_RENAMED, timestamp=False, json_ensure_ascii=False
        )
    return logging.Formatter(TEXT_FORMAT)


HANDLER_NAME = "hpcgw"


def configure(settings: LogSettings | None = None, level: str | None = None) -> None:
    """Install one stderr handler on the root logger, in ``settings``' format.

    ``level`` overrides the configured level (commands that should stay quiet).
    Called by the CLI commands; a second call replaces the first one's handler.
    Like :func:`logging.basicConfig`, it leaves alone a root logger that
    something else configured (an embedding application, a test runner).
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    if len(ours) != len(root.handlers):
        return
    chosen = settings or LogSettings()
    handler = logging.StreamHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter(chosen))
    handler.addFilter(ContextFilter())
    for old in ours:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or chosen.level)
