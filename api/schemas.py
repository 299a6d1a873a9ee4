"""Request models of the HTTP API (fields: api/fields.py; answers: api/answers.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from activities.delivery_contract import MAX_BATCH_EMAILS, RESERVED_TAG_NAMES
from activities.templating import TEMPLATE_NAME
from api.fields import (
    MAX_BODY_CHARS,
    MAX_CONTENT_BYTES,
    AcceptUrl,
    Address,
    Locale,
    Name,
    NoLineBreaks,
    Recipients,
    SendAt,
    Sender,
    SingleLine,
    StrictModel,
    TenantId,
)


class InviteCreate(StrictModel):
    """An invitation to a tenant: the app's own link, or one with a token we issue."""

    email: Address
    tenant_name: Name
    inviter_name: Name
    role: Annotated[SingleLine, Field(min_length=1, max_length=100)] | None = None
    tenant_id: TenantId | None = None
    send_at: SendAt | None = None
    accept_url: AcceptUrl | None = None
    locale: Locale | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=30)] = 7
    remind_after_days: Annotated[
        int | None,
        Field(ge=1, le=29, description="One reminder this many days in, if not accepted."),
    ] = None

    @model_validator(mode="after")
    def _in_order(self) -> InviteCreate:
        if self.remind_after_days is not None and self.remind_after_days >= self.expires_in_days:
            raise ValueError("remind_after_days must be less than expires_in_days")
        if self.send_at is not None:
            first_due = self.remind_after_days or self.expires_in_days
            if self.send_at >= datetime.now(UTC) + timedelta(days=first_due):
                raise ValueError("send_at must come before the reminder and the expiry")
        return self


class InviteAcceptBody(StrictModel):
    """The token from the accept link (omit it for an invite with the app's own link)."""

    token: Annotated[str, Field(min_length=1, max_length=256)] | None = None


TagText = Annotated[
    str, NoLineBreaks, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")
]


class Tag(StrictModel):
    name: TagText
    value: TagText


class EmailCreate(StrictModel):
    """A caller-composed email: `html` and/or `text`, or a `template` with `variables`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    to: Recipients
    subject: Annotated[SingleLine, Field(min_length=1, max_length=998)] | None = None
    html: Annotated[str, Field(min_length=1, max_length=MAX_BODY_CHARS)] | None = None
    text: Annotated[str, Field(min_length=1, max_length=MAX_BODY_CHARS)] | None = None
    template: (
        Annotated[
            str,
            Field(
                pattern=f"^{TEMPLATE_NAME.pattern}$",
                description="A template of templates/ or TEMPLATE_DIR (e.g. invite), instead of "
                "html/text; its subject unless `subject` is given.",
            ),
        ]
        | None
    ) = None
    variables: Annotated[dict[str, Any], Field(max_length=100)] | None = None
    locale: Locale | None = None
    sender: Sender | None = Field(default=None, alias="from")
    reply_to: Recipients | None = None
    tags: Annotated[list[Tag], Field(max_length=10)] | None = None
    tenant_id: TenantId | None = None
    send_at: SendAt | None = None

    @model_validator(mode="after")
    def _has_body(self) -> EmailCreate:
        if self.template is not None:
            if self.html is not None or self.text is not None:
                raise ValueError("give a template or html/text, not both")
        elif self.variables is not None or self.locale is not None:
            raise ValueError("variables and locale go with a template")
        elif self.html is None and self.text is None:
            raise ValueError("give html, text or both (or a template)")
        elif self.subject is None:
            raise ValueError("subject is required without a template")
        size = sum(len(part.encode()) for part in (self.html, self.text) if part is not None)
        if size > MAX_CONTENT_BYTES:
            raise ValueError(f"html and text together must be at most {MAX_CONTENT_BYTES} bytes")
        if self.tags and any(t.name in RESERVED_TAG_NAMES for t in self.tags):
            raise ValueError("tag names 'kind' and 'email_id' are reserved")
        return self


NO_SCHEDULING_IN_BATCH = (
    "send_at is not supported in a batch (the batch goes out in one provider call at once): "
    "schedule it with a single POST"
)


def _one_tenant(tenant_ids: list[str | None], field: str) -> None:
    for index, tenant_id in enumerate(tenant_ids):
        if tenant_id != tenant_ids[0]:
            raise ValueError(
                f"{field}[{index}]: tenant_id differs from {field}[0]'s; a batch "
                "belongs to one tenant"
            )


# What an invite's life (workflow `Invite`) takes and a batch invite does not.
INVITE_LIFE_FIELDS = frozenset({"accept_url", "locale", "expires_in_days", "remind_after_days"})


class BatchInvite(InviteCreate):
    """An invitation of a batch: as `POST /v1/invites` takes it, without `send_at`."""

    @model_validator(mode="after")
    def _not_scheduled(self) -> BatchInvite:
        if self.send_at is not None:
            raise ValueError(NO_SCHEDULING_IN_BATCH)
        given = sorted(INVITE_LIFE_FIELDS & self.model_fields_set)
        if given:
            raise ValueError(
                f"{', '.join(given)}: a batch's invites share these, given once beside "
                "`invites` (accept_url: only POST /v1/invites takes the app's own link)"
            )
        return self


class BatchEmail(EmailCreate):
    """An email of a batch: as `POST /v1/emails` takes it, without `send_at` (and, like
    every email here, without attachments, which Resend's batch endpoint refuses)."""

    @model_validator(mode="after")
    def _not_scheduled(self) -> BatchEmail:
        if self.send_at is not None:
            raise ValueError(NO_SCHEDULING_IN_BATCH)
        if self.template is not None:
            raise ValueError("a batch email gives html and/or text; templates: POST /v1/emails")
        return self


class InviteBatchCreate(StrictModel):
    """1 to 100 invitations, validated together: one invalid item refuses the whole batch
    (422 naming its index) and nothing is sent."""

    invites: Annotated[list[BatchInvite], Field(min_length=1, max_length=MAX_BATCH_EMAILS)]
    locale: Locale | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=30)] = 7
    remind_after_days: Annotated[
        int | None,
        Field(
            ge=1,
            le=29,
            description="One reminder this many days in, to each invite not "
            "accepted by then (all in one provider call).",
        ),
    ] = None

    @model_validator(mode="after")
    def _single_tenant(self) -> InviteBatchCreate:
        _one_tenant([invite.tenant_id for invite in self.invites], "invites")
        if self.remind_after_days is not None and self.remind_after_days >= self.expires_in_days:
            raise ValueError("remind_after_days must be less than expires_in_days")
        return self


class EmailBatchCreate(StrictModel):
    """1 to 100 emails, validated together: one invalid item refuses the whole batch (422
    naming its index) and nothing is sent."""

    emails: Annotated[list[BatchEmail], Field(min_length=1, max_length=MAX_BATCH_EMAILS)]

    @model_validator(mode="after")
    def _single_tenant(self) -> EmailBatchCreate:
        _one_tenant([email.tenant_id for email in self.emails], "emails")
        return self
