"""The customer pages' languages: :mod:`orderdb.locales` (shared with ``orderdb track``)."""

from __future__ import annotations

from orderdb.locales import (
    CHROME,
    DEFAULT_LOCALE,
    DEFAULT_TIME_ZONE,
    fmt_local_time,
    match,
    negotiate,
    offered,
    texts,
    zone,
)

__all__ = [
    "CHROME",
    "DEFAULT_LOCALE",
    "DEFAULT_TIME_ZONE",
    "fmt_local_time",
    "match",
    "negotiate",
    "offered",
    "texts",
    "zone",
]
