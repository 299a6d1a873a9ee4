"""`Suppressions`: one tenant's suppression list, as an entity workflow (one per tenant,
id `suppressions-<tenant>`; Temporal is our only store).

Updates add (`add`: an existing address answers its entry, unchanged) and remove
(`remove`, by id or address); queries read the whole list (`entries`) or check addresses
(`suppressed`). It waits forever, continuing as new with its entries when the server
suggests it (each update adds events). At most `MAX_SUPPRESSIONS` entries (see there).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.suppressions import (
        ADD_MANY_UPDATE,
        ADD_UPDATE,
        CHECK_QUERY,
        LIST_FULL,
        LIST_QUERY,
        MAX_SUPPRESSIONS,
        REMOVE_MANY_UPDATE,
        REMOVE_UPDATE,
        AddSuppressionInput,
        AddSuppressionsInput,
        RemoveSuppressionInput,
        RemoveSuppressionsInput,
        Suppression,
        SuppressionsInput,
    )
    from workflows.delivery.history import iso

# Continue as new well before Temporal's history limits (an update is a few events).
MAX_RUN_EVENTS = 4_000


@workflow.defn(name=SuppressionsInput.WORKFLOW, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class Suppressions:
    @workflow.init
    def __init__(self, data: SuppressionsInput) -> None:
        # Here, not in `run`: the update that started the list runs before `run` does.
        self._tenant_id = data.tenant_id
        self._entries: dict[str, Suppression] = {e.email: e for e in data.entries}

    @workflow.run
    async def run(self, data: SuppressionsInput) -> None:
        await workflow.wait_condition(
            lambda: (
                workflow.info().is_continue_as_new_suggested()
                or workflow.info().get_current_history_length() > MAX_RUN_EVENTS
            )
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(SuppressionsInput(self._tenant_id, list(self._entries.values())))

    @workflow.update(name=ADD_UPDATE)
    def add(self, data: AddSuppressionInput) -> Suppression:
        return self._add(data)

    @workflow.update(name=ADD_MANY_UPDATE)
    def add_many(self, data: AddSuppressionsInput) -> list[Suppression]:
        """Several addresses in one update (the same address twice: one entry)."""
        added = [self._add(entry) for entry in data.entries]
        return list({entry.id: entry for entry in added}.values())

    @add_many.validator
    def _room_for_all(self, data: AddSuppressionsInput) -> None:
        new = {e.email for e in data.entries if e.email not in self._entries}
        self._check_room(len(new))

    def _add(self, data: AddSuppressionInput) -> Suppression:
        existing = self._entries.get(data.email)
        if existing is not None:
            return existing
        entry = Suppression(
            id=f"sup_{workflow.uuid4().hex}",
            email=data.email,
            origin=data.origin,
            created_at=iso(workflow.now()),
            source_id=data.source_id,
        )
        self._entries[data.email] = entry
        return entry

    @add.validator
    def _room_for(self, data: AddSuppressionInput) -> None:
        self._check_room(0 if data.email in self._entries else 1)

    def _check_room(self, new: int) -> None:
        if new and len(self._entries) + new > MAX_SUPPRESSIONS:
            raise ApplicationError(
                f"a suppression list holds at most {MAX_SUPPRESSIONS} addresses; it has "
                f"{len(self._entries)} and this adds {new}: remove some first",
                type=LIST_FULL,
                non_retryable=True,
            )

    @workflow.update(name=REMOVE_UPDATE)
    def remove(self, data: RemoveSuppressionInput) -> Suppression | None:
        return self._remove(data.id_or_email)

    @workflow.update(name=REMOVE_MANY_UPDATE)
    def remove_many(self, data: RemoveSuppressionsInput) -> list[Suppression]:
        """Several entries in one update; those found, each once."""
        removed = [self._remove(key) for key in data.ids_or_emails]
        return [entry for entry in removed if entry is not None]

    def _remove(self, key: str) -> Suppression | None:
        found = self._entries.get(key) or next(
            (e for e in self._entries.values() if e.id == key), None
        )
        if found is not None:
            del self._entries[found.email]
        return found

    @workflow.query(name=LIST_QUERY)
    def entries(self) -> list[Suppression]:
        return sorted(self._entries.values(), key=lambda e: e.created_at, reverse=True)

    @workflow.query(name=CHECK_QUERY)
    def suppressed(self, emails: list[str]) -> list[str]:
        return [e for e in emails if e in self._entries]
