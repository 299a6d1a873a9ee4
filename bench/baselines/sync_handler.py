"""Seed 000 as found: a sync `def` handler that sends before answering.

FastAPI runs `def` handlers in its threadpool (40 threads), so at most 40 sends are in
flight and each caller waits for the provider's full latency.
"""

from fastapi import FastAPI, status

from bench.baselines.common import InviteRequest, send_invite_email

app = FastAPI()


@app.post("/v1/invites", status_code=status.HTTP_202_ACCEPTED)
def create_invite(invite: InviteRequest) -> dict[str, str]:
    """Send the invite, then answer."""
    send_invite_email(invite)
    return {"status": "sent"}
