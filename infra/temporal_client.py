"""One way to connect to Temporal, shared by the worker, the API and the tooling.

Every process gets the same data converter here: payloads encrypted by `EncryptionCodec`
(failure details included), so the Temporal database holds no recipient, token or body in
the clear. Failure messages stay readable (the Web UI's rows say why an attempt failed): they
are our own words, never a provider's text (see `activities.send`).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.converter import DataConverter, DefaultFailureConverter
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from config import Settings
from infra.codec import CodecKeyError, EncryptionCodec
from infra.payloads import PayloadConverter

log = logging.getLogger("durable_mail.codec")

# Fail fast instead of retrying for ~10 s, so the API can answer 503 promptly.
API_RETRY = RetryConfig(max_retries=2, initial_interval_millis=100, max_interval_millis=500)
MAKE_A_KEY = (
    "python -c 'import base64,os; "
    """print("2026-01:" + base64.b64encode(os.urandom(32)).decode())'"""
)
NO_CODEC_KEYS = (
    "PAYLOAD_CODEC_KEYS is not set: refusing to store recipients, subjects and bodies in "
    f"Temporal in the clear. Make a key with {MAKE_A_KEY} and set PAYLOAD_CODEC_KEYS to it "
    "(or set ALLOW_PLAINTEXT_PAYLOADS=true to accept clear payloads)"
)
PLAINTEXT_WARNING = (
    "ALLOW_PLAINTEXT_PAYLOADS is set and PAYLOAD_CODEC_KEYS is not: recipients, subjects, "
    "bodies and invite tokens are stored in Temporal in the clear"
)


def encryption_problem(settings: Settings) -> str | None:
    """Why the worker or the API must not start (one line), or None.

    Payload keys missing (unless ALLOW_PLAINTEXT_PAYLOADS), or malformed.
    """
    try:
        codec = payload_codec(settings)
    except CodecKeyError as err:
        return str(err)
    if codec is None and not settings.allow_plaintext_payloads:
        return NO_CODEC_KEYS
    return None


def warn_if_plaintext(settings: Settings) -> None:
    """The warning of every start that runs with clear payloads (explicitly allowed)."""
    if payload_codec(settings) is None:
        log.warning(PLAINTEXT_WARNING)


async def connect(
    settings: Settings,
    *,
    lazy: bool = False,
    retry_config: RetryConfig | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """Connect with Temporal's standard settings (address, namespace, API key, TLS)."""
    converter = data_converter(settings)
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=api_key,
        tls=settings.temporal_tls or bool(api_key),
        lazy=lazy,
        retry_config=retry_config,
        runtime=runtime,
        connect_timeout=timedelta(seconds=5),
        data_converter=converter,
    )


def payload_codec(settings: Settings) -> EncryptionCodec | None:
    """The codec of PAYLOAD_CODEC_KEYS, or None when encryption is not configured."""
    keys = settings.payload_codec_keys.get_secret_value() if settings.payload_codec_keys else ""
    return EncryptionCodec.from_config(keys) if keys.strip() else None


def data_converter(settings: Settings) -> DataConverter:
    """The converter of every client (API, worker, replayer, tests): same codec everywhere."""
    return dataclasses.replace(
        DataConverter.default,
        payload_converter_class=PayloadConverter,
        payload_codec=payload_codec(settings),
        failure_converter_class=DefaultFailureConverter,
    )
