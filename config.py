"""Settings for the API and the worker, read once from the environment or `.env`.

Temporal's connection uses Temporal's own variable names (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS`) so the `temporal` CLI, the
worker and the API always agree on where the server is.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

RESEND_DEFAULT_URL = "https://api.resend.com"
# Default queue names, one home: the workflows' DeliveryPolicy defaults to SEND_TASK_QUEUE too.
# 1.0 runs on Worker Versioning on queues of its own: executions started by 0.1.0 (unversioned,
# on "durable-mail" and "durable-mail-send") drain there on the 0.1.0 worker (docs/upgrading.md).
TASK_QUEUE = "durable-mail-v1"
SEND_TASK_QUEUE = "durable-mail-send-v1"
# 0.1.0's queues, for the docs and the upgrade test.
TASK_QUEUE_0_1 = "durable-mail"
SEND_TASK_QUEUE_0_1 = "durable-mail-send"
# Temporal caps a fairness key's length (sends' and app webhook deliveries' keys).
MAX_FAIRNESS_KEY = 64
DEPLOYMENT_NAME = "durable-mail"
# The code a build id stands for: what workflows run and what activities do.
BUILD_SOURCES = ("workflows", "activities")
# An API key given as its SHA-256 digest (so a tenants file holds no secret).
KEY_DIGEST_PREFIX = "sha256:"
_KEY_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Tenant ids reach visibility queries (`TenantId = "..."`): only these characters, ever.
TENANT_ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
TenantIdText = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=TENANT_ID_PATTERN)
]


def source_build_id(root: Path | None = None) -> str:
    """A short hash of the workflow and activity sources under `root` (this checkout): the
    default build id, so a code change is a new Worker Deployment Version (`make dev`)."""
    base = root or Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for folder in BUILD_SOURCES:
        for path in sorted((base / folder).rglob("*.py")):
            digest.update(path.relative_to(base).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return "dev-" + digest.hexdigest()[:12]


def sender_domain(sender: str) -> str:
    """The normalised domain of `addr` or `Name <addr>` (lower case, IDNA); ValueError if none."""
    address = sender.rpartition("<")[2].rstrip(">").strip() if "<" in sender else sender.strip()
    try:
        return validate_email(address, check_deliverability=False).ascii_domain.lower()
    except EmailNotValidError as err:
        raise ValueError(f"not an email address: {err}") from None


def canonical_sender(sender: str) -> str:
    """`addr` or `Name <addr>` with its domain as the sender checks read it (IDNA ASCII, lower
    case), so what is forwarded is what was checked; unparsable: as given (refused later)."""
    name, bracket, rest = sender.rpartition("<")
    address = rest.rstrip(">").strip() if bracket else sender.strip()
    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return sender
    canonical = f"{valid.local_part}@{valid.ascii_domain.lower()}"
    return f"{name.strip()} <{canonical}>" if bracket and name.strip() else canonical


def normalise_domain(domain: str) -> str:
    """A sender domain as configured -> as `sender_domain` returns it (lower case, IDNA)."""
    try:
        return sender_domain(f"postmaster@{domain.strip()}")
    except ValueError:
        raise ValueError(f"not a domain name: {domain!r}") from None


def key_digest(key: str) -> bytes:
    """The SHA-256 digest of an API key; a configured `sha256:<hex>` is that digest."""
    if key.startswith(KEY_DIGEST_PREFIX):
        return bytes.fromhex(key.removeprefix(KEY_DIGEST_PREFIX))
    return hashlib.sha256(key.encode()).digest()


def _check_key(key: SecretStr) -> SecretStr:
    value = key.get_secret_value()
    if not value.strip():
        raise ValueError("an API key cannot be empty")
    if value.startswith(KEY_DIGEST_PREFIX) and not _KEY_DIGEST.fullmatch(value):
        raise ValueError("a key digest is sha256: and 64 lower-case hex digits")
    return key


# Minimum strength of the secrets we accept (a digest `sha256:<hex>` is the operator's word).
MIN_KEY_CHARS, MIN_KEY_DISTINCT = 16, 8
MIN_SECRET_CHARS, MIN_SECRET_DISTINCT = 32, 10


def _weak(value: str, chars: int, distinct: int) -> bool:
    return not value.startswith(KEY_DIGEST_PREFIX) and (
        len(value) < chars or len(set(value)) < distinct
    )


def weak_secret_problem(settings: Settings) -> str | None:
    """The first too-weak secret setting, named (never its value); None if all are strong.

    API keys (operator and tenant) need 16 characters, 8 of them distinct; CODEC_UI_SECRET
    and INVITE_TOKEN_SECRET 32, 10 distinct: `make dev` and `openssl rand -hex 32` give more.
    """
    key_rule = f"at least {MIN_KEY_CHARS} characters, {MIN_KEY_DISTINCT} of them distinct"
    if any(_weak(key, MIN_KEY_CHARS, MIN_KEY_DISTINCT) for key in settings.api_key_list):
        return f"API_KEYS: a key is too weak: {key_rule} (or its sha256: digest)"
    for tenant_id, tenant in settings.tenants.items():
        for key in tenant.api_keys:
            if _weak(key.get_secret_value(), MIN_KEY_CHARS, MIN_KEY_DISTINCT):
                return f"TENANTS: a key of tenant {tenant_id!r} is too weak: {key_rule}"
    secret_rule = f"at least {MIN_SECRET_CHARS} characters, {MIN_SECRET_DISTINCT} of them distinct"
    for name, secret in (
        ("CODEC_UI_SECRET", settings.codec_ui_secret),
        ("INVITE_TOKEN_SECRET", settings.invite_token_secret),
    ):
        value = secret.get_secret_value() if secret else ""
        if value and _weak(value, MIN_SECRET_CHARS, MIN_SECRET_DISTINCT):
            return f"{name} is too weak: {secret_rule} (e.g. openssl rand -hex 32)"
    return None


HEX_COLOR = r"^#(?:[0-9A-Fa-f]{3}){1,2}$"
# A host name or an IP address as `urlsplit(...).hostname` gives it (lower case, no port).
HOST_NAME = re.compile(r"[a-z0-9.-]+|[0-9a-f:]+")


class BrandConfig(BaseModel):
    """A tenant's look in its emails (templates/_layouts): each unset part is our default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    product_name: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    logo_url: (
        Annotated[str, StringConstraints(max_length=2000, pattern=r"^https://[^\s\"'<>\\]+$")]
        | None
    ) = None
    accent_color: Annotated[str, StringConstraints(pattern=HEX_COLOR)] | None = None
    footer: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None


