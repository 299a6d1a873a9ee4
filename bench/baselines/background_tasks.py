"""Seed 000's recommended fix: FastAPI `BackgroundTasks`, fire-and-forget.

The sync send runs after the response in the threadpool (40 threads): callers get 202 at
once, sends queue in process memory, and a crash or restart loses whatever is queued.
"""

from fastapi import BackgroundTasks, FastAPI, status

from bench.baselines.common import InviteRequest, send_and_log

app = FastAPI()


@app.post("/v1/invites", status_code=status.HTTP_202_ACCEPTED)
async def create_invite(invite: InviteRequest, background_tasks: BackgroundTasks) -> dict[str, str]:
    """Answer 202 and send after the response."""
    background_tasks.add_task(send_and_log, invite)
    return {"status": "queued"}
