"""Ids of sends: public ids (`inv_…`, `em_…`) and workflow ids (`invite-…`, `email-…`).

Workflow ids are business keys, never an address: ids are stored in plain text. Public ids
carry a type prefix so one status route serves both kinds.
"""

from activities.delivery_contract import SendKind

# kind -> (public id prefix, workflow id prefix)
_PREFIXES = {SendKind.INVITE: ("inv_", "invite-"), SendKind.EMAIL: ("em_", "email-")}


def send_ids(kind: SendKind, key: str) -> tuple[str, str]:
    """The public and workflow ids of a new send: `invite`, `abc` -> `inv_abc`, `invite-abc`."""
    id_prefix, wf_prefix = _PREFIXES[kind]
    return id_prefix + key, wf_prefix + key


def workflow_id_for(public_id: str) -> str | None:
    """`inv_abc` -> `invite-abc`; None for an id that is not ours."""
    for id_prefix, wf_prefix in _PREFIXES.values():
        rest = public_id.removeprefix(id_prefix)
        if rest != public_id and rest.isalnum() and len(rest) <= 64:
            return wf_prefix + rest
    return None


def public_id_for(workflow_id: str) -> str | None:
    """`invite-abc` -> `inv_abc`; None for a workflow id that is not ours."""
    for id_prefix, wf_prefix in _PREFIXES.values():
        if workflow_id.startswith(wf_prefix):
            return id_prefix + workflow_id.removeprefix(wf_prefix)
    return None
