"""`/dev/outbox/invites/accept`: the app's accept page, stood in for by `make dev`.

Our invite links go to `{APP_BASE_URL}/invites/accept?invite=…&token=…`, a page of the
app. `make dev` has no app, so it sets `APP_BASE_URL` to `/dev/outbox` of the API: the
link in an outbox email opens this page, which shows the invite and accepts it with the
token (`POST`), as the app's page would by calling `POST /v1/invites/{id}/accept`.

Development only, like the outbox: added with `DEV_PAGES=true` alone (it accepts any
tenant's invite, as an operator), answered only to a loopback `Host`, and served sandboxed
(forms allowed, no script).
"""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from api.deps import SettingsDep, TemporalClientDep
from api.errors import SendError
from api.invites import accept_invite, presented_digest
from api.routes.outbox import loopback_host
from api.tenants import Caller

PAGE_HEADERS = {
    "Content-Security-Policy": "sandbox allow-forms",
    "X-Content-Type-Options": "nosniff",
}
# The page accepts as the app would, with the invite's token; the caller is no tenant's.
DEV_PAGE = Caller(key_id="dev-accept-page", operator=True)

router = APIRouter(
    prefix="/dev/outbox/invites",
    tags=["development"],
    include_in_schema=False,
    dependencies=[Depends(loopback_host)],
)


def _page(title: str, body: str) -> HTMLResponse:
    page = (
        f"<!doctype html><title>{escape(title)}</title>"
        "<body style='font-family:sans-serif;max-width:40em'>"
        f"<h1>{escape(title)}</h1>{body}"
        "<p><small>Dev stand-in for your app's accept page (<code>make dev</code>). "
        "Your app calls <code>POST /v1/invites/{id}/accept</code> with the token. "
        "<a href='/dev/outbox'>Back to the outbox</a></small></p></body>"
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/accept", response_class=HTMLResponse)
async def show(request: Request) -> HTMLResponse:
    """The invite of the link, and a button that accepts it."""
    invite = request.query_params.get("invite", "")
    token = request.query_params.get("token", "")
    query = escape(urlencode({"invite": invite, "token": token}))
    form = (
        f"<p>Invite <code>{escape(invite)}</code>.</p>"
        f"<form method='post' action='/dev/outbox/invites/accept?{query}'>"
        "<button type='submit'>Accept the invite</button></form>"
    )
    return _page("You are invited", form)


@router.post("/accept", response_class=HTMLResponse)
async def accept(
    request: Request, client: TemporalClientDep, settings: SettingsDep
) -> HTMLResponse:
    """Accept with the link's token: what `POST /v1/invites/{id}/accept` answers, in words."""
    params = {k: v[0] for k, v in parse_qs(request.url.query).items()}
    invite = params.get("invite", "")
    digest = presented_digest(settings, params.get("token"))
    try:
        state = await accept_invite(client, invite, digest, DEV_PAGE)
    except SendError as exc:
        return _page("Not accepted", f"<p>{escape(exc.detail)}</p>")
    role = f" as <strong>{escape(state.role)}</strong>" if state.role else ""
    return _page("Accepted", f"<p>{escape(state.to)} joined{role}.</p>")
