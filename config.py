"""Settings for the API and the worker, read once from the environment or `.env`.

Temporal's connection uses Temporal's own variable names (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS`) so the `temporal` CLI, the
worker and the API always agree on where the server is.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RESEND_DEFAULT_URL = "https://api.resend.com"
# Default queue names, one home: the workflows' DeliveryPolicy defaults to SEND_TASK_QUEUE too.
TASK_QUEUE = "durable-mail"
SEND_TASK_QUEUE = "durable-mail-send"


class Settings(BaseSettings):
    """Everything the processes need; secrets are `SecretStr` and have no default."""

    # Errors never echo a value: most of these are secrets.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    temporal_tls: bool = False

    # Queue names: one for workflows, one for provider calls (rate-limited queue-wide).
    task_queue: str = TASK_QUEUE
    send_task_queue: str = SEND_TASK_QUEUE

    # With no key, the worker writes every email to `outbox_dir` instead of sending it.
    resend_api_key: SecretStr | None = None
    resend_api_url: str = RESEND_DEFAULT_URL
    resend_timeout_seconds: float = Field(default=15.0, gt=0)
    # Resend's default limit is 2 requests/s per team; enforced task-queue-wide by the server.
    resend_rate_limit_per_second: float = Field(default=2.0, gt=0)
    outbox_dir: Path = Path(".dev/outbox")

    email_from: str = "durable-mail <onboarding@resend.dev>"
    # The app's page that accepts invites (`{APP_BASE_URL}/invites/accept?invite=&token=`);
    # its host is also where an app's own `accept_url` may point unless a tenant says more.
    app_base_url: str = "http://localhost:8000"
    # Derives managed invite tokens (API and worker need the same one); unset: invites
    # without an `accept_url` are refused with 503. Changing it voids unaccepted tokens.
    invite_token_secret: SecretStr | None = Field(default=None, min_length=32)
    # The operator's email templates, searched before the built-in `templates/`.
    template_dir: Path | None = None

    # Retry schedule of a send, carried in each workflow's input so a workflow never
    # reads settings. The window stays below Resend's 24 h idempotency window.
    send_initial_backoff_seconds: float = Field(default=2.0, gt=0)
    send_max_backoff_seconds: float = Field(default=300.0, gt=0)
    send_window_seconds: float = Field(default=23 * 3600.0, gt=0, le=23 * 3600.0)
    send_attempt_timeout_seconds: float = Field(default=30.0, gt=0)

    # After the send, how long a workflow waits for the provider's delivery events.
    delivery_wait_seconds: float = Field(default=72 * 3600.0, ge=0)
    # Svix signing secret of the Resend webhook (`whsec_...`); unset: the route answers 503.
    resend_webhook_secret: SecretStr | None = None
    # Prometheus endpoint of the worker (Temporal SDK metrics and ours); 0 turns it off.
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    worker_metrics_host: str = "0.0.0.0"

    worker_max_concurrent_activities: int = Field(default=200, gt=0)
    # Each cached workflow costs ~90 kB in the worker (measured); evicted ones replay on demand.
    worker_max_cached_workflows: int = Field(default=1000, ge=0)

    # Bearer keys of the API, comma-separated: several at once so they can be rotated.
    # The API refuses to start without one (`make dev` generates `.dev/api_key`).
    api_keys: SecretStr | None = None
    # Per API key and per API process (an in-memory token bucket): N processes allow N times.
    api_rate_limit_per_second: float = Field(default=200.0, gt=0)
    api_rate_limit_burst: int = Field(default=400, gt=0)
    max_request_bytes: int = Field(default=512 * 1024, gt=0)

    # `keyid:base64-32-bytes,...`: the first key encrypts, every key decrypts (rotation).
    # Unset: payloads are stored in Temporal in the clear (a warning is logged).
    payload_codec_keys: SecretStr | None = None
    # Comma-separated origins allowed to call the codec server (the Temporal Web UI).
    codec_cors_origins: str = "http://localhost:8233"
    # Development only: a browser on this machine, from a CORS origin, may decode without
    # an API key (the local Web UI cannot send one). Never set where the API is exposed.
    codec_trust_local_ui: bool = False

    @field_validator("invite_token_secret", "template_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker-compose passes an unset variable on as "": that means not configured.
        return None if value == "" else value

    @property
    def outbox_mode(self) -> bool:
        """True when no Resend key is set: emails go to the local outbox."""
        return self.resend_api_key is None or not self.resend_api_key.get_secret_value()

    @property
    def api_key_list(self) -> list[str]:
        """The accepted bearer keys (empty when none is configured)."""
        return _split(self.api_keys.get_secret_value() if self.api_keys else "")

    @property
    def codec_cors_origin_list(self) -> list[str]:
        return _split(self.codec_cors_origins)


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once (tests override with `cache_clear`)."""
    return Settings()
