"""Who is calling, and what that caller may see and send.

A bearer key resolves to a `Caller`: an operator (a key of `API_KEYS`, acts on every tenant)
or one tenant (a key of `TENANTS`). The service scopes every read, list and cancel with
`Caller.sees` and every write with `Caller.tenant_for`; `check_sender` keeps a tenant to its
own sender domains. Nothing here knows HTTP: refusals are the domain errors of `api.errors`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from activities.types import Brand
from api.errors import Forbidden, SenderNotAllowed
from config import Settings, key_digest, sender_domain

# The key id the Web UI's capability URL acts under (see docs/security.md).
CODEC_UI_KEY_ID = "codec-ui"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: one tenant's key, or an operator's."""

    # A stable, non-secret id of the key (rate-limit buckets, logs): never the key itself.
    key_id: str
    # The tenant the key acts for; None for an operator.
    tenant_id: str | None = None
    operator: bool = False

    def sees(self, tenant_id: str | None) -> bool:
        """Whether this caller may read or cancel a send recorded under `tenant_id`."""
        return self.operator or (self.tenant_id is not None and tenant_id == self.tenant_id)

    def tenant_for(self, requested: str | None) -> str | None:
        """The tenant a write or a listing of this caller acts on.

        A tenant key always acts on its own tenant (naming another is `Forbidden`); an
        operator acts on the tenant it names, or on none.
        """
        if self.operator:
            return requested
        if requested is not None and requested != self.tenant_id:
            raise Forbidden("this API key acts for another tenant_id")
        return self.tenant_id

    @property
    def rate_bucket(self) -> str:
        """Whose requests share one rate limit: the tenant's, or the operator key's."""
        return f"tenant:{self.tenant_id}" if self.tenant_id is not None else self.key_id


class KeyRing:
    """Every configured key (operator and tenant) as a digest, with the caller it stands for.

    `Settings` has already refused a key configured for two holders.
    """

    def __init__(self, entries: Sequence[tuple[bytes, Caller]]) -> None:
        self._entries = list(entries)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        entries = [
            (digest, Caller(key_id=digest.hex()[:16], operator=True))
            for digest in map(key_digest, settings.api_key_list)
        ]
        for tenant_id, tenant in settings.tenants.items():
            for key in tenant.api_keys:
                digest = key_digest(key.get_secret_value())
                entries.append((digest, Caller(key_id=digest.hex()[:16], tenant_id=tenant_id)))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str) -> Caller | None:
        """The caller whose key is `token`: every digest is compared (constant time)."""
        presented = hashlib.sha256(token.encode()).digest()
        found: Caller | None = None
        for digest, caller in self._entries:
            if hmac.compare_digest(presented, digest):
                found = caller
        return found


def default_sender(settings: Settings, caller: Caller) -> str:
    """The sender when a request names none: a tenant's `email_from`, else EMAIL_FROM."""
    tenant = settings.tenants.get(caller.tenant_id) if caller.tenant_id is not None else None
    return tenant.email_from if tenant and tenant.email_from else settings.email_from


def allowed_sender_domains(settings: Settings, caller: Caller) -> list[str]:
    """A tenant's `sender_domains`; for operators SENDER_DOMAINS (default: EMAIL_FROM's)."""
    if caller.operator or caller.tenant_id is None:
        return settings.operator_sender_domains
    return list(settings.tenants[caller.tenant_id].sender_domains)


def check_sender(sender: str, allowed: Sequence[str], *, field: str | None) -> None:
    """Refuse a sender whose address is not at one of the `allowed` domains (exact match).

    `field` names the request field the sender came from (None: a default sender).
    """
    try:
        domain = sender_domain(sender)
    except ValueError:
        domain = ""
    if domain not in allowed:
        origin = "the sender" if field else "the default sender (EMAIL_FROM or email_from)"
        raise SenderNotAllowed(
            f"{origin} must be an address at {', '.join(allowed)} for this API key", field
        )


def tenant_brand(settings: Settings, tenant_id: str | None) -> Brand:
    """The tenant's look in its emails (`brand` in its config); unset: our default."""
    tenant = settings.tenants.get(tenant_id) if tenant_id is not None else None
    brand = tenant.brand if tenant else None
    if brand is None:
        return Brand()
    return Brand(
        product_name=brand.product_name,
        logo_url=brand.logo_url,
        accent_color=brand.accent_color,
        footer=brand.footer,
    )


def app_base_url(settings: Settings, tenant_id: str | None) -> str:
    """The app page our invite links go to: the tenant's `app_base_url`, else APP_BASE_URL."""
    tenant = settings.tenants.get(tenant_id) if tenant_id is not None else None
    return tenant.app_base_url if tenant and tenant.app_base_url else settings.app_base_url


def invite_url_hosts(settings: Settings, tenant_id: str | None) -> list[str]:
    """Hosts an app's own invite `accept_url` may point at: the tenant's `invite_url_hosts`,
    else the host of its app page (`app_base_url`, else APP_BASE_URL)."""
    tenant = settings.tenants.get(tenant_id) if tenant_id is not None else None
    if tenant and tenant.invite_url_hosts:
        return list(tenant.invite_url_hosts)
    host = urlsplit(app_base_url(settings, tenant_id)).hostname
    return [host.lower()] if host else []
