"""Rendering of templated emails, run once per email as a local activity.

The rendered message is recorded in the workflow history, so every later send attempt
uses exactly these bytes (Resend answers 409 if one idempotency key carries two payloads).

`render_invite_emails` (workflow `Invite`) renders the template files of
`activities.templating`; `render_invite` is the fixed English email of the older
`SendInviteEmail` workflow, kept for the executions it still runs.
"""

from __future__ import annotations

import asyncio
from html import escape

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.delivery_contract import (
    INVITATION,
    MESSAGE_TAG,
    REMINDER,
    SendKind,
    correlation_tags,
)
from activities.templating import TemplateError, Templates
from activities.types import (
    EmailMessage,
    EmailTag,
    RenderInviteBatchEmailsInput,
    RenderInviteBatchResult,
    RenderInviteEmailsInput,
    RenderInviteEmailsResult,
    RenderInviteInput,
    RenderInviteResult,
)

INVITE_TEMPLATE = "invite"
# A template that cannot render (missing locale, broken file) will not render on a retry.
TEMPLATE_FAILED = "TemplateFailed"

INVITE_TEXT = """\
Hi,

{inviter} invited you to join {tenant}{role_line}.

Accept the invitation:
{url}

If you did not expect this invitation, you can ignore this email.
"""

INVITE_HTML = """\
<!doctype html>
<html><body style="font-family: sans-serif; line-height: 1.5">
<p>Hi,</p>
<p><strong>{inviter}</strong> invited you to join <strong>{tenant}</strong>{role_line}.</p>
<p><a href="{url}" style="display:inline-block;padding:10px 16px;background:#111;\
color:#fff;text-decoration:none;border-radius:6px">Accept the invitation</a></p>
<p style="color:#666;font-size:12px">Or paste this link into your browser: {url}</p>
<p style="color:#666;font-size:12px">If you did not expect this invitation, ignore this email.</p>
</body></html>
"""


@activity.defn(name="render_invite")
async def render_invite(data: RenderInviteInput) -> RenderInviteResult:
    """Render the invitation email (pure; run as a local activity)."""
    role_text = f" as {data.role}" if data.role else ""
    message = EmailMessage(
        sender=data.sender,
        to=[data.to],
        subject=f"{data.inviter_name} invited you to join {data.tenant_name}",
        text=INVITE_TEXT.format(
            inviter=data.inviter_name,
            tenant=data.tenant_name,
            role_line=role_text,
            url=data.accept_url,
        ),
        html=INVITE_HTML.format(
            inviter=escape(data.inviter_name),
            tenant=escape(data.tenant_name),
            role_line=escape(role_text),
            url=escape(data.accept_url, quote=True),
        ),
        tags=correlation_tags(SendKind.INVITE, data.invite_id),
    )
    return RenderInviteResult(message=message)


class RenderActivities:
    """The template renderer of the worker (templates from `TEMPLATE_DIR`, then built-in)."""

    def __init__(self, templates: Templates) -> None:
        self._templates = templates

    @activity.defn(name="render_invite_emails")
    async def render_invite_emails(self, data: RenderInviteEmailsInput) -> RenderInviteEmailsResult:
        """Render an invite's invitation and planned reminder once (run as a local activity:
        the recorded result pins their bytes; a later template change cannot alter them)."""
        try:
            # Template files are read from disk: off the worker's event loop.
            return await asyncio.to_thread(render_invite_emails, self._templates, data)
        except TemplateError as err:
            raise ApplicationError(str(err), type=TEMPLATE_FAILED, non_retryable=True) from None

    @activity.defn(name="render_invite_batch_emails")
    async def render_invite_batch_emails(
        self, data: RenderInviteBatchEmailsInput
    ) -> RenderInviteBatchResult:
        """Render a batch's invitations (or its reminders) once, in the invites' order (a
        local activity: the recorded result pins the bytes every attempt of the call sends)."""

        def render() -> RenderInviteBatchResult:
            templates = self._templates
            return RenderInviteBatchResult(
                [render_invite_message(templates, i, data.variant) for i in data.invites]
            )

        try:
            return await asyncio.to_thread(render)
        except TemplateError as err:
            raise ApplicationError(str(err), type=TEMPLATE_FAILED, non_retryable=True) from None


def render_invite_emails(
    templates: Templates, data: RenderInviteEmailsInput
) -> RenderInviteEmailsResult:
    """The invite's emails (the API's preview calls this too: the same bytes)."""
    return RenderInviteEmailsResult(
        invitation=render_invite_message(templates, data, INVITATION),
        reminder=render_invite_message(templates, data, REMINDER) if data.with_reminder else None,
    )


def render_invite_message(
    templates: Templates, data: RenderInviteEmailsInput, variant: str
) -> EmailMessage:
    """One of an invite's emails: the invitation or the reminder (`variant`)."""
    variables = {
        "inviter_name": data.inviter_name,
        "tenant_name": data.tenant_name,
        "role": data.role,
        "accept_url": data.accept_url,
        "expires_on": data.expires_at[:10],
        "reminder": variant == REMINDER,
    }
    rendered = templates.render(INVITE_TEMPLATE, data.locale, variables, data.brand)
    return EmailMessage(
        sender=data.sender,
        to=[data.to],
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        tags=[
            *correlation_tags(SendKind.INVITE, data.invite_id),
            EmailTag(MESSAGE_TAG, variant),
        ],
        invite_token=data.invite_token,
    )
