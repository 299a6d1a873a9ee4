"""Public ids <-> workflow ids: a batch item's id alone finds its batch and its index."""

from __future__ import annotations

import pytest

from activities.delivery_contract import SendKind
from workflows.ids import (
    batch_ids,
    batch_item_id,
    batch_item_of,
    batch_workflow_id_for,
    workflow_id_for,
)


def test_item_ids_round_trip_to_their_batch_and_index() -> None:
    batch_id, workflow_id = batch_ids("abc123")
    assert (batch_id, workflow_id) == ("bat_abc123", "batch-abc123")
    assert batch_workflow_id_for(batch_id) == workflow_id
    for kind, index in [(SendKind.INVITE, 0), (SendKind.EMAIL, 99)]:
        item_id = batch_item_id(kind, "abc123", index)
        assert batch_item_of(item_id) == (workflow_id, kind, index)
        # Never mistaken for a single send's id.
        assert workflow_id_for(item_id) is None


@pytest.mark.parametrize(
    "public_id",
    [
        "inv_abc123",  # a single send
        "inv_abc_01",  # a leading zero: one spelling per item
        "inv_abc_-1",
        "inv_abc_1000",
        "inv_abc_²",
        "inv_ab-c_1",
        "inv_ábc_1",
        "bat_abc_1",
        "xx_abc_1",
        "inv_" + "a" * 65 + "_1",
    ],
)
def test_other_ids_are_not_batch_items(public_id: str) -> None:
    assert batch_item_of(public_id) is None


@pytest.mark.parametrize("public_id", ["batch-abc", "bat_", "bat_a-b", "bat_ábc", "em_abc"])
def test_only_batch_ids_name_a_batch(public_id: str) -> None:
    assert batch_workflow_id_for(public_id) is None
