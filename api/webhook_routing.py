"""Where a provider's delivery event goes: the send's workflow, found by our id (the tag the
message carried) or the provider's id, and signalled."""

from __future__ import annotations

import re

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.listing import list_page
from api.temporal_errors import RPC_TIMEOUT, temporal_errors
from workflows.ids import batch_item_of, workflow_id_for
from workflows.types import DELIVERY_EVENT_SIGNAL, DeliveryEventInput

_PROVIDER_ID = re.compile(r"[A-Za-z0-9-]{1,100}")


async def find_send(
    client: Client, *, email_id: str | None, provider_message_id: str | None
) -> str | None:
    """The workflow id of a send, by our id (its webhook tag) or else the provider's id.

    The provider id goes through visibility (eventually consistent); None if not found.
    """
    if email_id and (workflow_id := workflow_id_for(email_id)):
        return workflow_id
    if email_id and (item := batch_item_of(email_id)):
        return item[0]  # the batch routes the event to the item by its id
    # Only a well-formed id reaches the query text.
    if provider_message_id is None or not _PROVIDER_ID.fullmatch(provider_message_id):
        return None
    query = f'ProviderMessageId = "{provider_message_id}"'
    executions, _ = await list_page(client, query, 1, None)
    return executions[0].id if executions else None


async def signal_delivery_event(
    client: Client, workflow_id: str, event: DeliveryEventInput
) -> bool:
    """Signal a provider event to its send's workflow; False if no such open workflow."""
    with temporal_errors():
        try:
            await client.get_workflow_handle(workflow_id).signal(
                DELIVERY_EVENT_SIGNAL, event, rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
    return True
