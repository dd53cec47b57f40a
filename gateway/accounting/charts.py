"""Small server-side SVG charts for the dashboard: no JavaScript, no external assets.

Each function returns an ``<svg>`` element as a string. Every mark carries
``data-label`` / ``data-value`` attributes (exact numbers), so the page can be
checked by DOM queries and read by assistive tools; ``<title>`` children give
tooltips in browsers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

PALETTE = ("#2f6db5", "#e07b39", "#3a9a5b", "#b8434b", "#7d5ba6", "#8c6d31", "#2aa1a8")
_FONT = 'font-family="sans-serif" font-size="11"'


def _nice_max(value: float) -> float:
    """A round axis maximum >= value (1, 2, 2.5, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exp
        if top >= value - 1e-12:
            return float(top)
    return float(10 ** (exp + 1))


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _empty(chart_id: str, width: int, height: int, message: str) -> str:
    return (
        f'<svg id={quoteattr(chart_id)} class="chart empty" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" {_FONT}>'
        f"{escape(message)}</text></svg>"
    )


def column_chart(
    chart_id: str,
    points: Sequence[tuple[str, float]],
    *,
    unit: str = "core-hours",
    width: int = 960,
    height: int = 260,
) -> str:
    """Vertical bars over labelled buckets (e.g. core-hours per day)."""
    if not points:
        return _empty(chart_id, width, height, "no usage in this period")
    left, right, top, bottom = 72, 12, 14, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max(v for _, v in points))
    slot = plot_w / len(points)
    bar_w = max(1.0, slot * 0.7)
    parts = [
        f'<svg id={quoteattr(chart_id)} class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        *_y_axis(left, top, plot_w, plot_h, top_value, unit),
    ]
    every = max(1, math.ceil(len(points) / 12))
    for i, (label, value) in enumerate(points):
        h = plot_h * value / top_value
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h - h
        parts.append(
            f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" '
            f'fill="{PALETTE[0]}" data-label={quoteattr(label)} data-value="{value!r}">'
            f"<title>{escape(label)}: {_fmt(value)} {escape(unit)}</title></rect>"
        )
        if i % every == 0:
            cx = left + i * slot + slot / 2
            parts.append(
                f'<text x="{cx:.2f}" y="{top + plot_h + 14}" text-anchor="end" '
                f'transform="rotate(-35 {cx:.2f} {top + plot_h + 14})" {_FONT}>'
                f"{escape(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _y_axis(
    left: int, top: int, plot_w: float, plot_h: float, top_value: float, unit: str
) -> list[str]:
    out = []
    for k in range(5):
        value = top_value * k / 4
        y = top + plot_h - plot_h * k / 4
        out.append(
            f'<line x1="{left}" x2="{left + plot_w:.2f}" y1="{y:.2f}" y2="{y:.2f}" '
            f'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.2f}" text-anchor="end" {_FONT}>{_fmt(value)}</text>'
        )
    out.append(
        f'<text x="12" y="{top + plot_h / 2:.2f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + plot_h / 2:.2f})" {_FONT}>{escape(unit)}</text>'
    )
    return out


def bar_chart(
    chart_id: str,
    items: Sequence[tuple[str, float]],
    *,
    unit: str = "core-hours",
    width: int = 460,
    bar_height: int = 22,
) -> str:
    """Horizontal bars, largest first (e.g. core-hours by process or by user)."""
    if not items:
        return _empty(chart_id, width, 60, "no usage in this period")
    items = sorted(items, key=lambda kv: (-kv[1], kv[0]))
    left, right = 120, 90
    height = 10 + len(items) * (bar_height + 6)
    top_value = max(v for _, v in items) or 1.0
    plot_w = width - left - right
    parts = [
        f'<svg id={quoteattr(chart_id)} class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
    ]
    for i, (label, value) in enumerate(items):
        y = 5 + i * (bar_height + 6)
        w = max(1.0, plot_w * value / top_value) if value > 0 else 0.0
        color = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<text x="{left - 6}" y="{y + bar_height * 0.7:.2f}" text-anchor="end" {_FONT}>'
            f"{escape(label)}</text>"
            f'<rect class="bar" x="{left}" y="{y}" width="{w:.2f}" height="{bar_height}" '
            f'fill="{color}" data-label={quoteattr(label)} data-value="{value!r}">'
            f"<title>{escape(label)}: {_fmt(value)} {escape(unit)}</title></rect>"
            f'<text x="{left + w + 6:.2f}" y="{y + bar_height * 0.7:.2f}" {_FONT}>'
            f"{_fmt(value)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def scatter_chart(
    chart_id: str,
    points: Sequence[tuple[str, float, float]],
    *,
    unit: str = "core-hours",
    size: int = 320,
) -> str:
    """Quoted (x) vs actual (y) per job, with the y = x diagonal."""
    if not points:
        return _empty(chart_id, size, size, "no finished jobs with a quote")
    margin = 56
    plot = size - margin - 12
    top_value = _nice_max(max(max(q, a) for _, q, a in points))
    x0, y0 = margin, 12 + plot

    def sx(v: float) -> float:
        return x0 + plot * v / top_value

    def sy(v: float) -> float:
        return y0 - plot * v / top_value

    parts = [
        f'<svg id={quoteattr(chart_id)} class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{size}" height="{size}" viewBox="0 0 {size} {size}" role="img">',
        f'<rect x="{x0}" y="12" width="{plot}" height="{plot}" fill="none" stroke="#ccc"/>',
        f'<line class="diagonal" x1="{sx(0):.2f}" y1="{sy(0):.2f}" x2="{sx(top_value):.2f}" '
        f'y2="{sy(top_value):.2f}" stroke="#999" stroke-dasharray="4 3"/>',
        f'<text x="{x0 + plot / 2}" y="{size - 8}" text-anchor="middle" {_FONT}>'
        f"quoted {escape(unit)} (max {_fmt(top_value)})</text>",
        f'<text x="12" y="{12 + plot / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {12 + plot / 2})" {_FONT}>actual {escape(unit)}</text>',
    ]
    for label, quoted, actual in points:
        parts.append(
            f'<circle class="point" cx="{sx(quoted):.2f}" cy="{sy(actual):.2f}" r="4" '
            f'fill="{PALETTE[1]}" fill-opacity="0.75" data-label={quoteattr(label)} '
            f'data-quoted="{quoted!r}" data-actual="{actual!r}">'
            f"<title>{escape(label)}: quoted {_fmt(quoted)}, actual {_fmt(actual)}</title>"
            "</circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
