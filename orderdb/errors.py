"""Exceptions for orderdb's SQLSTATEs (see API.md), mapped from psycopg errors by sqlstate.

psycopg maps unknown custom codes such as OD001 to generic classes, so one dict from sqlstate to
exception class does the dispatch.
"""

from __future__ import annotations

import psycopg


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


class InsufficientStock(OrderDBError):
    """OD001: a reservation cannot be satisfied."""

    sqlstate = "OD001"


class VersionConflict(OrderDBError):
    """OD002: expected_version is not the order's current version."""

    sqlstate = "OD002"


class InvalidTransition(OrderDBError):
    """OD003: the edge from the current status to the requested one is not allowed."""

    sqlstate = "OD003"


class NotFound(OrderDBError):
    """OD004: the order, shipment, warehouse or sku does not exist."""

    sqlstate = "OD004"


class Forbidden(OrderDBError):
    """OD005: a customer-scoped call names another customer's order."""

    sqlstate = "OD005"


class IdempotencyConflict(OrderDBError):
    """OD006: an idempotency key was reused with a different request."""

    sqlstate = "OD006"


class InvalidInput(OrderDBError):
    """Class 22 (22023 and other data exceptions): bad arguments."""

    sqlstate = "22023"


BY_SQLSTATE: dict[str, type[OrderDBError]] = {
    cls.sqlstate: cls
    for cls in (
        InsufficientStock,
        VersionConflict,
        InvalidTransition,
        NotFound,
        Forbidden,
        IdempotencyConflict,
        InvalidInput,
    )
    if cls.sqlstate is not None
}


def from_psycopg(exc: psycopg.Error) -> OrderDBError | None:
    """The orderdb exception for a psycopg error, or None when it is not part of the contract."""
    state = exc.sqlstate
    if state is None:
        return None
    cls = BY_SQLSTATE.get(state)
    if cls is None and state.startswith("22"):
        cls = InvalidInput
    if cls is None:
        return None
    diag = exc.diag
    return cls(
        diag.message_primary or str(exc),
        sqlstate=state,
        detail=diag.message_detail,
        hint=diag.message_hint,
    )
