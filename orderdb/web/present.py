"""Presentation only: turning what SQL returned into text and geometry for the templates.

Nothing here decides anything about an order: statuses, SLA states, levels, locations and
estimates come from SQL as they are; this module formats times, labels and bar positions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """A timestamp from a JSON document (ISO 8601 text) or a row (datetime)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fmt_time(value: Any) -> str:
    """``25 Nov 2026, 14:05 UTC`` (times are shown in UTC, stated on the page)."""
    parsed = parse_time(value)
    if parsed is None:
        return "" if value is None else str(value)
    return parsed.astimezone(UTC).strftime("%d %b %Y, %H:%M UTC")


def iso_time(value: Any) -> str:
    """Machine-readable form for ``<time datetime=...>``."""
    parsed = parse_time(value)
    return parsed.astimezone(UTC).isoformat() if parsed else ""


def label(status: Any) -> str:
    """``out_for_delivery`` -> ``Out for delivery``."""
    if status is None:
        return ""
    text = str(status).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def fmt_duration(seconds: float | None) -> str:
    """``3 d 4 h``, ``5 h 12 min``, ``7 min``, ``40 s``."""
    if seconds is None:
        return ""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def fmt_value(value: Any, unit: str | None = None) -> str:
    """A figure: a ratio as a percentage, hours with "h", other numbers with at most two
    decimals (integers as they are)."""
    if value is None:
        return "n/a"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if unit == "ratio":
        return f"{number * 100:.1f} %"
    suffix = {"hours": " h", "seconds": " s"}.get(unit or "", "")
    if number.is_integer():
        return f"{int(number):,}{suffix}"
    return f"{number:,.2f}{suffix}"


def gantt(
    orders: Iterable[Mapping[str, Any]], now: datetime | None = None
) -> tuple[list[dict[str, Any]], datetime | None, datetime | None]:
    """Bar geometry of a lane: each order's stages on one time axis shared by the lane.

    ``orders`` rows carry ``stages``: ``[{"status", "start", "end"}]`` oldest first, the current
    stage with ``end`` null (it runs until ``now``). Returns the orders with ``segments``
    (``left``/``width`` in percent of the axis, ``status``, ``title``) and a ``summary`` for
    screen readers, plus the axis start and end.
    """
    rows = [dict(o) for o in orders]
    now = now or datetime.now(UTC)
    starts: list[datetime] = []
    for row in rows:
        for stage in row.get("stages") or []:
            start = parse_time(stage.get("start"))
            if start is not None:
                starts.append(start)
    if not starts:
        for row in rows:
            row["segments"] = []
            row["summary"] = ""
        return rows, None, None
    axis_start = min(starts)
    axis_end = max(now, *(s for s in starts))
    span = max((axis_end - axis_start).total_seconds(), 1.0)
    for row in rows:
        segments: list[dict[str, Any]] = []
        parts: list[str] = []
        for stage in row.get("stages") or []:
            start = parse_time(stage.get("start"))
            if start is None:
                continue
            end = parse_time(stage.get("end")) or axis_end
            seconds = max((end - start).total_seconds(), 0.0)
            left = (start - axis_start).total_seconds() / span * 100.0
            width = max(seconds / span * 100.0, 0.6)
            width = min(width, 100.0 - min(left, 99.4))
            status = str(stage.get("status") or "")
            text = f"{label(status)} {fmt_duration(seconds)}"
            segments.append(
                {
                    "status": status,
                    "left": round(left, 3),
                    "width": round(width, 3),
                    "title": f"{text} (from {fmt_time(start)})",
                }
            )
            parts.append(text)
        row["segments"] = segments
        row["summary"] = ", ".join(parts)
    return rows, axis_start, axis_end
