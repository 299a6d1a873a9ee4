"""Email templates as files: Jinja2 (HTML autoescaped), one folder per template and locale.

`templates/<name>/<locale>/subject.txt`, `body.txt`, `body.html` (see templates/README.md).
`TEMPLATE_DIR` puts an operator's folder in front of the built-in one: a file found there
wins, anything missing falls back. The API renders with it (previews, `POST /v1/emails`
with a template) and so does the worker (the invite's local activity, whose recorded result
pins the bytes); both read the same settings, so both render the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from activities.types import Brand

BUILTIN_TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_LOCALE = "en"
DEFAULT_ACCENT_COLOR = "#18181b"
# What every template receives from us; callers' variables may not use these names.
RESERVED_VARIABLES = frozenset({"brand", "locale", "subject"})
MAX_SUBJECT_CHARS = 998
TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
LOCALE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}")
HEX_COLOR = re.compile(r"#(?:[0-9A-Fa-f]{3}){1,2}")
HTTPS_URL = re.compile(r"https://[^\s\"'<>\\]{1,2000}")


class TemplateError(Exception):
    """A template cannot be used as asked; the message is safe to show the caller."""


class UnknownTemplate(TemplateError):
    pass


class UnsupportedLocale(TemplateError):
    pass


class RenderError(TemplateError):
    """The template failed to render with these variables (e.g. one is missing)."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str | None
    text: str | None


def check_brand(brand: Brand) -> None:
    """What goes into markup unescaped by nature (a CSS colour, an image URL) is checked here,
    whoever configured it: a colour is `#rgb`/`#rrggbb`, a logo is an https URL."""
    if brand.accent_color is not None and not HEX_COLOR.fullmatch(brand.accent_color):
        raise RenderError("brand accent_color must be a colour such as #0a7cff")
    if brand.logo_url is not None and not HTTPS_URL.fullmatch(brand.logo_url):
        raise RenderError("brand logo_url must be an https:// URL")


def with_defaults(brand: Brand | None) -> Brand:
    """The brand a template sees: the tenant's, with our defaults where it sets nothing."""
    brand = brand or Brand()
    check_brand(brand)
    return replace(brand, accent_color=brand.accent_color or DEFAULT_ACCENT_COLOR)


def _single_line(subject: str) -> str:
    # Variables can carry line breaks (U+2028 and U+0085 too); a header holds one line.
    line = " ".join(subject.split())
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in line):
        raise RenderError("the rendered subject holds control characters")
    if not line or len(line) > MAX_SUBJECT_CHARS:
        raise RenderError(f"the rendered subject must be 1 to {MAX_SUBJECT_CHARS} characters")
    return line


class Templates:
    """The template folders of this process: the operator's (if any), then the built-in."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directories = [d for d in (directory, BUILTIN_TEMPLATE_DIR) if d is not None]
        # Sandboxed: variables are data from API callers; a template only reads them.
        self._env = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in self.directories]),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def _has(self, name: str, locale: str, file: str) -> bool:
        return any((d / name / locale / file).is_file() for d in self.directories)

    def locales(self, name: str) -> list[str]:
        """The locales `name` exists in (a folder with a `subject.txt`), sorted."""
        found = {
            path.parent.name for d in self.directories for path in (d / name).glob("*/subject.txt")
        }
        return sorted(found)

    def resolve_locale(self, name: str, requested: str | None) -> str:
        """The locale to render `name` in: the one asked for, else its language (`de-AT` ->
        `de`); none asked: `en`. `UnknownTemplate` / `UnsupportedLocale` otherwise."""
        if not TEMPLATE_NAME.fullmatch(name) or not self.locales(name):
            raise UnknownTemplate(f"no template named {name!r}")
        if requested is None:
            requested = DEFAULT_LOCALE
        if not LOCALE_TAG.fullmatch(requested):
            raise UnsupportedLocale(f"{requested!r} is not a locale tag such as 'de' or 'pt-BR'")
        for candidate in (requested, requested.split("-")[0].lower()):
            if self._has(name, candidate, "subject.txt"):
                return candidate
        raise UnsupportedLocale(
            f"template {name!r} has no locale {requested!r}; it has {', '.join(self.locales(name))}"
        )

    def render(
        self, name: str, locale: str, variables: Mapping[str, Any], brand: Brand | None = None
    ) -> RenderedEmail:
        """Subject, text and HTML of `name` in `locale` (resolved with `resolve_locale`)."""
        if not TEMPLATE_NAME.fullmatch(name) or not LOCALE_TAG.fullmatch(locale):
            raise UnknownTemplate(f"no template named {name!r} in locale {locale!r}")
        reserved = RESERVED_VARIABLES & set(variables)
        if reserved:
            raise RenderError(f"variables may not be named {', '.join(sorted(reserved))}")
        context = {**variables, "brand": asdict(with_defaults(brand)), "locale": locale}
        try:
            subject = _single_line(self._render(name, locale, "subject.txt", context) or "")
            context["subject"] = subject
            text = self._render(name, locale, "body.txt", context)
            html = self._render(name, locale, "body.html", context)
        except jinja2.UndefinedError as err:
            raise RenderError(f"template {name!r}: {err.message}") from None
        except jinja2.TemplateSyntaxError as err:
            raise RenderError(f"template {name!r} is broken: {err.name}:{err.lineno}") from None
        except jinja2.TemplateError as err:
            raise RenderError(f"template {name!r} failed: {type(err).__name__}") from None
        if text is None and html is None:
            raise UnknownTemplate(f"template {name!r} has no body.txt or body.html")
        return RenderedEmail(subject=subject, html=html, text=text)

    def _render(self, name: str, locale: str, file: str, context: Mapping[str, Any]) -> str | None:
        if not self._has(name, locale, file):
            return None
        return self._env.get_template(f"{name}/{locale}/{file}").render(context)
