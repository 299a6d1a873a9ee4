"""Seed 003's bug: a blocking provider call (`requests` via the sync SDK) inside `async def`.

The call runs on the event loop itself, so the whole server handles one request at a time.
"""

from fastapi import FastAPI, status

from bench.baselines.common import InviteRequest, send_invite_email

app = FastAPI()


@app.post("/v1/invites", status_code=status.HTTP_202_ACCEPTED)
async def create_invite(invite: InviteRequest) -> dict[str, str]:
    """Send the invite (blocking the event loop), then answer."""
    send_invite_email(invite)
    return {"status": "sent"}
