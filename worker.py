"""The worker: runs the email workflows and the rate-limited provider activity.

Composition root: settings -> clients -> workers. `python worker.py` runs one; run as
many as you like, on any machines, against the same Temporal namespace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import httpx
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import PollerBehaviorAutoscaling, Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.app_webhook_types import DeliveryPolicyInput
from activities.app_webhooks import AppWebhookActivities, AppWebhookConfig
from activities.coalesce import CoalesceActivities
from activities.invite_tokens import TokenFillingTransport
from activities.outbound import OutboundPolicy
from activities.render import RenderActivities, render_invite
from activities.render_batch import render_invite_batch
from activities.send import SendActivities, WorkflowPinnedMessages
from activities.suppressions import SuppressionActivities, SuppressionStore
from activities.templating import Templates
from activities.transports.base import EmailTransport
from activities.transports.failover import FailoverTransport
from activities.transports.outbox import OutboxTransport
from activities.transports.pacer import Pacer
from activities.transports.resend import ResendTransport
from activities.transports.smtp import SmtpConfig, SmtpTransport
from config import Settings, get_settings
from infra.temporal_client import connect, encryption_problem, warn_if_plaintext
from observability import configure_logging
from workflows.coalesce.coalescer import Coalescer
from workflows.registry import WORKFLOWS

log = logging.getLogger("durable_mail.worker")


def build_transport(settings: Settings, http: httpx.AsyncClient | None) -> EmailTransport:
    """Resend when a key is configured (through `http`), else the local outbox (development);
    either way invite tokens are filled in just before the message leaves."""
    secret = settings.invite_token_secret
    return TokenFillingTransport(
        _provider(settings, http), secret.get_secret_value() if secret else None
    )


def _provider(settings: Settings, http: httpx.AsyncClient | None) -> EmailTransport:
    """PROVIDERS in order (one: that transport; several: failover between them); unset:
    Resend when a key is configured, else the local outbox."""
    names = [name.strip().lower() for name in (settings.providers or "").split(",")]
    names = [name for name in names if name]
    if not names:
        if settings.outbox_mode:
            return OutboxTransport(settings.outbox_dir)
        names = ["resend"]
    members = [_member(name, settings, http) for name in names]
    return members[0] if len(members) == 1 else FailoverTransport(members)


def _member(name: str, settings: Settings, http: httpx.AsyncClient | None) -> EmailTransport:
    if name == "resend":
        key = settings.resend_api_key
        if key is None or not key.get_secret_value():
            raise ValueError("PROVIDERS names resend: set RESEND_API_KEY")
        if http is None:
            raise ValueError("RESEND_API_KEY is set: the Resend transport needs an HTTP client")
        return ResendTransport(
            http,
            key.get_secret_value(),
            Pacer(settings.resend_rate_limit_per_second),
        )
    if name == "smtp":
        if settings.smtp_url is None:
            raise ValueError("PROVIDERS names smtp: set SMTP_URL")
        return SmtpTransport(
            SmtpConfig.from_url(settings.smtp_url.get_secret_value()),
            timeout=settings.smtp_timeout_seconds,
            ca_file=settings.smtp_ca_file,
            max_message_bytes=settings.smtp_max_message_bytes,
        )
    if name == "outbox":
        return OutboxTransport(settings.outbox_dir)
    raise ValueError(f"PROVIDERS: unknown provider {name!r} (resend, smtp, outbox)")


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """This build as a Worker Deployment Version (None: WORKER_VERSIONING=false).

    Our workflows declare their behavior (SendEmail, SendBatch Pinned; the invite's life
    Auto-Upgrade); one that did not would be Pinned: it finishes on the code it started on.
    """
    if not settings.worker_versioning:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(settings.worker_deployment_name, settings.worker_build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


# The server knows a version once a poller of it has reached it; until then, retry. The
# server makes the change through its deployment's own workflow: under load it may cancel
# or time the call out, or be briefly unavailable; setting the same version again is a no-op.
_RETRY = {
    RPCStatusCode.NOT_FOUND,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.ABORTED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}


async def set_current_version(client: Client, settings: Settings, timeout: float = 30.0) -> None:
    """Make this build the deployment's Current Version (new executions start on it).

    What `temporal worker deployment set-current-version` does; the worker calls it itself
    only when WORKER_SET_CURRENT=true (`make dev`, tests). Retries until the server has
    seen this version's pollers, and past transient failures, for at most `timeout` seconds.
    """
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace,
        deployment_name=settings.worker_deployment_name,
        build_id=settings.worker_build_id,
        identity=client.identity,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                request, timeout=timedelta(seconds=10)
            )
            return
        except RPCError as err:
            if err.status == RPCStatusCode.UNIMPLEMENTED:
                # A server without Worker Versioning (the time-skipping test server) routes
                # every task to any poller: there is nothing to make current.
                log.warning("the server has no Worker Versioning: %s", err.message)
                return
            if err.status not in _RETRY or loop.time() > deadline:
                raise
            log.info("set current version: %s, retrying", err.status.name)
        await asyncio.sleep(0.2)


class VersionedWorker(Worker):
    """A worker that runs as this build's version and, once it polls, makes that version
    current when the settings say so (WORKER_SET_CURRENT=true)."""

    def __init__(self, client: Client, settings: Settings, **options: Any) -> None:
        super().__init__(client, deployment_config=deployment_config(settings), **options)
        self._deployment_client = client
        self._settings = settings

    async def __aenter__(self) -> Worker:
        worker = await super().__aenter__()
        if self._settings.worker_versioning and self._settings.worker_set_current:
            await set_current_version(self._deployment_client, self._settings)
        return worker


# Our own modules, loaded once rather than per workflow run (see `workflow_runner`).
OUR_MODULES = ("workflows", "activities", "infra", "config")


def _renderers(renderer: RenderActivities) -> list[Callable[..., Any]]:
    """The template renderer's local activities: a single invite's, a batch's."""
    return [renderer.render_invite_emails, renderer.render_invite_batch_emails]


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with our modules passed through: re-importing `workflows.invite` for
    every new invite was 13% of the worker's CPU at 1,000 invites (py-spy). Our modules hold
    no mutable module state; the sandbox still guards each run, and the Replayer
    (`infra/replay.py`, `make replay`, tests/test_replay.py) replays every recorded history
    under the default, stricter sandbox."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*OUR_MODULES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


