"""Temporal's client failures as the service's domain errors (`api.errors`), and the
timeouts every call of the service uses. `api.error_handlers` answers them in HTTP."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import WorkflowFailureError
from temporalio.converter import value_to_type
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import NotFound, NotRecorded, Unavailable

log = logging.getLogger("durable_mail.api")

RPC_TIMEOUT = timedelta(seconds=5)
# How long a read waits for the workflow's own answer (a worker) before it answers from
# what the server knows; how long a cancel waits before it is recorded as a request.
QUERY_TIMEOUT = timedelta(seconds=1)
CANCEL_WAIT = timedelta(seconds=1)
UNAVAILABLE_CODES = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.UNKNOWN,
}
NO_SUCH_EMAIL = "no email with this id"
NO_SUCH_BATCH = "no batch with this id"
T = TypeVar("T")


@contextmanager
def temporal_errors(*, accepting: bool = False) -> Iterator[None]:
    """Temporal client failures as domain errors: unknown workflow, or Temporal unavailable
    (`NotRecorded` while accepting a send: then nothing was accepted)."""
    unavailable = NotRecorded if accepting else Unavailable
    try:
        yield
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(NO_SUCH_EMAIL) from None
        if err.status not in UNAVAILABLE_CODES:
            # Unexpected (e.g. permission denied): nothing was accepted either.
            log.error("temporal error: %s", err.status)
        raise unavailable(err.message) from None
    except RuntimeError as err:
        # A lazy client that has never reached the server fails its first call this way.
        if "client connect" in str(err):
            raise unavailable("cannot connect to Temporal") from None
        raise


async def unless_not_found(call: Awaitable[T]) -> T | None:
    """`call`'s answer; None if Temporal has no such workflow (other errors raise)."""
    try:
        return await call
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def failed_status(result: Awaitable[Any], status_type: type[T]) -> T:
    """A failed send's status: its workflow fails with the status as the failure's details."""
    try:
        await result
    except WorkflowFailureError as failure:
        cause = failure.cause
        if isinstance(cause, ApplicationError) and cause.details:
            state: T = value_to_type(status_type, cause.details[0], [])
            return state
    raise Unavailable("failed workflow without a recorded status")
