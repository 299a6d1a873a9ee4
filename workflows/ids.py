"""Ids of sends: public ids (`inv_…`, `em_…`) and workflow ids (`invite-…`, `email-…`).

Workflow ids are business keys, never an address: ids are stored in plain text. Public ids
carry a type prefix so one status route serves both kinds.

A batch (`bat_…` <-> `batch-…`) is one workflow for all its items; an item's public id is
its kind's prefix, the batch key and its index (`inv_<key>_3`), so the id alone finds the
batch and the item, without a lookup.

The key of an id issued since 1.0 is 48 lower-case hex digits: 32 of a keyed digest
(`api.idempotency.send_key`) and a 16-digit tag, keyed too, over the tenant and those 32:
the API refuses an id whose tag is not its caller's before it asks Temporal anything
(`api.idempotency.owned_workflow_id`). Ids issued by 0.1.0 have 32 digits and no tag.
"""

from activities.delivery_contract import SendKind

# kind -> (public id prefix, workflow id prefix)
_PREFIXES = {SendKind.INVITE: ("inv_", "invite-"), SendKind.EMAIL: ("em_", "email-")}
BATCH_ID_PREFIX, BATCH_WORKFLOW_PREFIX = "bat_", "batch-"
MAX_KEY = 64
# A key issued since 1.0: a 32-digit id and a 16-digit tag; one issued by 0.1.0: 32 digits.
ID_HEX, TAG_HEX = 32, 16
_HEX = frozenset("0123456789abcdef")


def is_tagged_key(key: str) -> bool:
    """Whether `key` has the shape of a key issued since 1.0 (id and tag)."""
    return len(key) == ID_HEX + TAG_HEX and set(key) <= _HEX


def is_untagged_key(key: str) -> bool:
    """Whether `key` has the shape of a key issued by 0.1.0 (32 hex digits, no tag)."""
    return len(key) == ID_HEX and set(key) <= _HEX


def key_of(public_id: str) -> str | None:
    """The key of a single send's or a batch's public id (`inv_<key>`, `bat_<key>`), or of a
    batch item's (`inv_<key>_3`); None for an id that is not ours."""
    if (item := batch_item_of(public_id)) is not None:
        return item[0].removeprefix(BATCH_WORKFLOW_PREFIX)
    workflow_id = workflow_id_for(public_id) or batch_workflow_id_for(public_id)
    return workflow_id.partition("-")[2] if workflow_id else None


def send_ids(kind: SendKind, key: str) -> tuple[str, str]:
    """The public and workflow ids of a new send: `invite`, `abc` -> `inv_abc`, `invite-abc`."""
    id_prefix, wf_prefix = _PREFIXES[kind]
    return id_prefix + key, wf_prefix + key


def workflow_id_for(public_id: str) -> str | None:
    """`inv_abc` -> `invite-abc`; None for an id that is not ours."""
    for id_prefix, wf_prefix in _PREFIXES.values():
        rest = public_id.removeprefix(id_prefix)
        if rest != public_id and rest.isalnum() and len(rest) <= MAX_KEY:
            return wf_prefix + rest
    return None


def public_id_for(workflow_id: str) -> str | None:
    """`invite-abc` -> `inv_abc`; None for a workflow id that is not ours."""
    for id_prefix, wf_prefix in _PREFIXES.values():
        if workflow_id.startswith(wf_prefix):
            return id_prefix + workflow_id.removeprefix(wf_prefix)
    return None


def batch_ids(key: str) -> tuple[str, str]:
    """The public and workflow ids of a new batch: `abc` -> `bat_abc`, `batch-abc`."""
    return BATCH_ID_PREFIX + key, BATCH_WORKFLOW_PREFIX + key


def batch_workflow_id_for(public_id: str) -> str | None:
    """`bat_abc` -> `batch-abc`; None for an id that is not a batch's."""
    key = public_id.removeprefix(BATCH_ID_PREFIX)
    if key != public_id and key.isascii() and key.isalnum() and len(key) <= MAX_KEY:
        return BATCH_WORKFLOW_PREFIX + key
    return None


def batch_item_id(kind: SendKind, key: str, index: int) -> str:
    """The public id of a batch's item: `invite`, `abc`, 3 -> `inv_abc_3`."""
    return f"{_PREFIXES[kind][0]}{key}_{index}"


def batch_item_of(public_id: str) -> tuple[str, SendKind, int] | None:
    """`inv_abc_3` -> (`batch-abc`, invite, 3); None for an id that is not a batch item's."""
    for kind, (id_prefix, _) in _PREFIXES.items():
        rest = public_id.removeprefix(id_prefix)
        key, _, index = rest.partition("_")
        if rest == public_id or not (key.isascii() and key.isalnum() and len(key) <= MAX_KEY):
            continue
        # Digits only, no sign and no leading zero: one spelling per item.
        if index.isascii() and index.isdigit() and len(index) <= 3 and str(int(index)) == index:
            return BATCH_WORKFLOW_PREFIX + key, kind, int(index)
    return None
