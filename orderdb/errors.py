"""Exceptions for orderdb's SQLSTATEs (docs/contract.md), mapped from psycopg errors by sqlstate.

psycopg maps unknown custom codes such as OD001 to generic classes, so one dict from sqlstate to
exception class does the dispatch. :class:`TransientError` marks what a caller can retry: a
serialization failure, a deadlock, a lost connection.

The classes carry an ``Error`` suffix; the names without it (``InsufficientStock``, ...) are kept
as aliases of the same classes.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolClosed


class OrderDBError(Exception):
    """Base class of every orderdb error; carries the server's sqlstate, detail and hint."""

    sqlstate: str | None = None

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        if sqlstate is not None:
            self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint


class InsufficientStockError(OrderDBError):
    """OD001: a reservation cannot be satisfied."""

    sqlstate = "OD001"


class VersionConflictError(OrderDBError):
    """OD002: expected_version is not the order's current version."""

    sqlstate = "OD002"


class InvalidTransitionError(OrderDBError):
    """OD003: the edge from the current status to the requested one is not allowed."""

    sqlstate = "OD003"


class NotFoundError(OrderDBError):
    """OD004: the order, shipment, warehouse or sku does not exist."""

    sqlstate = "OD004"


class ForbiddenError(OrderDBError):
    """OD005: a customer-scoped call names another customer's order."""

    sqlstate = "OD005"


class IdempotencyConflictError(OrderDBError):
    """OD006: an idempotency key was reused with a different request."""

    sqlstate = "OD006"


class InvalidInputError(OrderDBError):
    """Class 22 (22023 and other data exceptions): bad arguments."""

    sqlstate = "22023"


class TransientError(OrderDBError):
    """The transaction failed for a reason that can pass: a serialization failure (40001), a
    deadlock (40P01), a lost connection (class 08, the server shutting down or terminating the
    session: 57P01..57P03, or no SQLSTATE at all), or no pooled connection free in time.

    Its transaction was rolled back: run the whole transaction again, on a new connection (a
    client call without ``conn=`` takes one from the pool). ``.sqlstate`` is the server's code,
    or None when the connection was lost without one. One case is uncertain: a connection lost
    during COMMIT may have committed; calls with an idempotency key (``create_order``) or an
    ``expected_version`` are safe to repeat.
    """


class SchemaOutdatedError(OrderDBError):
    """The database's orderdb schema is older than this package needs: run ``orderdb migrate``
    (with this package's version). Raised by ``Client.connect`` / ``AsyncClient.connect``.
    ``.needed`` is the newest migration id this package ships; ``.found`` the newest one applied
    to the database (None: none, or a database migrated before revisions were recorded)."""

    def __init__(self, message: str, *, needed: str, found: str | None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.needed = needed
        self.found = found


class NotInstalledError(SchemaOutdatedError):
    """orderdb is not installed in this database (schema orderdb does not exist, or holds no
    migration): run ``orderdb migrate``. ``.found`` is None."""


# the names before the Error suffix: the same classes
InsufficientStock = InsufficientStockError
VersionConflict = VersionConflictError
InvalidTransition = InvalidTransitionError
NotFound = NotFoundError
Forbidden = ForbiddenError
IdempotencyConflict = IdempotencyConflictError
InvalidInput = InvalidInputError

BY_SQLSTATE: dict[str, type[OrderDBError]] = {
    cls.sqlstate: cls
    for cls in (
        InsufficientStockError,
        VersionConflictError,
        InvalidTransitionError,
        NotFoundError,
        ForbiddenError,
        IdempotencyConflictError,
        InvalidInputError,
    )
    if cls.sqlstate is not None
}

#: SQLSTATEs after which running the transaction again can succeed (besides class 08)
TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57P01",  # admin_shutdown (also pg_terminate_backend)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (the server is starting or shutting down)
    }
)


def is_transient(exc: psycopg.Error) -> bool:
    """Whether ``exc`` is worth a retry of its transaction: a TRANSIENT_SQLSTATES code, class 08
    (connection exception), or an OperationalError without SQLSTATE from a connection that was
    established (lost connection, pool timeout). Not transient: a failed connection attempt
    (wrong host, port, password or database, a host name that does not resolve: psycopg cannot
    tell these from a server that is down) and a closed pool."""
    state = exc.sqlstate
    if state is not None:
        return state in TRANSIENT_SQLSTATES or state.startswith("08")
    if not isinstance(exc, psycopg.OperationalError) or isinstance(exc, PoolClosed):
        return False
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return False
    # libpq's messages for an attempt that never reached a server (refused, unresolvable host)
    return not str(exc).startswith(("connection failed", "failed to resolve host"))


def from_psycopg(exc: psycopg.Error) -> OrderDBError | None:
    """The orderdb exception for a psycopg error, or None when it is not part of the contract."""
    state = exc.sqlstate
    cls: type[OrderDBError] | None = None
    if is_transient(exc):
        cls = TransientError
    elif state is not None:
        cls = BY_SQLSTATE.get(state)
        if cls is None and state.startswith("22"):
            cls = InvalidInputError
    if cls is None:
        return None
    diag = exc.diag
    return cls(
        diag.message_primary or str(exc),
        sqlstate=state,
        detail=diag.message_detail,
        hint=diag.message_hint,
    )
