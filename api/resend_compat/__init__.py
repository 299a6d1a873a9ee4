"""A drop-in for Resend: its email API, Resend-shaped, on our service and workflows.

An app keeps its Resend code and changes one setting (`resend.api_url`, or the Node SDK's
base URL); its sends become durable. `routes` (the endpoints), `schemas` (Resend's bodies),
`mapping` (Resend's shapes <-> ours), `errors` (Resend's error format, in one place).
"""
