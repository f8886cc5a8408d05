"""Running the web application: in the foreground (``orderdb web``) or in a background thread."""

from __future__ import annotations

import threading
import time
from urllib.parse import quote, urlencode

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from orderdb.web.app import create_app

#: servers started by start_in_thread (kept so that they are not collected while running)
_RUNNING: list[WebServer] = []


class WebServer:
    """uvicorn serving the web application from a daemon thread; ``stop()`` ends it."""

    def __init__(
        self,
        dsn: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ops_dsn: str | None = None,
        poll_interval: float = 1.0,
        stream_seconds: float = 300.0,
        board_ttl: float = 5.0,
        idle_poll: float = 30.0,
        listen: bool = True,
        board_refresh: float = 15.0,
        uvicorn_logging: bool = True,
    ) -> None:
        self.app = create_app(
            dsn,
            ops_dsn,
            poll_interval=poll_interval,
            stream_seconds=stream_seconds,
            board_ttl=board_ttl,
            idle_poll=idle_poll,
            listen=listen,
            board_refresh=board_refresh,
        )
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # False: uvicorn's records go to the root logger's handlers (--log-format json)
            log_config=LOGGING_CONFIG if uvicorn_logging else None,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> str:
        """Start serving; returns the base URL once the server accepts connections."""
        self._thread = threading.Thread(target=self.server.run, name="orderdb-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the web server did not start on {self.host}:{self.port}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the web server did not start within {timeout} s")
            time.sleep(0.02)
        sockets = [s for server in self.server.servers for s in server.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: open live-update streams end, then uvicorn shuts down."""
        self.app.state.web.stopping.set()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> WebServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(
    dsn: str, host: str = "127.0.0.1", port: int = 8080, *, ops_dsn: str | None = None
) -> str:
    """Serve the pages from a daemon thread (it ends with the program); returns the base URL.

    ``port=0`` picks a free port. For ``orderdb demo``: print ``url + "/ops"`` and
    :func:`tracking_url` of one simulated order.
    """
    server = WebServer(dsn, host, port, ops_dsn=ops_dsn)
    url = server.start()
    _RUNNING.append(server)
    return url


def stop_all() -> None:
    """Stop every server that :func:`start_in_thread` started."""
    while _RUNNING:
        _RUNNING.pop().stop()


def tracking_url(base_url: str, order_no: str, customer_id: int) -> str:
    """The tracking page of one order: ``<base>/track/<order_no>?customer=<id>``."""
    query = urlencode({"customer": customer_id})
    return f"{base_url.rstrip('/')}/track/{quote(order_no, safe='')}?{query}"
