"""Ids of sends: public ids (`inv_…`, `em_…`), workflow ids (`invite-…`, `email-…`) and kinds.

Workflow ids are business keys, never an address: ids are stored in plain text. Public ids
carry a type prefix so one status route serves both kinds.
"""

INVITE_ID_PREFIX = "inv_"
EMAIL_ID_PREFIX = "em_"
_WORKFLOW_PREFIX = {INVITE_ID_PREFIX: "invite-", EMAIL_ID_PREFIX: "email-"}
_PUBLIC_PREFIX = {wf: public for public, wf in _WORKFLOW_PREFIX.items()}

KIND_INVITE = "invite"
KIND_EMAIL = "email"


def workflow_id_for(public_id: str) -> str | None:
    """`inv_abc` -> `invite-abc`; None for an id that is not ours."""
    for id_prefix, wf_prefix in _WORKFLOW_PREFIX.items():
        rest = public_id.removeprefix(id_prefix)
        if rest != public_id and rest.isalnum() and len(rest) <= 64:
            return wf_prefix + rest
    return None


def public_id_for(workflow_id: str) -> str | None:
    """`invite-abc` -> `inv_abc`; None for a workflow id that is not ours."""
    for wf_prefix, id_prefix in _PUBLIC_PREFIX.items():
        if workflow_id.startswith(wf_prefix):
            return id_prefix + workflow_id.removeprefix(wf_prefix)
    return None
