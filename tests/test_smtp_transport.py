"""The SMTP transport and the failover transport against a real SMTP server (aiosmtpd, with
AUTH and STARTTLS on a self-signed certificate this test makes and trusts) and the fake
Resend: each row of docs/providers.md's failover table is checked here."""

from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import errors
from activities.invite_tokens import PLACEHOLDER, TokenFillingTransport, derive_token
from activities.send import SendActivities
from activities.transports.base import EmailTransport, ProviderFailure
from activities.transports.failover import FailoverTransport
from activities.transports.resend import ResendTransport
from activities.transports.smtp import SmtpConfig, SmtpTransport, message_id
from activities.types import (
    AttemptFailureDetails,
    BatchAttemptInput,
    EmailAttachment,
    EmailMessage,
    InviteToken,
    SendAttemptInput,
    SendAttemptResult,
)
from config import Settings
from testkit.fake_resend import FakeResendServer, Fault
from testkit.keys import FAKE_KEY
from testkit.procs import free_port
from testkit.smtp_server import PASSWORD, USER, Relay, server_tls, smtp_server
from worker import build_transport

MESSAGE = EmailMessage(
    sender="Acme <team@acme.test>",
    to=["ann@example.com"],
    cc=["cat@example.com"],
    bcc=["bob@example.com"],
    subject="Welcome",
    text="Hello in text",
    html="<p>Hello in <b>HTML</b></p>",
    headers={"X-Entity-Ref-ID": "ref-1"},
    attachments=[
        EmailAttachment(
            filename="a.txt",
            content=base64.b64encode(b"file body").decode(),
            content_type="text/plain",
        )
    ],
)


@dataclass
class SmtpServer:
    """The shared test relay, and an SMTP transport to it."""

    relay: Relay
    port: int
    ca_file: Path

    def transport(
        self, user: str = USER, password: str = PASSWORD, *, trust: bool = True, timeout: float = 5
    ) -> SmtpTransport:
        config = SmtpConfig.from_url(
            f"smtp://{user}:{password}@127.0.0.1:{self.port}?starttls=true"
        )
        return SmtpTransport(config, timeout=timeout, ca_file=self.ca_file if trust else None)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as server:
        yield SmtpServer(server.relay, server.port, server.ca_file)


@pytest.fixture
async def http(fake_resend: FakeResendServer) -> Any:
    async with httpx.AsyncClient(base_url=fake_resend.url, timeout=2.0) as client:
        yield client


async def send(
    transport: EmailTransport,
    message: EmailMessage = MESSAGE,
    key: str = "email-1/send",
    attempt: int = 1,
    may_have_been_taken_by: list[str] | None = None,
) -> SendAttemptResult:
    result: SendAttemptResult = await ActivityEnvironment().run(
        SendActivities(transport).send_email,
        SendAttemptInput(message, key, attempt, may_have_been_taken_by=may_have_been_taken_by),
    )
    return result


async def failure(
    transport: EmailTransport, **kwargs: Any
) -> tuple[ApplicationError, AttemptFailureDetails]:
    with pytest.raises(ApplicationError) as caught:
        await send(transport, **kwargs)
    details = caught.value.details[0]
    assert isinstance(details, AttemptFailureDetails)
    return caught.value, details


def closed_port() -> int:
    return free_port()  # nothing listens there: connections are refused


# --- SMTP alone -----------------------------------------------------------------------


async def test_email_through_smtp_alone_arrives_as_mime_with_stable_message_id(
    smtp: SmtpServer,
) -> None:
    transport = smtp.transport()
    first = await send(transport)
    second = await send(transport)  # another attempt of the same email: same Message-ID
    assert first.transport == "smtp" and first.http_status == 250
    assert first.reports_delivery_events is False
    assert first.provider_message_id == message_id("email-1/send", MESSAGE.sender)
    assert second.provider_message_id == first.provider_message_id
    envelope = smtp.relay.received[0]
    assert envelope.mail_from == "team@acme.test"
    assert envelope.rcpt_tos == ["ann@example.com", "cat@example.com", "bob@example.com"]
    assert isinstance(envelope.content, bytes)
    mime = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert mime["Message-ID"] == first.provider_message_id
    assert mime["Subject"] == "Welcome" and mime["To"] == "ann@example.com"
    assert mime["Cc"] == "cat@example.com" and mime["Bcc"] is None
    assert mime["X-Entity-Ref-ID"] == "ref-1"
    assert isinstance(mime, email.message.EmailMessage)
    body_text = mime.get_body(("plain",))
    body_html = mime.get_body(("html",))
    assert body_text is not None and body_text.get_content().strip() == "Hello in text"
    assert body_html is not None and "<b>HTML</b>" in body_html.get_content()
    [attachment] = list(mime.iter_attachments())
    assert attachment.get_filename() == "a.txt" and attachment.get_content() == "file body"


