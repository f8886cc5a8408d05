"""The web pages of orderdb: a customer tracking page and an operations board (read-only).

``orderdb web`` serves them (uvicorn); :func:`start_in_thread` serves them from a background
thread of another program (``orderdb demo`` prints the URLs of the board and of a tracking page).
See docs/web.md.
"""

from __future__ import annotations

from orderdb.web.app import create_app
from orderdb.web.server import WebServer, start_in_thread, stop_all, tracking_url

__all__ = ["WebServer", "create_app", "start_in_thread", "stop_all", "tracking_url"]
