"""The checks an invite's accept and revoke updates make, shared by every workflow that
holds invites (a single invite's `Invite`; a batch invite's items next): the same
refusals, the same error types, the same constant-time token comparison.

Validators raise; a rejection is not recorded in history, so these issue no commands.
"""

from __future__ import annotations

import hmac

from temporalio.exceptions import ApplicationError

from workflows.status import InviteStatus
from workflows.types import (
    INVITE_ALREADY_ACCEPTED,
    INVITE_EXPIRED,
    INVITE_LOCKED,
    INVITE_NOT_FOUND,
    INVITE_REVOKED,
    INVITE_TOKEN_NOT_EXPECTED,
    INVITE_TOKEN_REQUIRED,
)

# Wrong tokens an invite records; past them a wrong token is refused by the validator (not
# recorded: the history stays bounded) and the right one still accepts. 256-bit tokens are
# not guessed; this bounds what a leaky accept page in front of us can write to history.
MAX_WRONG_TOKENS = 10
_REFUSALS = {
    InviteStatus.ACCEPTED: (INVITE_ALREADY_ACCEPTED, "the invite was already accepted"),
    InviteStatus.EXPIRED: (INVITE_EXPIRED, "the invite has expired"),
    InviteStatus.REVOKED: (INVITE_REVOKED, "the invite was revoked"),
}


def right_token(expected: str | None, presented: str | None) -> bool:
    """Whether the presented token digest is the invite's (always, for the app's own link)."""
    return expected is None or hmac.compare_digest(presented or "", expected)


def check_scope(owner: str | None, asked_by: str | None) -> None:
    """Another tenant's invite is refused as an unknown one."""
    if asked_by is not None and asked_by != owner:
        raise ApplicationError("no invite with this id", type=INVITE_NOT_FOUND)


def check_pending(status: InviteStatus, due_to_expire: bool) -> None:
    """Refuse an invite that is no longer pending; `due_to_expire`: its expiry timer is due
    but its task has not run yet, so it has expired all the same."""
    if due_to_expire:
        raise ApplicationError("the invite has expired", type=INVITE_EXPIRED)
    refusal = _REFUSALS.get(status)
    if refusal is not None:
        error_type, message = refusal
        raise ApplicationError(message, type=error_type)


def check_token(expected: str | None, presented: str | None, wrong_tokens: int) -> None:
    """Refuse an accept whose token does not fit the invite's link, or a wrong token once
    the invite has recorded `MAX_WRONG_TOKENS` (the token's holder is never locked out)."""
    if expected is not None and presented is None:
        raise ApplicationError("this invite is accepted with its token", type=INVITE_TOKEN_REQUIRED)
    if expected is None and presented is not None:
        raise ApplicationError(
            "this invite uses the app's own link: accept it without a token",
            type=INVITE_TOKEN_NOT_EXPECTED,
        )
    if wrong_tokens >= MAX_WRONG_TOKENS and not right_token(expected, presented):
        raise ApplicationError("too many wrong tokens for this invite", type=INVITE_LOCKED)
