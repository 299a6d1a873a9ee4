"""The ceiling of the HTTP layer: same endpoint and body validation, answers 202, sends nothing."""

from fastapi import FastAPI, status

from bench.baselines.common import InviteRequest

app = FastAPI()


@app.post("/v1/invites", status_code=status.HTTP_202_ACCEPTED)
async def create_invite(invite: InviteRequest) -> dict[str, str]:
    """Validate and answer; no email."""
    return {"status": "accepted"}
