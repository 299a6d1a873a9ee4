"""Rendering a batch of invitations at once: one local activity, one marker in history.

Each invitation renders exactly as a single invite does (`render_invite`); the recorded
result pins the bytes every attempt of the batch call sends (same key, same payload).
"""

from __future__ import annotations

from temporalio import activity

from activities.render import render_invite
from activities.types import RenderInviteBatchInput, RenderInviteBatchResult


@activity.defn(name="render_invite_batch")
async def render_invite_batch(data: RenderInviteBatchInput) -> RenderInviteBatchResult:
    """Render every invitation of a batch (pure; run as a local activity)."""
    messages = [(await render_invite(invite)).message for invite in data.invites]
    return RenderInviteBatchResult(messages=messages)
