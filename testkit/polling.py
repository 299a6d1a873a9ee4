"""The one way to wait for something: poll a condition until it holds or a deadline passes.

Never a bare sleep "to give it time": a wait names what it waits for, and fails loudly
with the last value seen when that does not come.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


class ConditionTimeout(AssertionError):
    """A condition did not hold before its deadline."""


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Call `check` (plain or async) until it returns a truthy value, and return that value.

    Raises `ConditionTimeout` at the deadline. An exception from `check` ends the wait at
    once (a process that exited before it became ready, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ConditionTimeout(f"{what} not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)
