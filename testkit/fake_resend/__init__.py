"""A fake Resend HTTP API for tests and benchmarks.

It answers like https://api.resend.com (request fields, error bodies, idempotency keys and
rate-limit headers as documented in /work/shared/reference/resend-and-temporal.md §1), so the
activity code that passes against it also works against the real provider. What the real one
cannot do on demand is injected here: latency, scripted faults, random errors, a rate limit,
and "the client timed out but the email went out anyway" (``Fault(hold=...)``).

By concern: `faults` (what can be scripted), `store` (state: deliveries, counters,
idempotency), `validation` and `errors` (what Resend accepts and answers), `app` (the HTTP
routes, `/_fake/*` control routes included), `server` (in a thread), `client` (the typed
control client, and the fake as a process), `__main__` (the CLI).

In-process::

    with FakeResendServer() as server:        # or: async with FakeResendServer() as server:
        server.fake.enqueue_faults([Fault(status=429, retry_after=2)])
        ...  # point the code under test at server.url with the key DEFAULT_API_KEY
        await server.fake.wait_for_deliveries(1, timeout=5)

As a separate process, driven through its control routes::

    fake = await FakeResendProcess.start(log_dir, latency=2.0)
    await fake.client.configure(error_rate=0.1)
    deliveries = await fake.client.deliveries()
"""

from testkit.fake_resend.app import build_app
from testkit.fake_resend.client import FakeResendClient, FakeResendProcess
from testkit.fake_resend.faults import DEFAULT_API_KEY, FakeConfig, Fault, fault_of_kind
from testkit.fake_resend.server import FakeResendServer
from testkit.fake_resend.store import Delivery, FakeResend, FakeStats, RequestRecord

__all__ = [
    "DEFAULT_API_KEY",
    "Delivery",
    "FakeConfig",
    "FakeResend",
    "FakeResendClient",
    "FakeResendProcess",
    "FakeResendServer",
    "FakeStats",
    "Fault",
    "RequestRecord",
    "build_app",
    "fault_of_kind",
]