async def test_invite_through_smtp_carries_the_token_filled_in(smtp: SmtpServer) -> None:
    secret = "s" * 32
    ref = InviteToken(invite_id="inv-1", nonce="n1")
    invite = EmailMessage(
        sender="team@acme.test",
        to=["ann@example.com"],
        subject="Join",
        text=f"https://app.test/accept?token={PLACEHOLDER}",
        invite_token=ref,
    )
    await send(TokenFillingTransport(smtp.transport(), secret), invite)
    content = smtp.relay.received[0].content
    assert isinstance(content, bytes)
    assert derive_token(secret, ref).encode() in content and PLACEHOLDER.encode() not in content


async def test_smtp_auth_failure_is_not_accepted(smtp: SmtpServer) -> None:
    error, details = await failure(smtp.transport(password="wrong"))
    assert error.type == errors.AUTH_FAILED and details.not_accepted
    assert not details.retry_may_duplicate and smtp.relay.received == []


async def test_untrusted_certificate_is_not_accepted(smtp: SmtpServer) -> None:
    error, details = await failure(smtp.transport(trust=False))
    assert error.type == errors.PROVIDER_UNREACHABLE and details.not_accepted
    assert "STARTTLS" in error.message and smtp.relay.received == []


async def test_relay_4xx_is_transient_and_5xx_permanent(smtp: SmtpServer) -> None:
    smtp.relay.data_reply = "451 4.3.0 try again later"
    error, details = await failure(smtp.transport())
    assert error.type == errors.PROVIDER_DEFERRED and not error.non_retryable
    assert details.not_accepted and details.http_status == 451
    smtp.relay.data_reply = "554 5.7.1 rejected"
    error, details = await failure(smtp.transport())
    assert error.type == errors.REJECTED and error.non_retryable and details.not_accepted
    assert smtp.relay.received == []


async def test_one_recipient_refused_permanently_refuses_the_whole_email(
    smtp: SmtpServer,
) -> None:
    smtp.relay.rcpt_reply = {"cat@example.com": "550 5.1.1 no such user"}
    error, details = await failure(smtp.transport())
    assert error.type == errors.REJECTED and details.not_accepted
    assert "1 of 3 recipients" in error.message
    assert smtp.relay.received == []  # nothing sent, not even to ann


async def test_connection_lost_after_data_may_duplicate_and_is_not_retried(
    smtp: SmtpServer,
) -> None:
    smtp.relay.drop_after_data = True
    error, details = await failure(smtp.transport())
    assert error.type == errors.NETWORK_ERROR
    assert not details.not_accepted and details.retry_may_duplicate
    assert error.non_retryable  # Temporal does not retry it: the engine ends it undetermined
    assert len(smtp.relay.received) == 1


async def test_url_attachment_is_refused_before_connecting() -> None:
    transport = SmtpTransport(SmtpConfig.from_url(f"smtp://127.0.0.1:{closed_port()}"))
    message = EmailMessage(
        sender="a@acme.test",
        to=["b@example.com"],
        subject="s",
        text="t",
        attachments=[EmailAttachment(filename="x.pdf", path="https://files.test/x.pdf")],
    )
    error, details = await failure(transport, message=message)
    assert error.type == errors.REJECTED and details.not_accepted


def to(address: str) -> EmailMessage:
    return dataclasses.replace(MESSAGE, to=[address], cc=[], bcc=[])


