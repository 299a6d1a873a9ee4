"""Public ids <-> workflow ids: a batch item's id alone finds its batch and its index."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from activities.delivery_contract import SendKind
from api.idempotency import (
    IdKeys,
    owned_batch_item,
    owned_batch_workflow_id,
    owned_workflow_id,
    send_key,
)
from api.tenants import Caller
from config import Settings
from infra.codec import new_codec_key
from testkit.keys import CODEC_KEYS
from workflows.ids import (
    batch_ids,
    batch_item_id,
    batch_item_of,
    batch_workflow_id_for,
    is_tagged_key,
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


@pytest.fixture(autouse=True)
def _id_keys() -> Iterator[None]:
    """These tests install keys of their own: the process's come back after each."""
    installed = IdKeys._installed
    yield
    IdKeys._installed = installed


def _settings(codec_keys: str) -> Settings:
    return Settings(_env_file=None, payload_codec_keys=SecretStr(codec_keys))


def test_ids_are_keyed_so_nobody_computes_one_offline() -> None:
    # 0.1.0: sha256(scope, kind, key)[:32], computable by anyone who knows the key.
    unkeyed = hashlib.sha256(b"tenant:acme\x00invite\x00signup-42").hexdigest()[:32]
    IdKeys.install(_settings(CODEC_KEYS))
    key = send_key(SendKind.INVITE, "signup-42", tenant_id="acme")
    assert is_tagged_key(key) and unkeyed not in key
    assert send_key(SendKind.INVITE, "signup-42", tenant_id="acme") == key  # idempotent
    assert send_key(SendKind.INVITE, "signup-42", tenant_id="globex") != key
    # Another server secret, another id.
    IdKeys._installed = None
    IdKeys.install(_settings(new_codec_key("other")))
    assert send_key(SendKind.INVITE, "signup-42", tenant_id="acme")[:32] != key[:32]


def test_ids_stay_the_same_when_a_new_codec_key_is_put_first() -> None:
    old = new_codec_key("old")
    IdKeys._installed = None
    IdKeys.install(_settings(old))
    before = send_key(SendKind.EMAIL, "k1", tenant_id="acme")
    IdKeys._installed = None
    IdKeys.install(_settings(f"{new_codec_key('new')},{old}"))
    assert send_key(SendKind.EMAIL, "k1", tenant_id="acme") == before


def test_only_the_tenant_its_id_was_issued_to_gets_its_workflow_id() -> None:
    IdKeys.install(_settings(CODEC_KEYS))
    acme, globex = Caller("a", tenant_id="acme"), Caller("g", tenant_id="globex")
    operator = Caller("o", operator=True)
    key = send_key(SendKind.EMAIL, "k", tenant_id="acme")
    email_id, workflow_id = f"em_{key}", f"email-{key}"
    assert owned_workflow_id(email_id, acme) == workflow_id
    assert owned_workflow_id(email_id, operator) == workflow_id
    assert owned_workflow_id(email_id, globex) is None
    # A forged tag, or a tagged id turned into one without a tag, names nothing.
    forged = key[:32] + ("0" if key[-1] != "0" else "1") * 16
    assert owned_workflow_id(f"em_{forged}", acme) is None
    assert owned_workflow_id(f"em_{key[:40]}", acme) is None
    # Batches and their items are checked the same way.
    batch_key = send_key("batch-email", "b", tenant_id="acme")
    assert owned_batch_workflow_id(f"bat_{batch_key}", acme) == f"batch-{batch_key}"
    assert owned_batch_workflow_id(f"bat_{batch_key}", globex) is None
    assert owned_batch_item(f"em_{batch_key}_2", acme) == (
        f"batch-{batch_key}",
        SendKind.EMAIL,
        2,
    )
    assert owned_batch_item(f"em_{batch_key}_2", globex) is None
    # Ids issued by 0.1.0 (32 hex, no tag) still reach Temporal, whose TenantId decides.
    old = "0123456789abcdef0123456789abcdef"
    assert owned_workflow_id(f"inv_{old}", globex) == f"invite-{old}"
    assert owned_workflow_id("inv_abc", globex) is None
    assert owned_workflow_id("inv_abc", operator) == "invite-abc"
