"""One way to connect to Temporal, shared by the worker, the API and the tooling."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from config import Settings

# Fail fast instead of retrying for ~10 s, so the API can answer 503 promptly.
API_RETRY = RetryConfig(max_retries=2, initial_interval_millis=100, max_interval_millis=500)


async def connect(
    settings: Settings,
    *,
    lazy: bool = False,
    retry_config: RetryConfig | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """Connect with Temporal's standard settings (address, namespace, API key, TLS)."""
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
    )
