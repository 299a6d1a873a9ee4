"""Rendering of templated emails, run once per email as a local activity.

The rendered message is recorded in the workflow history, so every later send attempt
uses exactly these bytes (Resend answers 409 if one idempotency key carries two payloads).
"""

from __future__ import annotations

from html import escape

from temporalio import activity

from activities.delivery_contract import SendKind, correlation_tags
from activities.types import EmailMessage, RenderInviteInput, RenderInviteResult

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
