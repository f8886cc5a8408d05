"""orderdb: an order-fulfilment and order-tracking engine that lives inside PostgreSQL."""

from orderdb.client import Client
from orderdb.errors import OrderDBError

__all__ = ["Client", "OrderDBError"]
__version__ = "0.1.0"
