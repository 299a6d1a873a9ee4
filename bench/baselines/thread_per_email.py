"""Seed 004's design: `threading.Thread(target=send).start()` per email, then answer.

No queue and no bound: every accepted email is a live thread until the provider answers;
a crash loses every thread still running.
"""

import threading

from fastapi import FastAPI, status

from bench.baselines.common import InviteRequest, send_and_log

app = FastAPI()


@app.post("/v1/invites", status_code=status.HTTP_202_ACCEPTED)
async def create_invite(invite: InviteRequest) -> dict[str, str]:
    """Start a thread that sends the invite, and answer."""
    threading.Thread(target=send_and_log, args=(invite,), daemon=True).start()
    return {"status": "queued"}
