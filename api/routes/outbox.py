"""`GET /dev/outbox`: read the emails the worker wrote instead of sending (no Resend key)."""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, HTMLResponse

from api.deps import SettingsDep

router = APIRouter(prefix="/dev/outbox", tags=["development"], include_in_schema=False)


def _outbox(settings: SettingsDep) -> Path:
    if not settings.outbox_mode:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "outbox mode is off (RESEND_API_KEY set)")
    return settings.outbox_dir


@router.get("", response_class=HTMLResponse)
async def list_outbox(settings: SettingsDep) -> str:
    """The local outbox, newest first (development only)."""
    directory = _outbox(settings)
    files = sorted(directory.glob("*.html"), reverse=True) if directory.is_dir() else []
    items = "".join(
        f'<li><a href="/dev/outbox/{escape(f.name)}">{escape(f.stem)}</a> '
        f'(<a href="/dev/outbox/{escape(f.stem)}.eml">.eml</a>)</li>'
        for f in files[:500]
    )
    return (
        "<!doctype html><title>durable-mail outbox</title><body style='font-family:sans-serif'>"
        "<h1>Dev outbox</h1><p>No RESEND_API_KEY is set: these emails were written here, "
        f"<strong>not sent</strong>.</p><ul>{items or '<li>empty</li>'}</ul></body>"
    )


@router.get("/{name}")
async def read_outbox_file(name: str, settings: SettingsDep) -> FileResponse:
    """One outbox file (.html to read, .eml to download)."""
    directory = _outbox(settings)
    path = directory / name
    if path.suffix not in (".html", ".eml") or path.name != name or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such outbox file")
    media = "text/html" if path.suffix == ".html" else "message/rfc822"
    return FileResponse(path, media_type=media)
