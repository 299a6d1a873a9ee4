"""The codec server: `POST /codec/decode` and `/codec/encode` for the Web UI and the CLI.

Speaks Temporal's remote-codec protocol (proto JSON `{"payloads": [...]}`) so an operator
sees decrypted payloads (`temporal workflow show --codec-endpoint`). Operators only: an
operator key as bearer, or the Web UI's capability URL `/codec/<CODEC_UI_SECRET>/...`
(the UI cannot send a key). A tenant's key decrypts nothing (403): payloads of every
tenant pass through here. `RequestGuard` authenticates and answers the CORS preflight.
"""

from __future__ import annotations

from typing import Annotated

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import OperatorDep, SettingsDep
from infra.codec import CodecKeyError, EncryptionCodec
from infra.temporal_client import payload_codec

router = APIRouter(prefix="/codec", tags=["codec"], include_in_schema=False)


async def get_codec(settings: SettingsDep) -> EncryptionCodec:
    codec = payload_codec(settings)
    if codec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "payload encryption is not configured")
    return codec


CodecDep = Annotated[EncryptionCodec, Depends(get_codec)]


async def _payloads(request: Request) -> list[Payload]:
    try:
        parsed = json_format.Parse(await request.body(), Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, 'expected {"payloads": [...]} in proto JSON'
        ) from None
    return list(parsed.payloads)


def _answer(payloads: list[Payload]) -> JSONResponse:
    return JSONResponse({"payloads": [json_format.MessageToDict(p) for p in payloads]})


@router.post("/decode")
@router.post("/{capability}/decode")
async def decode(request: Request, operator: OperatorDep, codec: CodecDep) -> JSONResponse:
    """Decrypt payloads for an authorised operator (Web UI, `temporal --codec-endpoint`)."""
    try:
        return _answer(await codec.decode(await _payloads(request)))
    except (CodecKeyError, InvalidTag, ValueError) as err:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"cannot decrypt: {type(err).__name__}"
        ) from None


@router.post("/encode")
@router.post("/{capability}/encode")
async def encode(request: Request, operator: OperatorDep, codec: CodecDep) -> JSONResponse:
    """Encrypt payloads with the current key (e.g. a signal sent from the Web UI)."""
    return _answer(await codec.encode(await _payloads(request)))
