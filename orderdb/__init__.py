"""orderdb: an order-fulfillment and order-tracking engine that lives inside PostgreSQL."""

from importlib import metadata as _metadata

from orderdb.client import AsyncClient, Client
from orderdb.errors import OrderDBError, TransientError

__all__ = ["AsyncClient", "Client", "OrderDBError", "TransientError"]
try:
    __version__ = _metadata.version("orderdb")  # the one version source: pyproject.toml
except _metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout, not installed
    __version__ = "0+unknown"