async def test_smtp_batch_is_one_transaction_per_email_and_a_refusal_stays_in_its_item(
    smtp: SmtpServer,
) -> None:
    smtp.relay.rcpt_reply = {"bad@example.com": "550 5.1.1 no such user"}
    by_url = EmailAttachment(filename="x.pdf", path="https://files.test/x.pdf")
    unsendable = dataclasses.replace(to("d@example.com"), attachments=[by_url])
    batch = [to("a@example.com"), to("bad@example.com"), to("c@example.com"), unsendable]
    sent = await smtp.transport().send_batch(batch, "batch-1")
    first, refused, last, not_sent = sent.items
    assert not_sent.refusal is not None and "path" in not_sent.refusal
    assert first.provider_message_id == message_id("batch-1/0", MESSAGE.sender)
    assert refused.provider_message_id is None and "SMTP 550 to RCPT" in (refused.refusal or "")
    assert last.provider_message_id == message_id("batch-1/2", MESSAGE.sender)
    assert smtp.relay.recipients == ["a@example.com", "c@example.com"]


async def test_smtp_batch_losing_the_relay_after_a_data_fails_whole_and_is_not_retried(
    smtp: SmtpServer,
) -> None:
    smtp.relay.drop_after_data = True
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            SendActivities(smtp.transport()).send_batch,
            BatchAttemptInput([to("a@example.com"), to("b@example.com")], "batch-1"),
        )
    details = caught.value.details[0]
    assert caught.value.type == errors.NETWORK_ERROR and caught.value.non_retryable
    assert isinstance(details, AttemptFailureDetails) and details.retry_may_duplicate
    assert smtp.relay.recipients == ["a@example.com"]  # b was never sent


def test_smtp_url_forms() -> None:
    plain = SmtpConfig.from_url("smtp://u%40x:p%2F@relay.test")
    assert (plain.host, plain.port, plain.username, plain.password) == (
        "relay.test",
        25,
        "u@x",
        "p/",
    )
    assert SmtpConfig.from_url("smtps://relay.test").port == 465
    starttls = SmtpConfig.from_url("smtp://relay.test?starttls=true")
    assert starttls.starttls and starttls.port == 587
    with pytest.raises(ValueError):
        SmtpConfig.from_url("http://relay.test")


# --- Failover: Resend first, then SMTP ---------------------------------------------------


def failover(
    http: httpx.AsyncClient, smtp: SmtpServer, api_key: str = FAKE_KEY
) -> FailoverTransport:
    return FailoverTransport([ResendTransport(http, api_key), smtp.transport()])


async def test_resend_500_is_not_moved_to_smtp(
    http: httpx.AsyncClient, fake_resend: FakeResendServer, smtp: SmtpServer
) -> None:
    fake_resend.fake.enqueue_faults([Fault(status=500)])
    error, details = await failure(failover(http, smtp))
    assert error.type == errors.PROVIDER_UNAVAILABLE and details.transport == "resend"
    # Resend deduplicates by key: the engine retries it there, never through SMTP.
    assert not details.not_accepted and not details.retry_may_duplicate
    assert not error.non_retryable
    assert smtp.relay.received == []


@pytest.mark.parametrize("status", [502, 504])
async def test_resend_ambiguous_5xx_is_not_moved(
    http: httpx.AsyncClient, fake_resend: FakeResendServer, smtp: SmtpServer, status: int
) -> None:
    fake_resend.fake.enqueue_faults([Fault(status=status)])
    error, details = await failure(failover(http, smtp))
    assert not details.not_accepted and smtp.relay.received == []


async def test_resend_timeout_is_not_moved(fake_resend: FakeResendServer, smtp: SmtpServer) -> None:
    fake_resend.fake.enqueue_faults([Fault(hold=2.0)])  # sent, answer comes too late
    async with httpx.AsyncClient(base_url=fake_resend.url, timeout=0.3) as http:
        error, details = await failure(failover(http, smtp))
    assert error.type == errors.NETWORK_ERROR and not details.not_accepted
    assert smtp.relay.received == [] and fake_resend.fake.delivered_count == 1


async def test_resend_429_is_not_moved(
    http: httpx.AsyncClient, fake_resend: FakeResendServer, smtp: SmtpServer
) -> None:
    fake_resend.fake.enqueue_faults([Fault(status=429, retry_after=1)])
    error, details = await failure(failover(http, smtp))
    assert error.type == errors.RATE_LIMITED and smtp.relay.received == []


async def test_resend_refusing_connections_moves_to_smtp_once(smtp: SmtpServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed_port()}") as down:
        result = await send(failover(down, smtp))
    assert result.transport == "smtp" and result.failover_from == "resend"
    assert result.failover_reason == errors.PROVIDER_UNREACHABLE
    assert result.reports_delivery_events is False
    assert len(smtp.relay.received) == 1


