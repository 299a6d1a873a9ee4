"""An invite's life as an app lives it: its link or ours, accept, revoke, preview, languages.

Expiry and reminders (days) run on the time-skipping server: tests/test_invite_time.py.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.invite_tokens import PLACEHOLDER, derive_token, token_digest
from activities.types import InviteToken
from api.main import create_app
from config import Settings
from testkit.fake_resend import FakeResendServer
from testkit.keys import INVITE_TOKEN_SECRET
from testkit.polling import eventually
from tests.helpers import (
    INVITE,
    asgi_client,
    link_token,
    readable_text,
    running_worker,
    wait_for_status,
)
from tests.webhooks import post_event
from worker import build_transport, build_workers

APP_LINK = "https://app.example.test/team/join?code=app-own-123&from=mail#welcome"
HISTORIES = sorted((Path(__file__).parent / "histories").glob("invite_life_*.json"))


async def invite(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await api.post("/v1/invites", json={**INVITE, **fields})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def sent_invitation(
    api: httpx.AsyncClient, fake_resend: FakeResendServer, **fields: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create an invite and wait for its email at the provider: (create answer, payload)."""
    body = await invite(api, **fields)
    await wait_for_status(api, body["invite_id"], "sent")
    [delivery] = [
        d
        for d in fake_resend.fake.deliveries
        if {"name": "email_id", "value": body["invite_id"]} in d.payload["tags"]
    ]
    return body, delivery.payload


