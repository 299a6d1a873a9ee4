"""The send activity against the fake Resend: how each provider answer is classified."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from activities import errors
from activities.delivery_contract import batch_sha256, message_sha256
from activities.invite_tokens import TokenFillingTransport
from activities.send import SendActivities
from activities.transports.base import (
    ProviderFailure,
    SentBatch,
    SentEmail,
    TransportCapabilities,
)
from activities.transports.outbox import OutboxTransport
from activities.transports.pacer import Pacer
from activities.transports.resend import ResendTransport, resend_payload
from activities.types import (
    AttemptFailureDetails,
    BatchAttemptInput,
    BatchAttemptResult,
    EmailAttachment,
    EmailMessage,
    SendAttemptInput,
    SendAttemptResult,
)
from testkit.fake_resend import FakeResendServer, Fault
from testkit.keys import FAKE_KEY

MESSAGE = EmailMessage(
    sender="Acme <team@acme.test>", to=["ann@example.com"], subject="Hi", text="Hello"
)


@pytest.fixture
async def http(fake_resend: FakeResendServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake_resend.url, timeout=2.0) as client:
        yield client


async def deliver(
    http: httpx.AsyncClient, key: str = "email-1/send", api_key: str = FAKE_KEY
) -> SendAttemptResult:
    activities = SendActivities(ResendTransport(http, api_key))
    result: SendAttemptResult = await ActivityEnvironment().run(
        activities.send_email, SendAttemptInput(MESSAGE, key, 1)
    )
    return result


async def failure_of(http: httpx.AsyncClient, api_key: str = FAKE_KEY) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await deliver(http, api_key=api_key)
    return caught.value


async def test_accepted_send_returns_provider_id_and_sends_idempotency_key(
    http: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    result = await deliver(http, key="invite-abc/send")
    [delivery] = fake_resend.fake.deliveries
    assert result.provider_message_id == delivery.id
    assert result.transport == "resend" and result.http_status == 200
    assert delivery.idempotency_key == "invite-abc/send"
    assert delivery.payload == {
        "from": "Acme <team@acme.test>",
        "to": ["ann@example.com"],
        "subject": "Hi",
        "text": "Hello",
    }


async def test_repeat_with_same_key_is_deduplicated_by_provider(
    http: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    first = await deliver(http)
    second = await deliver(http)
    assert first.provider_message_id == second.provider_message_id
    assert fake_resend.fake.delivered_count == 1


@pytest.mark.parametrize(
    ("fault", "error_type", "permanent"),
    [
        (Fault(status=500), errors.PROVIDER_UNAVAILABLE, False),
        (Fault(status=503, html=True), errors.PROVIDER_UNAVAILABLE, False),
        (Fault(status=429, retry_after=7), errors.RATE_LIMITED, False),
        (Fault(status=429, name="daily_quota_exceeded"), errors.DAILY_QUOTA_EXCEEDED, False),
        (Fault(status=429, name="monthly_quota_exceeded"), errors.MONTHLY_QUOTA_EXCEEDED, True),
        (
            Fault(status=409, name="concurrent_idempotent_requests"),
            errors.CONCURRENT_REQUEST,
            False,
        ),
        (Fault(status=409, name="invalid_idempotent_request"), errors.IDEMPOTENCY_CONFLICT, True),
        (Fault(status=422, name="invalid_from_address"), errors.REJECTED, True),
        (Fault(status=400, name="validation_error"), errors.REJECTED, True),
        (Fault(status=403, name="validation_error"), errors.REJECTED, True),
        (Fault(status=451, name="security_error"), errors.REJECTED, True),
    ],
)
@pytest.mark.parametrize("call", ["email", "batch"])  # a batch call is classified alike
async def test_provider_answers_are_classified(
    http: httpx.AsyncClient,
    fake_resend: FakeResendServer,
    fault: Fault,
    error_type: str,
    permanent: bool,
    call: str,
) -> None:
    fake_resend.fake.enqueue_faults([fault])
    error = await (failure_of(http) if call == "email" else batch_failure_of(http))
    assert error.type == error_type
    assert error.non_retryable is permanent
    details = error.details[0]
    assert details.http_status == fault.status
    if fault.retry_after is not None:
        assert details.retry_after_seconds == fault.retry_after
    assert fake_resend.fake.delivered_count == 0


async def test_wrong_api_key_is_permanent_and_never_echoed(http: httpx.AsyncClient) -> None:
    error = await failure_of(http, api_key="re_wrong_secret_123")
    assert error.type == errors.AUTH_FAILED and error.non_retryable
    assert "re_wrong_secret_123" not in str(error) and "re_wrong_secret_123" not in repr(
        error.details
    )


async def test_unreachable_provider_is_transient_and_not_accepted() -> None:
    # No connection was made, so nothing was sent (a failover transport may move on).
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=1.0) as http:
        error = await failure_of(http)
    assert error.type == errors.PROVIDER_UNREACHABLE and not error.non_retryable
    assert error.details[0].not_accepted


async def test_outbox_writes_readable_files_once_per_key(tmp_path: Path) -> None:
    activities = SendActivities(OutboxTransport(tmp_path))
    run = ActivityEnvironment().run
    message = EmailMessage(
        sender="a@b.test", to=["ann@example.com"], subject="Hi", text="Hello", html="<b>Hi</b>"
    )
    first = await run(activities.send_email, SendAttemptInput(message, "invite-x/send", 1))
    second = await run(activities.send_email, SendAttemptInput(message, "invite-x/send", 2))
    assert first.provider_message_id == second.provider_message_id
    assert first.transport == "outbox"
    [eml] = list(tmp_path.glob("*.eml"))
    [html] = list(tmp_path.glob("*.html"))
    assert "Subject: Hi" in eml.read_text() and "NOT SENT" in eml.read_text()
    assert "<b>Hi</b>" in html.read_text() and "NOT sent" in html.read_text()


def test_older_messages_keep_the_exact_provider_payload() -> None:
    # A retry after a deploy must send the same bytes under the same idempotency key, or
    # Resend answers 409: fields added later stay out of the payload while empty.
    assert resend_payload(MESSAGE) == {
        "from": "Acme <team@acme.test>",
        "to": ["ann@example.com"],
        "subject": "Hi",
        "text": "Hello",
    }


async def test_outbox_shows_cc_bcc_headers_and_attachments(tmp_path: Path) -> None:
    message = EmailMessage(
        sender="a@b.test",
        to=["ann@example.com"],
        subject="Invoice",
        text="Attached",
        cc=["carl@example.com"],
        bcc=["dora@example.com"],
        headers={"X-Entity-Ref-ID": "invoice-42", "Subject": "not this one"},
        attachments=[
            EmailAttachment(
                filename="invoice.txt", content="aW52b2ljZQ==", content_type="text/plain"
            ),
            EmailAttachment(filename="logo.png", path="https://cdn.acme.example/logo.png"),
        ],
    )
    await ActivityEnvironment().run(
        SendActivities(OutboxTransport(tmp_path)).send_email,
        SendAttemptInput(message, "email-x/send", 1),
    )
    [eml] = list(tmp_path.glob("*.eml"))
    parsed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert parsed["Cc"] == "carl@example.com"
    assert parsed["X-Durable-Mail-Bcc"] == "dora@example.com"
    assert parsed["X-Entity-Ref-ID"] == "invoice-42" and parsed["Subject"] == "Invoice"
    assert (
        "logo.png: https://cdn.acme.example/logo.png" in parsed["X-Durable-Mail-Remote-Attachment"]
    )
    [part] = list(parsed.iter_attachments())
    assert part.get_filename() == "invoice.txt" and part.get_content() == "invoice"


async def test_pacer_spaces_calls_at_the_rate() -> None:
    pacer = Pacer(20.0)
    starts: list[float] = []

    async def call() -> None:
        await pacer.wait()
        starts.append(time.monotonic())

    await asyncio.gather(*(call() for _ in range(6)))
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(gap >= 0.045 for gap in gaps), gaps


class PinnedMessage:
    """A workflow's `pinned_message` answer, as the send worker reads it."""

    def __init__(self, message: EmailMessage | Exception) -> None:
        self.message = message
        self.asked: list[tuple[str, str]] = []

    async def fetch(
        self, workflow_id: str, run_id: str, digest: str | None, timeout: timedelta
    ) -> EmailMessage:
        self.asked.append((workflow_id, run_id))
        if isinstance(self.message, Exception):
            raise self.message
        return self.message

    async def fetch_batch(
        self, workflow_id: str, run_id: str, digest: str, timeout: timedelta
    ) -> list[EmailMessage]:
        raise AssertionError("a single send never reads a batch")


