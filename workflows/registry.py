"""Every workflow type this code runs, in one list: the worker registers them, and the
replay tools (`make replay`, tests/test_replay.py) replay any recorded or live history of
them."""

from __future__ import annotations

from workflows.app_events.delivery import AppEventDelivery
from workflows.app_events.endpoints import AppWebhookEndpoints
from workflows.coalesce.coalescer import Coalescer
from workflows.invite import Invite
from workflows.invite_batch import InviteBatch
from workflows.send_batch import SendBatch
from workflows.send_email import SendEmail
from workflows.suppressions import Suppressions

WORKFLOWS: list[type] = [
    Invite,
    SendEmail,
    SendBatch,
    InviteBatch,
    AppWebhookEndpoints,
    AppEventDelivery,
    Coalescer,
    Suppressions,
]