async def test_app_link_is_delivered_verbatim_and_accepted_without_a_token(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    body, payload = await sent_invitation(api, fake_resend, accept_url=APP_LINK)

    assert APP_LINK in payload["text"].split()
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', payload["html"])]
    assert hrefs == [APP_LINK]
    assert "token=" not in payload["text"]
    view = (await api.get(f"/v1/invites/{body['invite_id']}")).json()
    assert (view["status"], view["link"], view["invitation"]["status"]) == (
        "pending",
        "app",
        "sent",
    )

    # We cannot check the app's own token, and must not pretend to.
    with_token = await api.post(f"/v1/invites/{body['invite_id']}/accept", json={"token": "x"})
    assert with_token.status_code == 422
    accepted = await api.post(f"/v1/invites/{body['invite_id']}/accept", json={})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"


@pytest.mark.parametrize(
    "accept_url",
    [
        "https://evil.example/join?code=1",
        "https://app.example.test.evil.example/join",
        "http://app.example.test/join",
        "https://user@app.example.test/join",
        "https://app.example.test\\@evil.example/join",
        "javascript:alert(1)//app.example.test",
        "/relative/join",
    ],
)
async def test_accept_url_on_a_host_the_tenant_does_not_allow_is_422(
    api: httpx.AsyncClient, fake_resend: FakeResendServer, accept_url: str
) -> None:
    response = await api.post("/v1/invites", json={**INVITE, "accept_url": accept_url})

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == "accept_url"
    assert fake_resend.fake.requests_total == 0


async def test_loopback_app_link_may_use_http(api: httpx.AsyncClient, settings: Settings) -> None:
    settings.app_base_url = "http://localhost:3000"
    response = await api.post(
        "/v1/invites/preview", json={**INVITE, "accept_url": "http://localhost:3000/join?c=1"}
    )
    assert response.status_code == 200, response.text


async def test_managed_token_accepts_once_then_409_and_wrong_tokens_are_404(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer, settings: Settings
) -> None:
    body, payload = await sent_invitation(api, fake_resend, role="admin")
    invite_id = body["invite_id"]
    token = link_token(payload["text"])
    assert (
        f"{settings.app_base_url}/invites/accept?invite={invite_id}&token={token}"
        in (payload["text"])
    )
    assert len(token) >= 43
    accept = f"/v1/invites/{invite_id}/accept"

    wrong = await api.post(accept, json={"token": token[:-1] + ("A" if token[-1] != "A" else "B")})
    assert wrong.status_code == 404
    assert (await api.post(accept, json={})).status_code == 422
    assert (await api.get(f"/v1/invites/{invite_id}")).json()["wrong_tokens"] == 1

    first = await api.post(accept, json={"token": token})
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["invite_id"] == invite_id
    assert answer["status"] == "accepted"
    assert answer["email"] == INVITE["email"]
    assert answer["role"] == "admin"
    assert datetime.fromisoformat(answer["accepted_at"]) <= datetime.now(UTC)

    again = await api.post(accept, json={"token": token})
    other = await api.post(accept, json={"token": "another-token"})
    assert (again.status_code, other.status_code) == (409, 409)
    view = (await api.get(f"/v1/invites/{invite_id}")).json()
    assert view["status"] == "accepted" and view["accepted_at"] == answer["accepted_at"]
    # The email is still an email: its status where it always was.
    assert (await api.get(f"/v1/emails/{invite_id}")).json()["status"] == "sent"
    assert (await api.delete(f"/v1/invites/{invite_id}")).status_code == 409


async def test_accept_after_revoke_is_410_and_revoking_again_answers_the_same(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    body, payload = await sent_invitation(api, fake_resend)
    invite_id = body["invite_id"]

    revoked = await api.delete(f"/v1/invites/{invite_id}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    # It had gone out: nothing to cancel.
    assert revoked.json()["email_cancelled"] is False

    token = link_token(payload["text"])
    late = await api.post(f"/v1/invites/{invite_id}/accept", json={"token": token})
    assert late.status_code == 410
    again = await api.delete(f"/v1/invites/{invite_id}")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert (await api.get(f"/v1/invites/{invite_id}")).json()["status"] == "revoked"


async def test_revoke_before_the_email_goes_out_cancels_it(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = await invite(api, send_at=send_at)

    revoked = await api.delete(f"/v1/invites/{body['invite_id']}")

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["email_cancelled"] is True
    assert revoked.json()["invitation"]["status"] == "cancelled"
    await wait_for_status(api, body["invite_id"], "cancelled")
    assert fake_resend.fake.requests_total == 0


async def test_wrong_tokens_past_the_limit_are_refused_but_the_right_token_still_accepts(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    """Issue 22: whoever guesses cannot lock the invitee out (the limit was checked first)."""
    body, payload = await sent_invitation(api, fake_resend)
    accept = f"/v1/invites/{body['invite_id']}/accept"

    answers = [
        (await api.post(accept, json={"token": f"guess-{n}"})).status_code for n in range(12)
    ]
    # Ten wrong tokens are counted (404); past them a wrong one is refused unrecorded (429).
    assert answers == [404] * 10 + [429] * 2
    assert (await api.get(f"/v1/invites/{body['invite_id']}")).json()["wrong_tokens"] == 10
    accepted = await api.post(accept, json={"token": link_token(payload["text"])})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"


async def test_unknown_invites_and_old_invite_ids_are_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/invites/inv_0123abcd")).status_code == 404
    assert (await api.get("/v1/invites/em_0123abcd")).status_code == 404
    response = await api.post("/v1/invites/inv_0123abcd/accept", json={"token": "t"})
    assert response.status_code == 404
    assert (await api.delete("/v1/invites/not-an-id")).status_code == 404


async def test_preview_equals_what_the_provider_receives(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    request = {**INVITE, "locale": "fr", "remind_after_days": 3}
    for fields, key in (({"accept_url": APP_LINK}, "preview-app"), ({}, "preview-managed")):
        headers = {"Idempotency-Key": key}
        preview = await api.post("/v1/invites/preview", json={**request, **fields}, headers=headers)
        assert preview.status_code == 200, preview.text
        shown = preview.json()
        # Nothing started: no such invite yet.
        assert (await api.get(f"/v1/invites/{shown['invite_id']}")).status_code == 404

        created = await api.post("/v1/invites", json={**request, **fields}, headers=headers)
        assert created.json()["invite_id"] == shown["invite_id"]
        await wait_for_status(api, shown["invite_id"], "sent")
        [payload] = [
            d.payload
            for d in fake_resend.fake.deliveries
            if {"name": "email_id", "value": shown["invite_id"]} in d.payload["tags"]
        ]
        expected = shown["invitation"]
        if shown["token_placeholder"]:
            # Our link: the token goes in at send time, in place of the placeholder.
            token = link_token(payload["text"])
            for part in ("text", "html"):
                expected[part] = expected[part].replace(shown["token_placeholder"], token)
        for part in ("from", "to", "subject", "text", "html"):
            assert payload[part] == expected[part], part
        assert shown["reminder"]["subject"].startswith("Rappel")


async def test_de_and_ja_differ_from_en_and_reach_the_provider_intact(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    payloads = {}
    for locale in ("en", "de", "ja"):
        _, payloads[locale] = await sent_invitation(
            api, fake_resend, locale=locale, tenant_name="Müller & Söhne", inviter_name="山田"
        )
    en, de, ja = payloads["en"], payloads["de"], payloads["ja"]
    assert len({en["subject"], de["subject"], ja["subject"]}) == 3
    assert de["subject"] == "山田 hat Sie zu Müller & Söhne eingeladen"
    assert "Einladung annehmen" in de["text"] and "läuft am" in de["text"]
    assert ja["subject"] == "山田さんからMüller & Söhneへの招待が届いています"
    assert "招待を承諾する" in ja["text"] and "招待を承諾する" in ja["html"]
    assert "Müller &amp; Söhne" in ja["html"] and '<html lang="ja">' in ja["html"]
    assert "Accept the invitation" in en["text"]


@asynccontextmanager
async def outbox_worker(client: Client, settings: Settings) -> AsyncIterator[Path]:
    """A worker with no Resend key: emails land in the outbox folder it yields."""
    outbox = settings.model_copy(update={"resend_api_key": None})
    workflows, sends = build_workers(client, outbox, build_transport(outbox, None))
    async with workflows, sends:
        yield outbox.outbox_dir


async def test_de_and_ja_render_their_characters_in_the_outbox_eml(
    api: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    async with outbox_worker(client, settings) as outbox:
        for locale in ("de", "ja"):
            body = await invite(api, locale=locale, tenant_name="Müller & Söhne")
            await wait_for_status(api, body["invite_id"], "sent")

    emls = {p.name: p.read_bytes() for p in outbox.glob("*.eml")}
    assert len(emls) == 2
    messages = [email.message_from_bytes(raw, policy=email.policy.default) for raw in emls.values()]
    subjects = sorted(str(m["Subject"]) for m in messages)
    assert subjects == [
        "Bob hat Sie zu Müller & Söhne eingeladen",
        "BobさんからMüller & Söhneへの招待が届いています",
    ]
    for message in messages:
        text = message.get_body(("plain",))
        page = message.get_body(("html",))
        assert text is not None and page is not None
        content = text.get_content()
        assert ("Einladung annehmen" in content) or ("招待を承諾する" in content)
        assert "Müller &amp; Söhne" in page.get_content()
    # The browsable copies too (UTF-8 whatever the machine's locale).
    pages = [p.read_text(encoding="utf-8") for p in outbox.glob("*.html")]
    assert any("招待を承諾する" in page for page in pages)


async def test_unknown_locale_is_422_and_a_region_falls_back_to_its_language(
    api: httpx.AsyncClient,
) -> None:
    unknown = await api.post("/v1/invites/preview", json={**INVITE, "locale": "xx"})
    assert unknown.status_code == 422
    assert "en" in unknown.json()["detail"][0]["msg"]
    malformed = await api.post("/v1/invites", json={**INVITE, "locale": "../en"})
    assert malformed.status_code == 422
    regional = await api.post("/v1/invites/preview", json={**INVITE, "locale": "de-AT"})
    assert regional.json()["locale"] == "de"
    default = await api.post("/v1/invites/preview", json=INVITE)
    assert default.json()["locale"] == "en"


def template_email(template: str, locale: str, variables: dict[str, Any]) -> dict[str, Any]:
    """A `POST /v1/emails` body that sends our template `template` to Ann."""
    return {"to": "ann@example.com", "template": template, "locale": locale, "variables": variables}


async def test_operator_template_dir_overrides_files_and_keeps_the_rest(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    custom = tmp_path / "templates"
    (custom / "invite" / "en").mkdir(parents=True)
    (custom / "invite" / "en" / "subject.txt").write_text("Join {{ tenant_name }} on Acmeware\n")
    (custom / "welcome" / "pt").mkdir(parents=True)
    (custom / "welcome" / "pt" / "subject.txt").write_text("Olá {{ name }}\n")
    (custom / "welcome" / "pt" / "body.txt").write_text("Bem-vindo, {{ name }}!\n")
    settings.template_dir = custom
    async with asgi_client(create_app(settings, temporal_client=client)) as api:
        shown = (await api.post("/v1/invites/preview", json=INVITE)).json()
        german = (await api.post("/v1/invites/preview", json={**INVITE, "locale": "de"})).json()
        email_answer = await api.post(
            "/v1/emails", json=template_email("welcome", "pt-BR", {"name": "Ana"})
        )

    assert shown["invitation"]["subject"] == "Join Acme on Acmeware"
    # Not overridden: the built-in body, and the other locales.
    assert "Accept the invitation" in shown["invitation"]["text"]
    assert german["invitation"]["subject"] == "Bob hat Sie zu Acme eingeladen"
    assert email_answer.status_code == 202, email_answer.text


async def test_email_may_send_a_template_by_name(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    variables = {
        "inviter_name": "Bob",
        "tenant_name": "Acme <Labs>",
        "role": None,
        "accept_url": APP_LINK,
        "expires_on": "2030-01-01",
        "reminder": False,
    }
    response = await api.post("/v1/emails", json=template_email("invite", "es", variables))
    assert response.status_code == 202, response.text
    await wait_for_status(api, response.json()["id"], "sent")
    [delivery] = fake_resend.fake.deliveries
    assert delivery.payload["subject"] == "Bob te ha invitado a unirte a Acme <Labs>"
    assert "Acme &lt;Labs&gt;" in delivery.payload["html"]
    assert "Acme <Labs>" in delivery.payload["text"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"template": "nope", "variables": {}}, "template"),
        ({"template": "invite", "variables": {"tenant_name": "Acme"}}, "template"),
        ({"template": "invite", "locale": "xx", "variables": {}}, "template"),
        ({"template": "invite", "variables": {"brand": "x"}}, "template"),
        ({"template": "invite", "html": "<p>x</p>"}, None),
        ({"subject": "Hi", "text": "x", "variables": {"a": 1}}, None),
        ({"text": "no subject"}, None),
    ],
)
async def test_email_template_errors_are_422(
    api: httpx.AsyncClient, body: dict[str, Any], field: str | None
) -> None:
    response = await api.post("/v1/emails", json={"to": "ann@example.com", **body})
    assert response.status_code == 422, response.text
    if field is not None:
        assert response.json()["detail"][0]["loc"][-1] == field


async def test_no_token_in_clear_in_the_raw_history_or_the_logs(
    uncoded: tuple[httpx.AsyncClient, Client],
    fake_resend: FakeResendServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, plain = uncoded
    body, payload = await sent_invitation(api, fake_resend, remind_after_days=2)
    token = link_token(payload["text"])
    events = await post_event(
        api, "email.delivered", email_id=body["invite_id"], message="invitation"
    )
    assert events.status_code == 200
    wrong = await api.post(f"/v1/invites/{body['invite_id']}/accept", json={"token": "x"})
    accepted = await api.post(f"/v1/invites/{body['invite_id']}/accept", json={"token": token})
    assert (wrong.status_code, accepted.status_code) == (404, 200)

    history = await plain.get_workflow_handle(body["workflow_id"]).fetch_history()
    text = "\n".join(readable_text(history.to_json_dict()))
    # The rendered emails are there in clear (no codec), with the placeholder for the token.
    assert "Accept the invitation" in text and PLACEHOLDER in text
    assert token not in text
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "accepted" in logged
    assert token not in logged


async def test_a_template_change_does_not_alter_an_invitation_already_rendered(
    client: Client, settings: Settings, fake_resend: FakeResendServer, tmp_path: Path
) -> None:
    custom = tmp_path / "templates"
    (custom / "invite" / "en").mkdir(parents=True)
    subject = custom / "invite" / "en" / "subject.txt"
    subject.write_text("Version one: join {{ tenant_name }}\n")
    settings.template_dir = custom
    app = create_app(settings, temporal_client=client)
    async with asgi_client(app) as api, running_worker(client, settings):
        send_at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
        body = await invite(api, send_at=send_at)
        handle = client.get_workflow_handle(body["workflow_id"])

        async def rendered() -> bool:
            history = await handle.fetch_history()
            return any(e.HasField("marker_recorded_event_attributes") for e in history.events)

        await eventually(rendered, timeout=10, what="the invitation rendered")
        subject.write_text("Version two: join {{ tenant_name }}\n")
        await wait_for_status(api, body["invite_id"], "sent", timeout=20)

    [delivery] = fake_resend.fake.deliveries
    assert delivery.payload["subject"] == "Version one: join Acme"


async def test_invite_without_a_token_secret_is_503_unless_the_app_brings_its_link(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    settings.invite_token_secret = None
    ours = await api.post("/v1/invites", json=INVITE)
    assert ours.status_code == 503
    assert "INVITE_TOKEN_SECRET" in ours.json()["detail"]
    theirs = await api.post("/v1/invites/preview", json={**INVITE, "accept_url": APP_LINK})
    assert theirs.status_code == 200


def test_recorded_invite_lives_hold_their_token_placeholder_but_never_the_token() -> None:
    managed = 0
    for path in HISTORIES:
        raw = json.loads(path.read_text())
        text = "\n".join(readable_text(raw))
        started = raw["events"][0]["workflowExecutionStartedEventAttributes"]
        [data] = [json.loads(t) for t in readable_text(started["input"]) if t.startswith("{")]
        if data["invite_token"] is None:
            continue
        managed += 1
        token = derive_token(INVITE_TOKEN_SECRET, InviteToken(**data["invite_token"]))
        # The very token the email carried: its digest is the one the workflow checks.
        assert token_digest(INVITE_TOKEN_SECRET, token) == data["token_digest"]
        assert PLACEHOLDER in text, path.name
        assert token not in text, path.name
    assert managed >= 2


async def test_an_invite_still_takes_delivery_events_after_its_delivery_wait(
    api: httpx.AsyncClient, worker: None, client: Client, settings: Settings
) -> None:
    settings.delivery_wait_seconds = 0.5
    body = await invite(api)
    await wait_for_status(api, body["invite_id"], "sent")
    handle = client.get_workflow_handle(body["workflow_id"])

    async def wait_over() -> bool:
        history = await handle.fetch_history()
        return any(e.HasField("timer_fired_event_attributes") for e in history.events)

    await eventually(wait_over, what="the delivery wait's timer")
    late = await post_event(api, "email.delivered", email_id=body["invite_id"])

    assert late.json() == {"status": "accepted"}
    await wait_for_status(api, body["invite_id"], "delivered")


async def test_cancelling_the_invitation_email_revokes_the_invite(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = await invite(api, send_at=send_at)

    cancelled = await api.delete(body["status_url"])

    # 200 once the worker answers within the API's short wait; on a loaded machine it may
    # not yet have run the invite's first task: 202, the cancel recorded, applied next.
    assert cancelled.status_code in (200, 202), cancelled.text
    expected = "cancelled" if cancelled.status_code == 200 else "scheduled"
    assert cancelled.json()["status"] == expected
    view = await eventually(
        lambda: invite_status(api, body["invite_id"], "revoked"), what="revoked"
    )
    assert view["invitation"]["status"] == "cancelled"
    assert fake_resend.fake.requests_total == 0


async def invite_status(api: httpx.AsyncClient, invite_id: str, status: str) -> Any:
    view = (await api.get(f"/v1/invites/{invite_id}")).json()
    return view if view["status"] == status else None


async def test_batches_refuse_what_only_single_invites_and_emails_honour(
    api: httpx.AsyncClient,
) -> None:
    invites = await api.post("/v1/invites/batch", json={"invites": [{**INVITE, "locale": "de"}]})
    assert invites.status_code == 422
    assert "given once beside `invites`" in invites.text
    template = {"to": "ann@example.com", "template": "invite", "variables": {}}
    emails = await api.post("/v1/emails/batch", json={"emails": [template]})
    assert emails.status_code == 422
    assert "templates: POST /v1/emails" in emails.text


async def test_a_scheduled_invitation_can_be_rescheduled_before_the_invite_expires(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = await invite(api, send_at=later, expires_in_days=2)
    await wait_for_status(api, body["invite_id"], "scheduled")
    resend = {"Authorization": api.headers["Authorization"]}

    too_late = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    refused = await api.patch(
        f"/emails/{body['invite_id']}", json={"scheduled_at": too_late}, headers=resend
    )
    assert refused.status_code in (400, 409, 422), refused.text
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    moved = await api.patch(
        f"/emails/{body['invite_id']}", json={"scheduled_at": soon}, headers=resend
    )
    assert moved.status_code == 200, moved.text
    await wait_for_status(api, body["invite_id"], "sent")
    assert fake_resend.fake.delivered_count == 1
    shown = await api.get(f"/emails/{body['invite_id']}", headers=resend)
    assert shown.status_code == 200, shown.text
    assert shown.json()["to"] == [INVITE["email"]]
