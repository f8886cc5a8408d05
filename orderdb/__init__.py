"""orderdb: an order-fulfilment and order-tracking engine that lives inside PostgreSQL."""

from orderdb.client import AsyncClient, Client
from orderdb.errors import OrderDBError, TransientError

__all__ = ["AsyncClient", "Client", "OrderDBError", "TransientError"]
__version__ = "0.1.0"
