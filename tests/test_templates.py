"""Email templates as files: every locale renders, HTML escapes, text does not, brands checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activities.render import INVITE_TEMPLATE, render_invite_emails
from activities.templating import (
    RenderError,
    Templates,
    UnknownTemplate,
    UnsupportedLocale,
)
from activities.types import Brand, RenderInviteEmailsInput

LOCALES = ["de", "en", "es", "fr", "ja"]


def invite_variables(**overrides: Any) -> dict[str, Any]:
    return {
        "inviter_name": "Bob",
        "tenant_name": "Acme",
        "role": None,
        "accept_url": "https://app.example.test/join?a=1&b=2",
        "expires_on": "2030-01-31",
        "reminder": False,
        **overrides,
    }


def test_the_invite_ships_in_five_locales() -> None:
    assert Templates().locales(INVITE_TEMPLATE) == LOCALES


@pytest.mark.parametrize("locale", LOCALES)
def test_each_locale_renders_invitation_and_reminder_with_the_link_and_expiry(locale: str) -> None:
    templates = Templates()
    data = RenderInviteEmailsInput(
        invite_id="inv_abc",
        to="ann@example.com",
        sender="Acme <invites@acme.test>",
        tenant_name="Acme",
        inviter_name="Bob",
        accept_url="https://app.example.test/join?a=1&b=2",
        role="admin",
        locale=locale,
        brand=Brand(footer="Acme Inc., 1 Road"),
        expires_at="2030-01-31T10:00:00+00:00",
        with_reminder=True,
    )
    emails = render_invite_emails(templates, data)
    assert emails.reminder is not None
    for message in (emails.invitation, emails.reminder):
        assert message.text and message.html
        assert "https://app.example.test/join?a=1&b=2" in message.text
        assert 'href="https://app.example.test/join?a=1&amp;b=2"' in message.html
        assert "2030-01-31" in message.text and "admin" in message.text
        assert message.text.rstrip().endswith("Acme Inc., 1 Road")
        assert f'<html lang="{locale}">' in message.html
    assert emails.invitation.subject != emails.reminder.subject
    assert emails.invitation.text != emails.reminder.text
    tags = {t.name: t.value for t in emails.reminder.tags}
    assert tags == {"kind": "invite", "email_id": "inv_abc", "message": "reminder"}


def test_html_is_escaped_and_text_is_not() -> None:
    rendered = Templates().render(
        INVITE_TEMPLATE, "en", invite_variables(tenant_name="<b>Acme</b> & Co"), None
    )
    assert rendered.html is not None and rendered.text is not None
    assert "&lt;b&gt;Acme&lt;/b&gt; &amp; Co" in rendered.html and "<b>Acme" not in rendered.html
    assert "<b>Acme</b> & Co" in rendered.text
    assert rendered.subject == "Bob invited you to join <b>Acme</b> & Co"


def test_a_subject_is_one_line_whatever_the_variables_hold() -> None:
    rendered = Templates().render(
        INVITE_TEMPLATE, "en", invite_variables(inviter_name="Bob\r\nBcc: x@evil.test\u2028"), None
    )
    assert rendered.subject == "Bob Bcc: x@evil.test invited you to join Acme"


def test_missing_or_reserved_variables_and_bad_brands_are_refused() -> None:
    templates = Templates()
    variables = invite_variables()
    del variables["accept_url"]
    with pytest.raises(RenderError, match="accept_url"):
        templates.render(INVITE_TEMPLATE, "en", variables, None)
    with pytest.raises(RenderError, match="brand"):
        templates.render(INVITE_TEMPLATE, "en", {**invite_variables(), "brand": {}}, None)
    with pytest.raises(RenderError, match="accent_color"):
        templates.render(INVITE_TEMPLATE, "en", invite_variables(), Brand(accent_color="red;x:y"))
    with pytest.raises(RenderError, match="logo_url"):
        templates.render(INVITE_TEMPLATE, "en", invite_variables(), Brand(logo_url="http://x"))


def test_brand_shows_its_logo_colour_and_footer() -> None:
    brand = Brand(
        product_name="Acme",
        logo_url="https://cdn.acme.test/logo.png",
        accent_color="#0a7cff",
        footer="Acme Inc.",
    )
    html = Templates().render(INVITE_TEMPLATE, "en", invite_variables(), brand).html
    assert html is not None
    assert '<img src="https://cdn.acme.test/logo.png" alt="Acme"' in html
    assert "background:#0a7cff" in html and "Acme Inc." in html


def test_locales_resolve_to_the_language_and_unknown_ones_are_refused() -> None:
    templates = Templates()
    assert templates.resolve_locale(INVITE_TEMPLATE, None) == "en"
    assert templates.resolve_locale(INVITE_TEMPLATE, "ja-JP") == "ja"
    with pytest.raises(UnsupportedLocale, match="de, en, es, fr, ja"):
        templates.resolve_locale(INVITE_TEMPLATE, "pt-BR")
    with pytest.raises(UnsupportedLocale):
        templates.resolve_locale(INVITE_TEMPLATE, "../../etc")
    with pytest.raises(UnknownTemplate):
        templates.resolve_locale("../templates", "en")
    with pytest.raises(UnknownTemplate):
        templates.resolve_locale("_layouts", "en")


def test_an_operator_directory_wins_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "_layouts").mkdir()
    (tmp_path / "_layouts" / "email.html").write_text(
        "<main data-brand=ours>{% block content %}{% endblock %}</main>\n"
    )
    (tmp_path / "invite" / "pt").mkdir(parents=True)
    (tmp_path / "invite" / "pt" / "subject.txt").write_text("{{ inviter_name }} convidou você\n")
    (tmp_path / "invite" / "pt" / "body.txt").write_text("Aceitar: {{ accept_url }}\n")
    templates = Templates(tmp_path)

    english = templates.render(INVITE_TEMPLATE, "en", invite_variables(), None)
    assert english.html is not None and english.html.startswith("<main data-brand=ours>")
    assert "Accept the invitation" in english.html
    portuguese = templates.render(INVITE_TEMPLATE, "pt", invite_variables(), None)
    assert portuguese.subject == "Bob convidou você" and portuguese.html is None
    assert templates.locales(INVITE_TEMPLATE) == ["de", "en", "es", "fr", "ja", "pt"]
