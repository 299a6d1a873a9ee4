"""The one rule for links that go into our emails, wherever a template is rendered.

An invite's `accept_url`, and every link-like variable of a templated `POST /v1/emails`
(a variable named `*url`, `*link` or `*href`, or any value with a script-capable scheme),
must be an absolute `https` URL (`http` only for localhost), plain ASCII, without user
info, on a host the tenant allows (`invite_url_hosts`, else its app page's host) and on an
allowed port: the scheme's default, or the one of the tenant's app page
(`app_base_url`). Anything else is a 422 naming the field: no `javascript:` button, no
open redirector, no link to another service on the same host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from api.errors import InvalidField
from api.fields import link_shape_problem
from api.tenants import app_base_url, invite_url_hosts
from config import Settings

DEFAULT_PORTS = {"https": 443, "http": 80}
_LINK_NAME = re.compile(r".*(url|link|href)$", re.IGNORECASE)
# Schemes a browser or mail client runs or inlines, however the value is padded or cased.
_SCRIPT_SCHEME = re.compile(r"^[\x00-\x20]*(javascript|vbscript|data|file)\s*:", re.IGNORECASE)


def allowed_ports(settings: Settings, tenant_id: str | None) -> set[int]:
    """Ports a link may name: the schemes' defaults and the tenant's app page's."""
    ports = set(DEFAULT_PORTS.values())
    app = urlsplit(app_base_url(settings, tenant_id))
    ports.add(app.port or DEFAULT_PORTS.get(app.scheme, 443))
    return ports


def link_problem(url: str, settings: Settings, tenant_id: str | None) -> str | None:
    """Why `url` may not be a link in this tenant's emails (None: it may)."""
    if problem := link_shape_problem(url):
        return problem
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    hosts = {h.lower() for h in invite_url_hosts(settings, tenant_id)}
    if host not in hosts:
        shown = ", ".join(sorted(hosts)) or "none configured"
        return f"host {host!r} is not allowed (allowed: {shown})"
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    ports = allowed_ports(settings, tenant_id)
    if port not in ports:
        return f"port {port} is not allowed (allowed: {', '.join(map(str, sorted(ports)))})"
    return None


def check_link(url: str, settings: Settings, tenant_id: str | None, *, field: str) -> None:
    """`InvalidField(field)` unless `url` may be a link in this tenant's emails."""
    if problem := link_problem(url, settings, tenant_id):
        raise InvalidField(field, problem)


def check_template_links(
    variables: Mapping[str, Any] | None, settings: Settings, tenant_id: str | None
) -> None:
    """Every link-like variable of a template passes `check_link` (nested ones too)."""
    for name, value in _strings(variables or {}, "variables"):
        leaf = name.rpartition(".")[2]
        if _LINK_NAME.fullmatch(leaf) or _SCRIPT_SCHEME.match(value):
            check_link(value, settings, tenant_id, field=name)


def _strings(node: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, Mapping):
        return [pair for k, v in node.items() for pair in _strings(v, f"{path}.{k}")]
    if isinstance(node, list | tuple):
        return [pair for i, v in enumerate(node) for pair in _strings(v, f"{path}.{i}")]
    return []
