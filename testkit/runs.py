"""The runs of one workflow execution chain, as tests and scripts read them from the server."""

from __future__ import annotations

from collections.abc import AsyncIterator

from temporalio.client import Client, WorkflowHistory


async def each_run(
    client: Client, workflow_id: str, run_id: str
) -> AsyncIterator[tuple[str, WorkflowHistory]]:
    """Each run's id and history from `run_id` on, following continue-as-new to the last."""
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        yield run_id, history
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
