"""Budget periods and their bounds, always in UTC (calendar day, ISO week, month, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    #: No reset: the limit applies to all usage ever recorded.
    TOTAL = "total"


@dataclass(frozen=True)
class Window:
    """``[start, end)`` of one period, and a short human label (``2025-06``)."""

    period: Period
    start: datetime
    end: datetime | None
    label: str


def _month_start(year: int, month: int) -> datetime:
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


def window(period: Period, at: datetime) -> Window:
    """The period containing ``at`` (an aware datetime)."""
    at = at.astimezone(UTC)
    day = datetime(at.year, at.month, at.day, tzinfo=UTC)
    if period is Period.DAY:
        return Window(period, day, day + timedelta(days=1), day.strftime("%Y-%m-%d"))
    if period is Period.WEEK:
        start = day - timedelta(days=day.weekday())
        iso = start.isocalendar()
        return Window(period, start, start + timedelta(days=7), f"{iso.year}-W{iso.week:02d}")
    if period is Period.MONTH:
        start = _month_start(at.year, at.month)
        return Window(period, start, _month_start(at.year, at.month + 1), start.strftime("%Y-%m"))
    if period is Period.QUARTER:
        first = 3 * ((at.month - 1) // 3) + 1
        start = _month_start(at.year, first)
        label = f"{at.year}-Q{(first - 1) // 3 + 1}"
        return Window(period, start, _month_start(at.year, first + 3), label)
    if period is Period.YEAR:
        start = datetime(at.year, 1, 1, tzinfo=UTC)
        return Window(period, start, datetime(at.year + 1, 1, 1, tzinfo=UTC), str(at.year))
    return Window(period, EPOCH, None, "all time")


def parse_period(value: str) -> Period:
    """A period name (``monthly`` is accepted for ``month`` etc.); ValueError otherwise."""
    text = value.strip().lower()
    aliases = {"daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter"}
    text = aliases.get(text, text)
    if text in ("yearly", "annual"):
        text = "year"
    try:
        return Period(text)
    except ValueError:
        names = ", ".join(p.value for p in Period)
        raise ValueError(f"unknown budget period {value!r}; use one of {names}") from None