async def test_resend_401_moves_to_smtp(
    http: httpx.AsyncClient, fake_resend: FakeResendServer, smtp: SmtpServer
) -> None:
    result = await send(failover(http, smtp, api_key="re_revoked"))
    assert result.transport == "smtp" and result.failover_from == "resend"
    assert result.failover_reason == errors.AUTH_FAILED
    assert fake_resend.fake.delivered_count == 0 and len(smtp.relay.received) == 1


async def test_resend_sends_when_up_and_says_so(
    http: httpx.AsyncClient, fake_resend: FakeResendServer, smtp: SmtpServer
) -> None:
    result = await send(failover(http, smtp))
    assert result.transport == "resend" and result.failover_from is None
    assert result.reports_delivery_events is True
    assert fake_resend.fake.delivered_count == 1 and smtp.relay.received == []


async def test_no_failover_after_an_earlier_attempt_may_have_been_taken(
    smtp: SmtpServer,
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed_port()}") as down:
        error, details = await failure(
            failover(down, smtp), attempt=2, may_have_been_taken_by=["resend"]
        )
        assert error.type == errors.PROVIDER_UNREACHABLE and details.transport == "resend"
        # The engine does not say (None): only attempt 1 may fail over.
        await failure(failover(down, smtp), attempt=2)
        assert smtp.relay.received == []
        # The engine says every earlier failure proved not taken: failover allowed.
        result = await send(failover(down, smtp), attempt=2, may_have_been_taken_by=[])
    assert result.transport == "smtp" and len(smtp.relay.received) == 1


async def test_smtp_failure_after_failover_reports_smtp(smtp: SmtpServer) -> None:
    smtp.relay.drop_after_data = True
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed_port()}") as down:
        error, details = await failure(failover(down, smtp))
    assert details.transport == "smtp" and details.retry_may_duplicate


