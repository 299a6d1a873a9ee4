"""`AppWebhookEndpoints`: one tenant's webhook endpoints (Temporal is our only store).

An entity workflow per tenant, started by the first change (update-with-start): updates
change it (create, update, rotate, delete; validators refuse an unknown id or one endpoint
too many before anything is recorded); every change is also written to its memo, which is
how everyone reads them (`describe`: the server answers, no worker), the `endpoints` query
being the worker's view. It never ends; it continues as new, carrying its endpoints, when
its history grows. Auto-Upgrade: it lives across builds. The endpoints' secrets are in
update arguments and results, the memo, query results and the continue-as-new input only,
all encrypted by the payload codec.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.app_webhook_types import (
        ENDPOINT_NOT_FOUND,
        ENDPOINTS_MEMO,
        ENDPOINTS_WORKFLOW,
        TOO_MANY_ENDPOINTS,
        ChangeEndpointInput,
        CreateEndpointInput,
        EndpointsState,
        WebhookEndpoint,
    )

# Continue as new well before Temporal's 10K-event warning (an update is ~3 events).
MAX_HISTORY_EVENTS = 2_000


@workflow.defn(name=ENDPOINTS_WORKFLOW, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class AppWebhookEndpoints:
    """A tenant's webhook endpoints: create, change and read them."""

    @workflow.init
    def __init__(self, state: EndpointsState) -> None:
        self._state = state

    @workflow.run
    async def run(self, state: EndpointsState) -> None:
        if state.endpoints:  # a continued run: the memo starts empty
            self._publish()
        await workflow.wait_condition(
            lambda: (
                workflow.info().get_current_history_length() > MAX_HISTORY_EVENTS
                or workflow.info().is_continue_as_new_suggested()
            )
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._state, memo={})

    @workflow.query
    def endpoints(self) -> list[WebhookEndpoint]:
        return self._state.endpoints

    @workflow.update
    def create(self, data: CreateEndpointInput) -> WebhookEndpoint:
        self._state.endpoints.append(data.endpoint)
        self._publish()
        return data.endpoint

    @create.validator
    def _check_create(self, data: CreateEndpointInput) -> None:
        if len(self._state.endpoints) >= self._state.max_endpoints:
            raise ApplicationError(
                f"at most {self._state.max_endpoints} webhook endpoints per tenant",
                type=TOO_MANY_ENDPOINTS,
            )

    @workflow.update
    def change(self, data: ChangeEndpointInput) -> WebhookEndpoint:
        found = self._find(data.id)
        assert found is not None  # the validator
        if data.delete:
            self._state.endpoints.remove(found)
        else:
            found.endpoint = data.endpoint if data.endpoint is not None else found.endpoint
            found.events = data.events if data.events is not None else found.events
            found.status = data.status if data.status is not None else found.status
            found.signing_secret = data.signing_secret or found.signing_secret
        self._publish()
        return found

    def _publish(self) -> None:
        """The endpoints in the memo too (encrypted by the codec like every payload): the
        server answers a describe without a worker, so a burst of emails reads them
        concurrently instead of queueing queries on this one workflow."""
        workflow.upsert_memo({ENDPOINTS_MEMO: self._state.endpoints})

    @change.validator
    def _check_change(self, data: ChangeEndpointInput) -> None:
        if self._find(data.id) is None:
            raise ApplicationError("no webhook with this id", type=ENDPOINT_NOT_FOUND)

    def _find(self, endpoint_id: str) -> WebhookEndpoint | None:
        return next((e for e in self._state.endpoints if e.id == endpoint_id), None)
