"""The invite checks shared by every workflow that holds invites (workflows/invite_checks.py):
pure functions, so their refusals are tested here without a server."""

import pytest
from temporalio.exceptions import ApplicationError

from workflows import types as refusals
from workflows.invite_checks import (
    MAX_WRONG_TOKENS,
    check_pending,
    check_scope,
    check_token,
    right_token,
)
from workflows.status import InviteStatus


def _refused(check: object, *args: object) -> str | None:
    assert callable(check)
    with pytest.raises(ApplicationError) as refused:
        check(*args)
    return refused.value.type


def test_scope_refuses_another_tenant_as_unknown() -> None:
    check_scope("t1", None)
    check_scope("t1", "t1")
    assert _refused(check_scope, "t1", "t2") == refusals.INVITE_NOT_FOUND
    assert _refused(check_scope, None, "t2") == refusals.INVITE_NOT_FOUND


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (InviteStatus.ACCEPTED, refusals.INVITE_ALREADY_ACCEPTED),
        (InviteStatus.EXPIRED, refusals.INVITE_EXPIRED),
        (InviteStatus.REVOKED, refusals.INVITE_REVOKED),
    ],
)
def test_pending_refuses_ended_invites(status: InviteStatus, error_type: str) -> None:
    assert _refused(check_pending, status, False) == error_type


def test_pending_invite_due_to_expire_is_expired() -> None:
    check_pending(InviteStatus.PENDING, False)
    assert _refused(check_pending, InviteStatus.PENDING, True) == refusals.INVITE_EXPIRED


def test_token_must_fit_the_link() -> None:
    assert _refused(check_token, "digest", None, 0) == refusals.INVITE_TOKEN_REQUIRED
    assert _refused(check_token, None, "digest", 0) == refusals.INVITE_TOKEN_NOT_EXPECTED
    check_token("digest", "other", 0)  # a wrong token is the update's to count, not refused
    check_token(None, None, 0)


def test_lockout_refuses_only_wrong_tokens() -> None:
    check_token("digest", "other", MAX_WRONG_TOKENS - 1)
    assert _refused(check_token, "digest", "other", MAX_WRONG_TOKENS) == refusals.INVITE_LOCKED
    check_token("digest", "digest", MAX_WRONG_TOKENS + 5)  # the holder is never locked out


def test_right_token() -> None:
    assert right_token("digest", "digest")
    assert not right_token("digest", "other")
    assert not right_token("digest", None)
    assert right_token(None, None)