class TenantConfig(BaseModel):
    """One tenant: the keys that act for it and the domains it may send from.

    Other settings of a tenant are added here as fields (unknown fields are refused, so a
    typo in a tenants file fails at startup instead of being ignored).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    # Plain keys, or `sha256:<hex>` digests of them; two at once during a rotation.
    api_keys: list[SecretStr] = Field(min_length=1)
    # `from` must be an address at one of these domains (exact match, case-insensitive).
    sender_domains: list[str] = Field(min_length=1)
    # The tenant's default sender (when a request has no `from`, and for invites);
    # unset: EMAIL_FROM, which must then be at one of `sender_domains`.
    email_from: str | None = None
    # The app page our invite links go to (`{app_base_url}/invites/accept?...`); unset:
    # APP_BASE_URL.
    app_base_url: str | None = None
    # Hosts an app's own invite `accept_url` may point at; unset: app_base_url's host.
    invite_url_hosts: list[str] | None = None
    # Product name, logo URL, accent colour and footer of the tenant's emails.
    brand: BrandConfig | None = None

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        return [_check_key(key) for key in keys]

    @field_validator("sender_domains")
    @classmethod
    def _domains(cls, domains: list[str]) -> list[str]:
        return [normalise_domain(domain) for domain in domains]

    @field_validator("invite_url_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str] | None) -> list[str] | None:
        if hosts is None:
            return None
        normalised = [host.strip().lower() for host in hosts]
        for host in normalised:
            if not HOST_NAME.fullmatch(host):
                raise ValueError(f"not a host name (no scheme, port or path): {host!r}")
        return normalised

    @field_validator("app_base_url")
    @classmethod
    def _app_url(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
            raise ValueError("app_base_url must be an http(s) URL without query or fragment")
        return url

    @field_validator("email_from")
    @classmethod
    def _canonical_email_from(cls, sender: str | None) -> str | None:
        return canonical_sender(sender) if sender is not None else None

    @model_validator(mode="after")
    def _email_from_is_ours(self) -> TenantConfig:
        sender = self.email_from
        if sender is not None and sender_domain(sender) not in self.sender_domains:
            raise ValueError("email_from must be an address at one of sender_domains")
        return self


class Settings(BaseSettings):
    """Everything the processes need; secrets are `SecretStr` and have no default."""

    # Errors name the field, never echo its value (TENANTS and API_KEYS hold keys).
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    temporal_tls: bool = False

    # Queue names: one for workflows, one for provider calls (rate-limited queue-wide).
    task_queue: str = TASK_QUEUE
    send_task_queue: str = SEND_TASK_QUEUE
    # Worker Versioning: the workers run as Worker Deployment Version (name, build id). The
    # default build id hashes workflows/ and activities/ (fine for `make dev`); a release
    # sets its own (e.g. WORKER_BUILD_ID=1.0.0). WORKER_VERSIONING=false runs unversioned
    # (a test server without deployments). A version takes new executions once it is the
    # deployment's Current Version: an operator sets it (docs/upgrading.md), or the worker
    # itself when WORKER_SET_CURRENT=true (`make dev`, tests).
    worker_deployment_name: str = Field(default=DEPLOYMENT_NAME, min_length=1)
    worker_build_id: str = Field(default_factory=source_build_id, min_length=1)
    worker_versioning: bool = True
    worker_set_current: bool = False

    # With no key, the worker writes every email to `outbox_dir` instead of sending it.
    resend_api_key: SecretStr | None = None
    resend_api_url: str = RESEND_DEFAULT_URL
    resend_timeout_seconds: float = Field(default=15.0, gt=0)
    # Resend's default limit is 2 requests/s per team; enforced task-queue-wide by the server.
    resend_rate_limit_per_second: float = Field(default=2.0, gt=0)
    outbox_dir: Path = Path(".dev/outbox")
    # The development pages (`/dev/outbox`, its invite accept page): no key, every tenant's
    # outbox, and the accept page accepts any tenant's invite. Only `make dev` turns them on;
    # never decided by a missing provider key (an SMTP-only deployment has none).
    dev_pages: bool = False
    # The providers, in order of preference (`resend`, `smtp`; `resend,smtp` fails over to
    # SMTP only when Resend provably did not take an email: docs/providers.md). Unset:
    # Resend when RESEND_API_KEY is set, else the outbox.
    providers: str | None = None
    # `smtp://user:pass@host:port` (`smtps://`: implicit TLS; `?starttls=true`: STARTTLS).
    smtp_url: SecretStr | None = None
    # A CA bundle to trust for the relay's certificate (a private relay, tests); checks stay on.
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(default=15.0, gt=0)
    smtp_max_message_bytes: int = Field(default=25 * 1024 * 1024, gt=0)

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
    # Each cached open invite costs ~220 kB in the worker (bench/invite_memory.py): the cache,
    # not the number of open invites, bounds its memory; evicted ones replay on demand.
    worker_max_cached_workflows: int = Field(default=1000, ge=0)

    # Operator keys of the API (act on every tenant), comma-separated: several at once so
    # they can be rotated; `sha256:<hex>` digests work too. The API refuses to start without
    # any key, operator or tenant (`make dev` generates `.dev/api_key`).
    api_keys: SecretStr | None = None
    # Tenants: `{"acme": {"api_keys": [...], "sender_domains": ["acme.com"]}, ...}` as JSON
    # (TENANTS), or a TOML or JSON file of the same shape (TENANTS_FILE); not both.
    tenants: Annotated[dict[TenantIdText, TenantConfig], NoDecode] = Field(default_factory=dict)
    tenants_file: Path | None = None
    # Domains operator keys may send from, comma-separated; unset: EMAIL_FROM's domain.
    sender_domains: str = ""
    # Per tenant (operator keys: per key) and per API process (an in-memory token bucket).
    api_rate_limit_per_second: float = Field(default=200.0, gt=0)
    api_rate_limit_burst: int = Field(default=400, gt=0)
    max_request_bytes: int = Field(default=512 * 1024, gt=0)

    # `keyid:base64-32-bytes,...`: the first key encrypts, every key decrypts (rotation).
    # Required: the worker and the API refuse to start without it...
    payload_codec_keys: SecretStr | None = None
    # ...unless the operator explicitly accepts clear payloads (warned at every start).
    allow_plaintext_payloads: bool = False
    # Comma-separated origins allowed to call the codec server (the Temporal Web UI).
    codec_cors_origins: str = "http://localhost:8233"
    # The Web UI cannot send an API key: it decodes through `/codec/<this secret>/...`,
    # a capability URL (whoever has the URL may decode). Unset: only operator keys decode.
    codec_ui_secret: SecretStr | None = None
    # Due single sends share provider batch calls through this many coalescer workflows per
    # send queue (docs/coalescing.md); 0 turns coalescing off (each send is its own call).
    coalesce_shards: int = Field(default=2, ge=0, le=64)

    # App webhooks (docs/webhooks.md): endpoints a tenant registers for our email events.
    # true: http and private, loopback or link-local endpoints too (development, tests).
    webhook_allow_private_urls: bool = False
    # Seconds between a failed delivery and the next try, after an immediate first one
    # (Resend's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; 27.6 h in all).
    webhook_retry_delays: str = "5,300,1800,7200,18000,36000,36000"
    # One delivery attempt: connect, send and read the answer (bounded) within this.
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    webhook_max_endpoints: int = Field(default=20, gt=0)

    @field_validator("tenants", mode="before")
    @classmethod
    def _tenants_json(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        # `TENANTS=` (set but empty, as compose passes an unset variable) means none.
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except ValueError:
            # Not the parser's message: it could quote the text, keys included.
            raise ValueError("TENANTS is not a JSON object") from None

    @model_validator(mode="after")
    def _load_tenants_file(self) -> Settings:
        if self.tenants_file is None:
            return self
        if self.tenants:
            raise ValueError("set TENANTS or TENANTS_FILE, not both")
        self.tenants = _read_tenants_file(self.tenants_file)
        return self

    @model_validator(mode="after")
    def _one_holder_per_key(self) -> Settings:
        holders: dict[bytes, str] = {}
        for key in self.api_key_list:
            holders.setdefault(key_digest(key), "API_KEYS")
        for tenant_id, tenant in self.tenants.items():
            for secret in tenant.api_keys:
                holder = holders.setdefault(key_digest(secret.get_secret_value()), tenant_id)
                if holder != tenant_id:
                    raise ValueError(
                        f"an API key of tenant {tenant_id!r} is also a key of {holder!r}: "
                        "each key acts for one holder only"
                    )
        return self

    @field_validator("email_from")
    @classmethod
    def _canonical_default_sender(cls, sender: str) -> str:
        return canonical_sender(sender)

    @field_validator(
        "invite_token_secret", "template_dir", "smtp_url", "smtp_ca_file", mode="before"
    )
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
        """The operator keys (empty when none is configured)."""
        return _split(self.api_keys.get_secret_value() if self.api_keys else "")

    @property
    def operator_sender_domains(self) -> list[str]:
        """Where operator keys may send from: SENDER_DOMAINS, else EMAIL_FROM's domain."""
        configured = _split(self.sender_domains)
        if configured:
            return [normalise_domain(domain) for domain in configured]
        return [sender_domain(self.email_from)]

    @property
    def codec_cors_origin_list(self) -> list[str]:
        return _split(self.codec_cors_origins)

    @property
    def webhook_retry_delay_list(self) -> list[float]:
        """WEBHOOK_RETRY_DELAYS as seconds (a malformed list fails at first use, loudly)."""
        return [float(delay) for delay in _split(self.webhook_retry_delays)]


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _read_tenants_file(path: Path) -> dict[str, TenantConfig]:
    """A TOML file (`[acme]` tables) or, for any other suffix, a JSON object."""
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except OSError as err:
        raise ValueError(f"TENANTS_FILE {path}: {err.strerror}") from None
    except ValueError as err:  # TOMLDecodeError and JSONDecodeError (positions, no text)
        raise ValueError(f"TENANTS_FILE {path} does not parse: {err}") from None
    return _TENANTS.validate_python(data)


_TENANTS: TypeAdapter[dict[str, TenantConfig]] = TypeAdapter(
    dict[TenantIdText, TenantConfig], config=ConfigDict(hide_input_in_errors=True)
)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once (tests override with `cache_clear`)."""
    return Settings()
