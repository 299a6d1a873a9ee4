"""Raw ASGI input and output of the API's gate: a body read within a limit and handed on,
CORS headers on an answer, and the answer to a CORS preflight."""

from __future__ import annotations

from starlette.types import Message, Receive, Send

# What the codec's browser callers (the Temporal Web UI) may send.
CORS_HEADERS = "authorization, content-type, x-namespace"


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes | None:
    """The whole body, or None once it exceeds `limit` (a declared length is checked first)."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def with_cors(send: Send, origin: str) -> Send:
    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *cors_headers(origin)]}
        await send(message)

    return send_with_cors


def cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"vary", b"Origin"),
    ]


async def preflight(send: Send, origin: str | None) -> None:
    headers = [(b"content-length", b"0")]
    if origin is not None:
        headers += [
            *cors_headers(origin),
            (b"access-control-allow-methods", b"POST, OPTIONS"),
            (b"access-control-allow-headers", CORS_HEADERS.encode()),
            (b"access-control-max-age", b"600"),
        ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
