"""Seeds 001/002's design in Python: an un-awaited async send (`asyncio.create_task`).

The NestJS plan's "fire-and-forget call" without a job queue: fast, in-memory only, lost
on a crash. Tasks are kept in a set so the loop does not garbage-collect them mid-send.
"""

import asyncio

from fastapi import FastAPI, status

from bench.baselines.common import InviteRequest, send_and_log_async

app = FastAPI()
_pending: set[asyncio.Task[None]] = set()


@app.post("/v1/invites", status_code=status.HTTP_202_ACCEPTED)
async def create_invite(invite: InviteRequest) -> dict[str, str]:
    """Schedule the send on the event loop, and answer."""
    task = asyncio.create_task(send_and_log_async(invite))
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    return {"status": "queued"}