async def test_failover_capabilities_are_the_honest_combination(
    http: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    caps = failover(http, smtp).capabilities
    assert not caps.deduplicates_by_key and not caps.reports_delivery_events
    assert caps.max_batch == 100  # batches go to Resend only, never fail over
    smtp_first = FailoverTransport([smtp.transport(), ResendTransport(http, FAKE_KEY)])
    assert smtp_first.capabilities.max_batch == 100  # one SMTP transaction per email


async def test_resend_dns_failure_moves_to_smtp(smtp: SmtpServer) -> None:
    async with httpx.AsyncClient(base_url="http://no-such-host.invalid", timeout=3) as down:
        result = await send(failover(down, smtp))
    assert result.transport == "smtp" and result.failover_reason == errors.PROVIDER_UNREACHABLE
    assert len(smtp.relay.received) == 1


async def test_resend_tls_handshake_failure_moves_to_smtp(
    fake_resend: FakeResendServer, smtp: SmtpServer
) -> None:
    # TLS to a server that speaks plain HTTP: the handshake fails before any request.
    tls_url = fake_resend.url.replace("http://", "https://")
    async with httpx.AsyncClient(base_url=tls_url, timeout=3) as broken:
        result = await send(failover(broken, smtp))
    assert result.transport == "smtp" and result.failover_reason == errors.PROVIDER_UNREACHABLE
    assert fake_resend.fake.delivered_count == 0 and len(smtp.relay.received) == 1


@pytest.mark.parametrize(
    ("fault", "error_type", "moves"),
    [
        # The account cannot send through Resend now: SMTP takes it.
        (Fault(status=403), errors.AUTH_FAILED, True),
        (Fault(status=429, name="daily_quota_exceeded"), errors.DAILY_QUOTA_EXCEEDED, True),
        (Fault(status=429, name="monthly_quota_exceeded"), errors.MONTHLY_QUOTA_EXCEEDED, True),
        # Resend may be about to take it, or refuses the message itself: it stays.
        (Fault(status=503, html=True), errors.PROVIDER_UNAVAILABLE, False),
        (Fault(status=422, name="invalid_from_address"), errors.REJECTED, False),
        (
            Fault(status=409, name="concurrent_idempotent_requests"),
            errors.CONCURRENT_REQUEST,
            False,
        ),
        (Fault(status=409, name="invalid_idempotent_request"), errors.IDEMPOTENCY_CONFLICT, False),
    ],
)
async def test_which_resend_answers_move_to_smtp(
    http: httpx.AsyncClient,
    fake_resend: FakeResendServer,
    smtp: SmtpServer,
    fault: Fault,
    error_type: str,
    moves: bool,
) -> None:
    fake_resend.fake.enqueue_faults([fault])
    if moves:
        result = await send(failover(http, smtp))
        assert result.transport == "smtp" and result.failover_reason == error_type
        assert fake_resend.fake.delivered_count == 0 and len(smtp.relay.received) == 1
    else:
        error, _ = await failure(failover(http, smtp))
        assert error.type == error_type and smtp.relay.received == []


async def test_smtp_first_deferring_moves_to_resend(
    http: httpx.AsyncClient, fake_resend: FakeResendServer, smtp: SmtpServer
) -> None:
    smtp.relay.data_reply = "421 4.3.2 shutting down"
    transport = FailoverTransport([smtp.transport(), ResendTransport(http, FAKE_KEY)])
    result = await send(transport)
    assert result.transport == "resend" and result.failover_from == "smtp"
    assert result.failover_reason == errors.PROVIDER_DEFERRED
    assert result.reports_delivery_events is True
    assert fake_resend.fake.delivered_count == 1 and smtp.relay.received == []


# Resend's batch call takes no attachments.
PLAIN = dataclasses.replace(MESSAGE, attachments=[])


async def test_a_batch_behind_failover_reports_resend_and_its_delivery_events(
    http: httpx.AsyncClient, fake_resend: FakeResendServer, smtp: SmtpServer
) -> None:
    result = await ActivityEnvironment().run(
        SendActivities(failover(http, smtp)).send_batch,
        BatchAttemptInput([PLAIN, PLAIN], "batch-1"),
    )
    # Resend took it, and its webhooks will come: the batch waits for them.
    assert result.transport == "resend" and result.reports_delivery_events is True
    assert fake_resend.fake.delivered_count == 2 and smtp.relay.received == []


async def test_batches_never_fail_over(smtp: SmtpServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed_port()}") as down:
        with pytest.raises(ProviderFailure) as caught:
            await failover(down, smtp).send_batch([MESSAGE], "batch-1")
    assert caught.value.error_type == errors.PROVIDER_UNREACHABLE
    assert caught.value.transport == "resend" and smtp.relay.received == []


def test_providers_setting_builds_the_transports(smtp: SmtpServer) -> None:
    base = Settings(
        _env_file=None,
        resend_api_key=FAKE_KEY,
        smtp_url=f"smtp://{USER}:{PASSWORD}@127.0.0.1:{smtp.port}?starttls=true",
    )
    http = httpx.AsyncClient()
    both = build_transport(base.model_copy(update={"providers": "resend, smtp"}), http)
    assert both.name == "resend+smtp"
    assert not both.capabilities.deduplicates_by_key
    smtp_only = build_transport(base.model_copy(update={"providers": "smtp"}), None)
    assert smtp_only.name == "smtp" and not smtp_only.capabilities.reports_delivery_events
    assert build_transport(base, http).name == "resend"  # unset: as before
    with pytest.raises(ValueError, match="unknown provider"):
        build_transport(base.model_copy(update={"providers": "sendgrid"}), http)
    with pytest.raises(ValueError, match="SMTP_URL"):
        build_transport(base.model_copy(update={"providers": "smtp", "smtp_url": None}), None)


async def test_no_failover_on_a_retry_by_temporal_itself(smtp: SmtpServer) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed_port()}") as down:
        activities = SendActivities(failover(down, smtp))
        with pytest.raises(ApplicationError) as caught:
            await env.run(
                activities.send_email,
                SendAttemptInput(MESSAGE, "email-1/send", 1, may_have_been_taken_by=[]),
            )
    assert caught.value.type == errors.PROVIDER_UNREACHABLE
    assert smtp.relay.received == []


async def test_implicit_tls_smtps(tmp_path: Path) -> None:
    tls, cert_file = server_tls(tmp_path)
    relay, port = Relay(), free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port, ssl_context=tls)
    controller.start()
    try:
        transport = SmtpTransport(
            SmtpConfig.from_url(f"smtps://127.0.0.1:{port}"), timeout=5, ca_file=cert_file
        )
        result = await send(transport)
    finally:
        controller.stop()
    assert result.transport == "smtp" and len(relay.received) == 1
