"""Between Resend's shapes and ours: a send request becomes our message, a send's recorded
input and status become Resend's email object. Pure functions, no I/O."""

from __future__ import annotations

from activities.delivery_contract import SendKind, correlation_tags
from activities.types import EmailAttachment, EmailMessage, EmailTag, RenderInviteInput
from api.resend_compat.schemas import ResendEmail, ResendLastEvent, ResendSendRequest
from workflows.batch_types import BatchItemInput
from workflows.status import SendStatus
from workflows.types import EmailStatusResult, InviteInput, SendEmailInput

# Our status -> Resend's `last_event`. Resend has no word for a send that is being tried
# or retried: it has not gone out yet, which Resend calls `queued`.
LAST_EVENT: dict[SendStatus, ResendLastEvent] = {
    SendStatus.SCHEDULED: ResendLastEvent.SCHEDULED,
    SendStatus.QUEUED: ResendLastEvent.QUEUED,
    SendStatus.SENDING: ResendLastEvent.QUEUED,
    SendStatus.RETRYING: ResendLastEvent.QUEUED,
    SendStatus.SENT: ResendLastEvent.SENT,
    SendStatus.FAILED: ResendLastEvent.FAILED,
    SendStatus.UNDETERMINED: ResendLastEvent.UNDETERMINED,
    SendStatus.CANCELLED: ResendLastEvent.CANCELED,
    SendStatus.DELIVERY_DELAYED: ResendLastEvent.DELIVERY_DELAYED,
    SendStatus.DELIVERED: ResendLastEvent.DELIVERED,
    SendStatus.BOUNCED: ResendLastEvent.BOUNCED,
    SendStatus.COMPLAINED: ResendLastEvent.COMPLAINED,
    SendStatus.SUPPRESSED: ResendLastEvent.SUPPRESSED,
}


def message_of(body: ResendSendRequest, email_id: str) -> EmailMessage:
    """The message to record and send: the caller's fields, and our correlation tags."""
    return EmailMessage(
        sender=body.sender,
        to=body.to,
        subject=body.subject,
        html=body.html,
        text=body.text,
        reply_to=body.reply_to or [],
        tags=[
            *(EmailTag(t.name, t.value) for t in body.tags or []),
            *correlation_tags(SendKind.EMAIL, email_id),
        ],
        cc=body.cc or [],
        bcc=body.bcc or [],
        headers=body.headers or {},
        attachments=[
            EmailAttachment(
                filename=a.filename,
                content=a.base64_content(),
                path=a.path,
                content_type=a.content_type,
                content_id=a.content_id or a.inline_content_id,
            )
            for a in body.attachments or []
        ],
    )


def email_object(
    data: SendEmailInput | InviteInput | BatchItemInput,
    state: EmailStatusResult,
) -> ResendEmail:
    """Resend's email object of a send (a batch's item too). An invite's subject and body are
    rendered by the worker, not recorded in its input: they are null here (`GET
    /v1/emails/{id}` has its story).
    """
    common = {
        "id": state.id,
        "created_at": state.created_at,
        "scheduled_at": state.send_at,
        "last_event": LAST_EVENT[state.status],
    }
    invite: InviteInput | RenderInviteInput | None
    if isinstance(data, BatchItemInput):
        invite, message = data.invite, data.message
    elif isinstance(data, InviteInput):
        invite, message = data, None
    else:
        invite, message = None, data.message
    if invite is not None:
        return ResendEmail.model_validate(
            {
                **common,
                "from": invite.sender,
                "to": [invite.to],
                "subject": None,
                "html": None,
                "text": None,
                "cc": None,
                "bcc": None,
                "reply_to": None,
            }
        )
    if message is None:  # a batch item is an email or an invitation, never neither
        raise ValueError(f"send {state.id} has neither a message nor an invitation")
    return ResendEmail.model_validate(
        {
            **common,
            "from": message.sender,
            "to": message.to,
            "subject": message.subject,
            "html": message.html,
            "text": message.text,
            "cc": message.cc or None,
            "bcc": message.bcc or None,
            "reply_to": message.reply_to or None,
        }
    )