# The share of the provider's rate the server dispatches send tasks at (see build_workers).
DISPATCH_SHARE = 0.9
# Coalescers cached by the send worker: a few per send queue (COALESCE_SHARDS), with room.
COALESCER_CACHE = 64


def app_webhooks(
    client: Client, settings: Settings, http: httpx.AsyncClient | None = None
) -> AppWebhookActivities:
    """Our events to the apps' endpoints: WEBHOOK_* settings (docs/webhooks.md)."""
    return AppWebhookActivities(
        client,
        http,
        AppWebhookConfig(
            task_queue=settings.task_queue,
            delivery=DeliveryPolicyInput(
                retry_delays_seconds=settings.webhook_retry_delay_list,
                attempt_timeout_seconds=settings.webhook_timeout_seconds,
            ),
            outbound=OutboundPolicy(
                allow_private=settings.webhook_allow_private_urls,
                timeout_seconds=settings.webhook_timeout_seconds,
            ),
        ),
    )


def build_workers(
    client: Client, settings: Settings, transport: EmailTransport
) -> tuple[Worker, Worker]:
    """The workflow worker and the provider-call worker (queue-wide rate limit)."""
    hooks = app_webhooks(client, settings)
    # Coalesced calls claim each email from its workflow; the hand-off starts coalescers.
    coalesce = CoalesceActivities(transport, client)
    suppressions = SuppressionActivities(SuppressionStore(client, settings.task_queue))
    workflows = VersionedWorker(
        client,
        settings,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[
            hooks.emit,
            hooks.deliver,
            coalesce.enqueue,
            suppressions.check_suppressed,
            suppressions.suppress_addresses,
            render_invite,
            render_invite_batch,
            *_renderers(RenderActivities(Templates(settings.template_dir))),
        ],
        max_cached_workflows=settings.worker_max_cached_workflows,
        # The default (5 pollers, 1 of them on the shared queue) took new workflows' first
        # tasks at ~25/s: 1,000 invites accepted in 7 s waited up to 13 s for their first
        # task (bench/coalesce.py). Pollers scale with the backlog instead.
        workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
        nonsticky_to_sticky_poll_ratio=0.5,
        workflow_runner=workflow_runner(),
    )
    # The send activity reads each email's pinned message from its workflow (one query).
    provider = SendActivities(transport, WorkflowPinnedMessages(client))
    sends = VersionedWorker(
        client,
        settings,
        task_queue=settings.send_task_queue,
        # The send queue's coalescers run here (their task queue is the send queue's), with
        # task slots and a cache of their own: among the emails' workflows, at 10,000
        # invites, a coalescer's task waited behind hundreds of the invites' for 57-61 s,
        # past its timeout, again and again, each retry carrying more signals: no call for
        # minutes (docs/coalescing.md).
        workflows=[Coalescer],
        max_cached_workflows=COALESCER_CACHE,
        workflow_runner=workflow_runner(),
        activities=[provider.send_email, provider.send_batch, coalesce.send_coalesced],
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        # Enforced by the server across every worker of the queue: scaling out does not
        # multiply the provider load (the per-worker limit would). With the matcher our
        # servers run (infra/temporal-dynamic-config.yaml, one partition) it holds, a little
        # over: 2.07/s measured for 2/s. Tasks dispatched faster than the Pacer lets calls
        # go wait in the worker, in arrival order, out of the server's priority and
        # fairness order; at 3% over, that queue grows for as long as a backlog lasts (a
        # tenant's invite waited 5-8 s in it behind another's 2,000). So the server
        # dispatches a little under the provider's rate: the Pacer only spaces the
        # limiter's bursts, and its queue drains. A 429 retries after its retry-after.
        max_task_queue_activities_per_second=(
            settings.resend_rate_limit_per_second * DISPATCH_SHARE
        ),
        # On SIGTERM, let in-flight provider calls finish rather than cut them off.
        graceful_shutdown_timeout=timedelta(seconds=settings.resend_timeout_seconds + 5),
    )
    return workflows, sends


