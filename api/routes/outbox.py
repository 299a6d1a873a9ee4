"""`GET /dev/outbox`: read the emails the worker wrote instead of sending (no Resend key).

Development only: `create_app` adds these routes only with `DEV_PAGES=true` (`make dev`
sets it; no missing key turns them on), they answer only a request addressed to a loopback
name (`Host: localhost`, `127.0.0.1` or `[::1]`: a page of another site cannot reach them
through DNS rebinding; `Host` is no authentication), and every page is served with
`Content-Security-Policy: sandbox`, so an email's HTML runs no script and has no origin.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, status
from fastapi.responses import FileResponse, HTMLResponse

from api.deps import SettingsDep

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
SANDBOXED = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}


def host_name(host: str) -> str:
    """`Host` without its port: `localhost:8000` -> `localhost`, `[::1]:80` -> `[::1]`."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


async def loopback_host(host: Annotated[str, Header()] = "") -> None:
    """Only requests addressed to this machine by a loopback name."""
    if host_name(host.strip().lower()) not in LOOPBACK_HOSTS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the outbox is served on localhost only")


router = APIRouter(
    prefix="/dev/outbox",
    tags=["development"],
    include_in_schema=False,
    dependencies=[Depends(loopback_host)],
)


@router.get("", response_class=HTMLResponse)
async def list_outbox(settings: SettingsDep) -> HTMLResponse:
    """The local outbox, newest first (development only)."""
    directory = settings.outbox_dir
    files = sorted(directory.glob("*.html"), reverse=True) if directory.is_dir() else []
    items = "".join(
        f'<li><a href="/dev/outbox/{escape(f.name)}">{escape(f.stem)}</a> '
        f'(<a href="/dev/outbox/{escape(f.stem)}.eml">.eml</a>)</li>'
        for f in files[:500]
    )
    page = (
        "<!doctype html><title>durable-mail outbox</title><body style='font-family:sans-serif'>"
        "<h1>Dev outbox</h1><p>The outbox transport (no RESEND_API_KEY) wrote these emails "
        f"here: they were <strong>not sent</strong>.</p><ul>{items or '<li>empty</li>'}</ul></body>"
    )
    return HTMLResponse(page, headers=SANDBOXED)


@router.get("/{name}")
async def read_outbox_file(name: str, settings: SettingsDep) -> FileResponse:
    """One outbox file (.html to read, sandboxed; .eml to download)."""
    path: Path = settings.outbox_dir / name
    if path.suffix not in (".html", ".eml") or path.name != name or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such outbox file")
    media = "text/html" if path.suffix == ".html" else "message/rfc822"
    return FileResponse(path, media_type=media, headers=SANDBOXED)
