"""The time filters of the job list (18-062r2 /req/job-list): ``datetime``, ``min/maxDuration``.

``datetime`` selects jobs by their ``created`` time. It is an RFC 3339
date-time or full-date, or an interval ``start/end`` bounded or half-bounded
(an open end is ``..`` or empty): ``2026-05-01T10:00:00Z``, ``2026-05-01/2026-05-31``,
``../2026-05-01T12:00:00+02:00``, ``2026-05-01T00:00:00Z/..``.

A date-time names a span as long as its precision: ``10:00:00Z`` is that whole
second, ``10:00:00.250Z`` that millisecond, a full-date that whole (UTC) day.
An instant matches the jobs created within its span, so the ``created`` value
of a status document finds its job; an interval runs from the start of its
first end's span to the end of its last end's span (both ends inclusive).
An offset is required on a date-time (``Z`` or ``+hh:mm``); a ``+`` sent
unencoded in a query string arrives as a space and is read as ``+``.

``minDuration`` / ``maxDuration`` are whole seconds of run time (both
inclusive), see :class:`~gateway.jobs.records.DurationRange`.

Every malformed value is a :class:`~gateway.errors.BadRequest` naming it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from werkzeug.datastructures import MultiDict

from gateway.errors import BadRequest
from gateway.jobs.records import CreatedRange, DurationRange, JobQuery
from gateway.jobs.service import ogc_states

#: Longest duration filter accepted (about 68 years), so the SQL stays in range.
MAX_DURATION_SECONDS = 2**31 - 1

_DATE_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?P<tz>[Zz]|[+\- ]\d{2}:\d{2}))?"
)
_OPEN = ("", "..")
_EXAMPLE = "e.g. 2026-05-01T12:00:00Z, 2026-05-01, 2026-05-01T00:00:00Z/.. or ../2026-05-31"


_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; the first or last representable instant where it overflows."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00, 9999-12-31T23:59:59-12:00
        return _MIN if moment.year == 1 else _MAX


def _plus(moment: datetime, delta: timedelta) -> datetime:
    try:
        return moment + delta
    except OverflowError:  # the end of 9999-12-31
        return _MAX


def _span(raw: str) -> tuple[datetime, datetime]:
    """The ``[start, end)`` a date-time or full-date names; ValueError if it is neither."""
    match = _DATE_TIME.fullmatch(raw.strip())
    if match is None:
        raise ValueError(raw)
    date, clock, frac, tz = match.group("date", "time", "frac", "tz")
    if clock is None:
        start = datetime.fromisoformat(date).replace(tzinfo=UTC)
        return start, _plus(start, timedelta(days=1))
    digits = (frac or "")[:6]
    offset = "+00:00" if tz in ("Z", "z") else tz.replace(" ", "+")
    text = f"{date}T{clock}{'.' + digits.ljust(6, '0') if digits else ''}{offset}"
    start = _utc(datetime.fromisoformat(text))
    return start, _plus(start, timedelta(microseconds=10 ** (6 - len(digits))))


def parse_datetime(raw: str) -> CreatedRange:
    """The ``created`` range of a ``datetime`` parameter; BadRequest when malformed."""
    parts = raw.split("/")
    if len(parts) > 2:
        raise BadRequest(f"datetime {raw!r} has more than one '/'; {_EXAMPLE}")
    try:
        if len(parts) == 1:
            if raw.strip() in _OPEN:
                raise ValueError(raw)
            start, end = _span(raw)
            return CreatedRange(start, end)
        first, last = (p.strip() for p in parts)
        lower = None if first in _OPEN else _span(first)[0]
        upper = None if last in _OPEN else _span(last)[1]
    except ValueError:
        raise BadRequest(
            f"datetime {raw!r} is not an RFC 3339 date-time, date or interval; {_EXAMPLE}"
        ) from None
    if lower is None and upper is None:
        raise BadRequest(f"datetime interval {raw!r} is open at both ends; {_EXAMPLE}")
    if lower is not None and upper is not None and lower >= upper:
        raise BadRequest(f"datetime interval {raw!r} ends before it starts")
    return CreatedRange(lower, upper)


def parse_duration(name: str, raw: str | None) -> int | None:
    """A whole number of seconds (``minDuration``/``maxDuration``), or None when absent."""
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    if not value.isascii() or not value.isdigit():
        raise BadRequest(f"{name} must be a whole number of seconds (0 or more), got {raw!r}")
    seconds = int(value)
    if seconds > MAX_DURATION_SECONDS:
        raise BadRequest(f"{name} must be at most {MAX_DURATION_SECONDS} seconds, got {raw!r}")
    return seconds


def parse_durations(min_raw: str | None, max_raw: str | None) -> DurationRange | None:
    """The run-duration range of ``minDuration``/``maxDuration``; None when neither is given."""
    low = parse_duration("minDuration", min_raw)
    high = parse_duration("maxDuration", max_raw)
    if low is None and high is None:
        return None
    if low is not None and high is not None and low > high:
        raise BadRequest(f"minDuration ({low}) is larger than maxDuration ({high})")
    return DurationRange(low, high)


def multi(args: MultiDict[str, str], name: str) -> list[str]:
    """A repeatable and/or comma-separated query parameter."""
    values: list[str] = []
    for raw in args.getlist(name):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return values


def job_query(args: MultiDict[str, str], limit: int) -> JobQuery | None:
    """The job list's query from its OGC parameters (``processID``, ``status``,
    ``datetime``, ``min/maxDuration``, ``next``); None when ``type`` excludes processes.

    An empty filter is no filter (a form or generated client sends ``datetime=``).
    """
    created = parse_datetime(args["datetime"]) if args.get("datetime") else None
    duration = parse_durations(args.get("minDuration"), args.get("maxDuration"))
    types = multi(args, "type")
    if types and "process" not in types:
        return None
    return JobQuery(
        process_ids=tuple(multi(args, "processID")),
        states=ogc_states(multi(args, "status")),
        created=created,
        duration=duration,
        cursor=args.get("next") or None,
        limit=limit,
    )