def build_runtime(settings: Settings) -> Runtime | None:
    """A runtime exporting the SDK's metrics and ours (`email_*`) for Prometheus."""
    if not settings.worker_metrics_port:
        return None
    bind = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))
    except ValueError as err:
        # A second worker on the same host must still run: it just exports no metrics.
        log.warning("metrics disabled: %s (set WORKER_METRICS_PORT to a free port)", err)
        return None


async def run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = await connect(settings, runtime=build_runtime(settings))
    async with AsyncExitStack() as stack:
        http = None
        if not settings.outbox_mode:
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=settings.resend_api_url,
                    timeout=settings.resend_timeout_seconds,
                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                )
            )
        transport = build_transport(settings, http)
        if settings.invite_token_secret is None:
            log.warning("INVITE_TOKEN_SECRET is not set: invites with our token cannot be sent")
        if not transport.capabilities.sends_mail:
            log.warning(
                "OUTBOX MODE: no RESEND_API_KEY; emails are written to %s, not sent",
                settings.outbox_dir.resolve(),
            )
        else:
            resend_at = f" (Resend at {settings.resend_api_url})" if http is not None else ""
            log.info("sending through %s%s", transport.name, resend_at)
        workers = build_workers(client, settings, transport)
        for worker in workers:
            await stack.enter_async_context(worker)
        log.info(
            "worker ready: queues %s and %s, provider limit %.2f/s, %s",
            settings.task_queue,
            settings.send_task_queue,
            settings.resend_rate_limit_per_second,
            (
                f"version {settings.worker_deployment_name}:{settings.worker_build_id}"
                + (" (set current)" if settings.worker_set_current else "")
                if settings.worker_versioning
                else "unversioned"
            ),
        )
        await stop.wait()
        log.info("stopping: finishing in-flight tasks")
    log.info("worker stopped")


def main() -> None:
    configure_logging()
    settings = get_settings()
    if problem := encryption_problem(settings):
        # One line, no traceback: what is wrong and how to fix it.
        log.error(problem)
        raise SystemExit(2)
    warn_if_plaintext(settings)
    code = 0
    try:
        asyncio.run(run(settings))
    except Exception:
        log.exception("worker failed")
        code = 1
    logging.shutdown()
    # The SDK's runtime can crash the interpreter at exit (sdk-python#300); after a clean
    # shutdown there is nothing left to flush, so leave without running finalizers.
    os._exit(code)


if __name__ == "__main__":
    main()
