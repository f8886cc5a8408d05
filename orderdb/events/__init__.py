"""Events: the outbox as a stream (read, acknowledge), the relay and its webhooks."""

from orderdb.events.relay import *  # noqa: F403
from orderdb.events.relay import __all__  # noqa: F401