class PinnedBatch:
    """A batch workflow's `pinned_batch` answer, as the send worker reads it."""

    def __init__(self, messages: list[EmailMessage] | Exception) -> None:
        self.messages = messages
        self.asked: list[str] = []

    async def fetch(
        self, workflow_id: str, run_id: str, digest: str | None, timeout: timedelta
    ) -> EmailMessage:
        raise AssertionError("a batch never reads a single message")

    async def fetch_batch(
        self, workflow_id: str, run_id: str, digest: str, timeout: timedelta
    ) -> list[EmailMessage]:
        self.asked.append(digest)
        if isinstance(self.messages, Exception):
            raise self.messages
        return self.messages


def pinned_attempt(
    digest: str | None = None, not_after: datetime | None = None
) -> SendAttemptInput:
    """An attempt of a bounded-history workflow: no message in the input, only its digest."""
    return SendAttemptInput(
        None,
        "email-1/send",
        1,
        message_sha256=digest or message_sha256(MESSAGE),
        not_after=(not_after or datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    )


async def test_attempt_without_message_sends_the_one_its_workflow_pinned(
    http: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    pinned = PinnedMessage(MESSAGE)
    activities = SendActivities(ResendTransport(http, FAKE_KEY), pinned)
    result = await ActivityEnvironment().run(activities.send_email, pinned_attempt())
    [delivery] = fake_resend.fake.deliveries
    assert result.provider_message_id == delivery.id
    assert delivery.payload["subject"] == MESSAGE.subject and len(pinned.asked) == 1


@pytest.mark.parametrize(
    ("pinned", "error_type", "permanent"),
    [
        # The workflow answered another message than the digest it gave: never send it.
        (PinnedMessage(replace(MESSAGE, subject="Other")), errors.MESSAGE_MISMATCH, True),
        # No answer (no workflow worker, say): the next attempt may get one.
        (PinnedMessage(RPCError("timeout", RPCStatusCode.CANCELLED, b"")),
         errors.MESSAGE_UNAVAILABLE, False),
    ],
    ids=["digest-mismatch", "no-answer"],
)  # fmt: skip
async def test_attempt_whose_pinned_message_cannot_be_read_or_checked_calls_no_provider(
    http: httpx.AsyncClient,
    fake_resend: FakeResendServer,
    pinned: PinnedMessage,
    error_type: str,
    permanent: bool,
) -> None:
    activities = SendActivities(ResendTransport(http, FAKE_KEY), pinned)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.send_email, pinned_attempt())
    assert caught.value.type == error_type and caught.value.non_retryable is permanent
    assert error_type in errors.NOT_ACCEPTED
    assert fake_resend.fake.requests_total == 0


async def test_attempt_started_after_not_after_never_calls_the_provider(
    http: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    # E.g. a task Temporal hands out late, or the attempt of a workflow reset days later:
    # past the window the provider may have forgotten the key, so a call could send twice.
    activities = SendActivities(ResendTransport(http, FAKE_KEY), PinnedMessage(MESSAGE))
    late = pinned_attempt(not_after=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.send_email, late)
    assert caught.value.type == errors.SEND_WINDOW_CLOSED and caught.value.non_retryable
    assert "provider was not called" in caught.value.message
    assert fake_resend.fake.requests_total == 0


def batch_of(n: int) -> list[EmailMessage]:
    return [
        EmailMessage(
            sender="Acme <team@acme.test>", to=[f"u{i}@example.com"], subject="Hi", text="x"
        )
        for i in range(n)
    ]


async def deliver_batch(
    http: httpx.AsyncClient, messages: list[EmailMessage], key: str = "batch-1/send/0"
) -> BatchAttemptResult:
    activities = SendActivities(ResendTransport(http, FAKE_KEY))
    result: BatchAttemptResult = await ActivityEnvironment().run(
        activities.send_batch, BatchAttemptInput(messages, key, 1)
    )
    return result


async def test_batch_is_one_permissive_request_whose_refusals_stay_in_their_items(
    http: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    fake_resend.fake.enqueue_faults([Fault(invalid_items=(1,))])
    result = await deliver_batch(http, batch_of(3))
    again = await deliver_batch(http, batch_of(3))

    sent = fake_resend.fake.deliveries
    assert [item.provider_message_id for item in result.items] == [sent[0].id, None, sent[1].id]
    assert result.items[1].refusal and result.items[0].refusal is None
    assert (result.http_status, result.transport) == (200, "resend")
    assert again.items == result.items  # the same key replays the first answer
    assert [r.path for r in fake_resend.fake.request_log] == ["/emails/batch"] * 2
    assert {d.idempotency_key for d in sent} == {"batch-1/send/0"} and len(sent) == 2


async def batch_failure_of(http: httpx.AsyncClient) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await deliver_batch(http, batch_of(2))
    return caught.value


@pytest.mark.parametrize(
    "answer",
    [
        {"data": [{"id": "a"}]},  # one id for two emails, no errors
        {"data": [{"id": "a"}], "errors": [{"index": 5, "message": "?"}]},
        {"nothing": True},
    ],
)
async def test_batch_answer_that_does_not_fit_is_an_unknown_outcome(answer: object) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport, base_url="http://resend.test") as http:
        with pytest.raises(ApplicationError) as caught:
            await deliver_batch(http, batch_of(2))
    assert caught.value.type == errors.PROVIDER_UNAVAILABLE and not caught.value.non_retryable


async def test_outbox_writes_each_batch_email_once(tmp_path: Path) -> None:
    activities = SendActivities(OutboxTransport(tmp_path))
    run = ActivityEnvironment().run
    first = await run(activities.send_batch, BatchAttemptInput(batch_of(3), "batch-x/send/0", 1))
    second = await run(activities.send_batch, BatchAttemptInput(batch_of(3), "batch-x/send/0", 2))
    assert first.items == second.items
    assert len({item.provider_message_id for item in first.items}) == 3
    assert len(list(tmp_path.glob("*.eml"))) == 3


def pinned_batch_attempt(
    messages: list[EmailMessage], not_after: datetime | None = None
) -> BatchAttemptInput:
    """A batch attempt since `batch-bounded-v1`: no messages in the input, their digest."""
    return BatchAttemptInput(
        None,
        "batch-1/send/0",
        1,
        messages_sha256=batch_sha256(messages),
        not_after=(not_after or datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    )


async def test_batch_attempt_without_messages_sends_the_ones_its_workflow_pinned(
    http: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    messages = batch_of(3)
    pinned = PinnedBatch(messages)
    activities = SendActivities(ResendTransport(http, FAKE_KEY), pinned)
    result = await ActivityEnvironment().run(activities.send_batch, pinned_batch_attempt(messages))
    sent = fake_resend.fake.deliveries
    assert [item.provider_message_id for item in result.items] == [d.id for d in sent]
    assert [d.payload["to"] for d in sent] == [m.to for m in messages]
    assert pinned.asked == [batch_sha256(messages)]


@pytest.mark.parametrize(
    ("answer", "late", "error_type", "permanent"),
    [
        # Another batch (or the same emails in another order) than the digest: never send.
        (batch_of(3)[::-1], False, errors.MESSAGE_MISMATCH, True),
        (batch_of(2), False, errors.MESSAGE_MISMATCH, True),
        # No answer (no workflow worker, say): the next attempt may get one.
        (RPCError("timeout", RPCStatusCode.CANCELLED, b""), False,
         errors.MESSAGE_UNAVAILABLE, False),
        # Started past the window (late, or after a reset days later): the provider may
        # have forgotten the key, so a call could send twice.
        (batch_of(3), True, errors.SEND_WINDOW_CLOSED, True),
    ],
    ids=["reordered", "other-batch", "no-answer", "past-window"],
)  # fmt: skip
async def test_batch_attempt_that_cannot_check_its_messages_or_is_late_calls_no_provider(
    http: httpx.AsyncClient,
    fake_resend: FakeResendServer,
    answer: list[EmailMessage] | Exception,
    late: bool,
    error_type: str,
    permanent: bool,
) -> None:
    activities = SendActivities(ResendTransport(http, FAKE_KEY), PinnedBatch(answer))
    not_after = datetime.now(UTC) - timedelta(seconds=1) if late else None
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            activities.send_batch, pinned_batch_attempt(batch_of(3), not_after)
        )
    assert caught.value.type == error_type and caught.value.non_retryable is permanent
    assert error_type in errors.NOT_ACCEPTED
    assert fake_resend.fake.requests_total == 0


def test_transports_say_what_they_can_do(tmp_path: Path) -> None:
    resend = ResendTransport(httpx.AsyncClient(), FAKE_KEY).capabilities
    assert resend.reports_delivery_events and resend.deduplicates_by_key
    assert resend.max_batch == 100 and resend.max_request_bytes == 40 * 1024 * 1024
    assert not resend.batch_attachments  # Resend's batch endpoint drops attachments
    outbox = OutboxTransport(tmp_path).capabilities
    assert not outbox.reports_delivery_events and outbox.deduplicates_by_key
    # The invite-token wrapper can do what the transport it wraps can.
    assert TokenFillingTransport(OutboxTransport(tmp_path), None).capabilities == outbox


async def test_results_say_whether_delivery_events_will_follow(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    assert (await deliver(http)).reports_delivery_events
    run = ActivityEnvironment().run
    outbox = SendActivities(TokenFillingTransport(OutboxTransport(tmp_path), None))
    single = await run(outbox.send_email, SendAttemptInput(MESSAGE, "email-o/send", 1))
    batch = await run(outbox.send_batch, BatchAttemptInput(batch_of(2), "batch-o/send/0", 1))
    assert not single.reports_delivery_events and not batch.reports_delivery_events


def clear_text(error: BaseException) -> str:
    """What history holds of a failure outside its payloads: messages and stack traces of the
    failure and its causes (details are payloads, which the codec encrypts)."""
    failure = Failure()
    DataConverter.default.failure_converter.to_failure(
        error, DataConverter.default.payload_converter, failure
    )
    parts: list[str] = []
    while True:
        parts += [failure.message, failure.stack_trace]
        if not failure.HasField("cause"):
            return "\n".join(parts)
        failure = failure.cause


@pytest.mark.parametrize(
    ("fault", "readable", "not_accepted"),
    [
        (Fault(status=422, name="invalid_to_address"),
         "HTTP 422 invalid_to_address from the provider (ProviderRejected): "
         "not accepted, permanent", True),
        (Fault(status=429, retry_after=2),
         "HTTP 429 rate_limit_exceeded from the provider (ProviderRateLimited): "
         "not accepted, retryable after 2 s", True),
        (Fault(status=500),
         "HTTP 500 application_error from the provider (ProviderUnavailable): "
         "may have been accepted, retryable", False),
        # A code outside Resend's vocabulary is not shown: it could be anything.
        (Fault(status=400, name="ann@example.com"),
         "HTTP 400 from the provider (ProviderRejected): not accepted, permanent", True),
    ],
)  # fmt: skip
async def test_failure_message_is_our_words_and_the_providers_text_only_in_details(
    http: httpx.AsyncClient,
    fake_resend: FakeResendServer,
    fault: Fault,
    readable: str,
    not_accepted: bool,
) -> None:
    quoting = "mailbox ann@example.com does not accept mail about Hi"
    fake_resend.fake.enqueue_faults([replace(fault, message=quoting)])
    error = await failure_of(http)
    assert error.message == readable
    assert "ann@example.com" not in clear_text(error)
    details: AttemptFailureDetails = error.details[0]
    assert details.provider_message == quoting
    assert (details.not_accepted, details.retry_may_duplicate) == (not_accepted, False)


async def test_refused_attempt_keeps_the_cause_it_swallowed_out_of_history(
    http: httpx.AsyncClient,
) -> None:
    # The query failure's text is not ours: it must not ride along as the failure's cause.
    no_answer = RPCError("query failed for ann@example.com", RPCStatusCode.CANCELLED, b"")
    activities = SendActivities(ResendTransport(http, FAKE_KEY), PinnedMessage(no_answer))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.send_email, pinned_attempt())
    assert "ann@example.com" not in clear_text(caught.value)
    assert "the provider was not called" in caught.value.message
    assert caught.value.details[0].not_accepted


class ForgetfulTransport:
    """A provider with no idempotency key (SMTP, say): a retry after a lost answer could
    deliver twice."""

    name = "forgetful"
    capabilities = TransportCapabilities(
        reports_delivery_events=False,
        deduplicates_by_key=False,
        max_batch=1,
        max_request_bytes=10 * 1024 * 1024,
        batch_attachments=True,
    )

    def __init__(self, failure: ProviderFailure) -> None:
        self.failure = failure

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        raise self.failure

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "may_duplicate"),
    [
        # The answer was lost: it may have been sent, and nothing would stop a second copy.
        (ProviderFailure(errors.NETWORK_ERROR, "timed out waiting for the provider"), True),
        (ProviderFailure(errors.PROVIDER_UNAVAILABLE, "HTTP 503", http_status=503), True),
        # A refusing answer: nothing went out, a retry is as safe as the first try.
        (ProviderFailure(errors.RATE_LIMITED, "HTTP 429", http_status=429), False),
    ],
)
async def test_unknown_outcome_on_a_transport_without_key_dedupe_is_never_retried(
    failure: ProviderFailure, may_duplicate: bool
) -> None:
    activities = SendActivities(ForgetfulTransport(failure))
    run = ActivityEnvironment().run
    for attempt in (
        run(activities.send_email, SendAttemptInput(MESSAGE, "email-f/send", 1)),
        run(activities.send_batch, BatchAttemptInput(batch_of(1), "batch-f/send/0", 1)),
    ):
        with pytest.raises(ApplicationError) as caught:
            await attempt
        details: AttemptFailureDetails = caught.value.details[0]
        assert details.retry_may_duplicate is may_duplicate
        assert details.not_accepted is not may_duplicate
        assert caught.value.non_retryable is may_duplicate
        assert ("not retried" in caught.value.message) is may_duplicate


def test_pre_1_0_error_names_stay_readable() -> None:
    # Recorded histories and the statuses of executions started before 1.0 hold these.
    assert errors.canonical("ResendRateLimited") == errors.RATE_LIMITED == "ProviderRateLimited"
    assert errors.canonical("ResendServerError") == errors.PROVIDER_UNAVAILABLE
    assert errors.canonical(errors.REJECTED) == errors.REJECTED
    assert errors.canonical("SendWindowClosed") == errors.SEND_WINDOW_CLOSED
    assert {"ResendRejected", errors.REJECTED} <= errors.PERMANENT_ERRORS
    assert {"ResendRateLimited", errors.RATE_LIMITED} <= errors.NOT_ACCEPTED
    assert "ResendServerError" not in errors.NOT_ACCEPTED | errors.PERMANENT_ERRORS
    assert set(errors.LEGACY_NAMES.values()) <= {
        value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)
    }
