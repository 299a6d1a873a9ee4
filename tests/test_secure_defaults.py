"""Secure defaults with real processes: no codec key, no start; nothing secret in the logs.

The worker and the API run as `python worker.py` and `uvicorn api.main:app` (testkit.stack),
against the session's Temporal server and a fake Resend, and their log files are read back.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx
import pytest

from config import Settings
from observability import WithholdExceptionText, exception_without_text
from testkit.fake_resend import FakeResendServer, Fault
from testkit.keys import API_KEY, CODEC_UI_SECRET, FAKE_KEY
from testkit.polling import eventually
from testkit.procs import Proc, free_port
from testkit.stack import API_APP, api_proc, start_api, start_worker, worker_env, worker_proc
from tests.helpers import wait_for_status

RECIPIENT = "victim.person@example.org"
SUBJECT = "Your salary review for Q4"
BODY = "The figures are attached."
KEY_HINT = "base64.b64encode(os.urandom(32))"


def stack_env(settings: Settings, **extra: str) -> dict[str, str]:
    """What our worker and API read (see config.py), as these tests run them."""
    return {
        **worker_env(settings),
        "WORKER_METRICS_PORT": "0",
        "SEND_INITIAL_BACKOFF_SECONDS": "0.2",
        "CODEC_UI_SECRET": CODEC_UI_SECRET,
        "LOG_FORMAT": "json",
        **extra,
    }


async def run_until_exit(proc: Proc, timeout: float = 30.0) -> tuple[int, str]:
    """Start the process and wait until it ends (stopped if it does not): its exit code and log."""
    proc.start()
    try:
        await eventually(lambda: not proc.alive, timeout=timeout, what=f"{proc.name} to exit")
    finally:
        await proc.stop()
    assert proc.popen is not None and proc.popen.returncode is not None
    return proc.popen.returncode, proc.log_since_start()


async def test_worker_and_api_refuse_to_start_without_codec_keys(
    settings: Settings, tmp_path: Path
) -> None:
    env = stack_env(settings, PAYLOAD_CODEC_KEYS="")
    worker = worker_proc(env, tmp_path)
    api = api_proc(env, tmp_path, free_port())
    for proc in (worker, api):
        code, log = await run_until_exit(proc)
        assert code != 0, log
        lines = [line for line in log.splitlines() if "PAYLOAD_CODEC_KEYS" in line]
        assert len(lines) == 1, log
        assert KEY_HINT in lines[0] and "ALLOW_PLAINTEXT_PAYLOADS" in lines[0]
        assert "Traceback" not in log


async def test_plaintext_is_an_explicit_opt_out_warned_at_every_start(
    settings: Settings, tmp_path: Path
) -> None:
    env = stack_env(settings, PAYLOAD_CODEC_KEYS="", ALLOW_PLAINTEXT_PAYLOADS="true")
    worker = worker_proc(env, tmp_path)
    port = free_port()
    api = api_proc(env, tmp_path, port)
    try:
        await start_worker(worker)
        await start_api(api, f"http://127.0.0.1:{port}")
        for proc in (worker, api):

            def warned(proc: Proc = proc) -> bool:
                return "in the clear" in proc.log_since_start()

            await eventually(warned, what=f"{proc.name}'s plaintext warning")
    finally:
        await api.stop()
        await worker.stop()


async def test_logs_hold_no_recipient_subject_provider_message_or_key(
    alone: None, settings: Settings, fake_resend: FakeResendServer, tmp_path: Path
) -> None:
    # Alone: the owner's status quotes the provider (a coalesced call's never does, it can
    # name another tenant's recipient), which shows the logs had the words to leak.
    # Providers quote the recipient in their errors. A transient one first (the SDK logs
    # it at DEBUG), then a permanent one (the SDK logs it as a warning, with its exception).
    fake_resend.fake.enqueue_faults(
        [
            Fault(status=500, message=f"mailbox {RECIPIENT} is temporarily unavailable"),
            Fault(status=422, name="validation_error", message=f"Invalid `to`: {RECIPIENT}"),
        ]
    )
    env = stack_env(settings, LOG_LEVEL="DEBUG")
    worker = worker_proc(env, tmp_path)
    port = free_port()
    api = api_proc(env, tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        await start_worker(worker)
        await start_api(api, url)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as http:
            email = {"to": RECIPIENT, "subject": SUBJECT, "text": BODY}
            accepted = await http.post("/v1/emails", json=email)
            assert accepted.status_code == 202, accepted.text
            # A 500 first (it may have gone through), then a refusal: undetermined.
            status = await wait_for_status(http, accepted.json()["id"], "undetermined", timeout=30)
            # The owner still reads the provider's words in the status: only logs omit them.
            assert RECIPIENT in status["last_error"]["message"]
            # A decode through the Web UI's capability URL (its secret must not be logged).
            decoded = await http.post(f"/codec/{CODEC_UI_SECRET}/decode", json={"payloads": []})
            assert decoded.status_code == 200
    finally:
        await api.stop()
        await worker.stop()
    worker_log, api_log = worker.log_since_start(), api.log_since_start()
    # The SDK did log both failed attempts (so this test exercises its logging)...
    sdk_lines = [
        json.loads(line)
        for line in worker_log.splitlines()
        if line.startswith("{") and "Completing activity as failed" in line
    ]
    assert len(sdk_lines) == 2, worker_log
    assert all("message withheld" in line["exc"] for line in sdk_lines)
    assert "ProviderRejected" in worker_log and "ProviderUnavailable" in worker_log
    # ...and neither log holds anything of the email, the provider's words or a secret.
    secrets = {
        "recipient": RECIPIENT,
        "recipient's mailbox": RECIPIENT.split("@")[0],
        "subject": SUBJECT,
        "body": BODY,
        "provider message": "temporarily unavailable",
        "provider message 2": "Invalid `to`",
        "Resend key": FAKE_KEY,
        "API key": API_KEY,
        "codec capability": CODEC_UI_SECRET,
    }
    for name, log in (("worker", worker_log), ("api", api_log)):
        leaked = {what: value for what, value in secrets.items() if value in log}
        assert leaked == {}, f"{name} log leaks {sorted(leaked)}"


def test_sdk_records_keep_the_exception_type_and_frames_but_not_its_message() -> None:
    from temporalio.exceptions import ApplicationError

    try:
        try:
            raise ValueError(f"inner {RECIPIENT}")
        except ValueError as inner:
            raise ApplicationError(f"outer {RECIPIENT}", type="ResendRejected") from inner
    except ApplicationError:
        exc_info = sys.exc_info()
    text = exception_without_text(exc_info[1])  # type: ignore[arg-type]
    assert RECIPIENT not in text
    assert "ValueError" in text and "type=ResendRejected" in text and "test_secure" in text

    for logger in ("temporalio.activity", "temporalio.worker._workflow_instance", "uvicorn.error"):
        record = logging.LogRecord(logger, logging.WARNING, __file__, 1, "failed", None, exc_info)
        assert WithholdExceptionText().filter(record)
        assert record.exc_info is None and RECIPIENT not in (record.exc_text or "")
        assert "type=ResendRejected" in (record.exc_text or "")
    ours = logging.LogRecord("durable_mail.api", logging.ERROR, __file__, 1, "x", None, exc_info)
    WithholdExceptionText().filter(ours)
    assert ours.exc_info is exc_info  # our own loggers keep theirs (they name no address)


@pytest.mark.parametrize(
    "path",
    [
        "/codec/s3cr3t/decode",
        "/mail/codec/s3cr3t/encode",
        "/codec/s3cr3t",
        "/codec/s3cr3t/foo",
        "/codec/s3cr3t%2Fdecode",
        "/c%6Fdec/%73%33cr3t/decode",
        "/CODEC/s3cr3t/decode?x=1",
    ],
)
def test_access_log_lines_hide_the_codec_capability(path: str) -> None:
    from observability import RedactCodecCapability

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None
    )
    record.args = ("127.0.0.1:5000", "POST", path, "1.1", 200)
    RedactCodecCapability().filter(record)
    assert "s3cr3t" not in record.getMessage() and "[redacted]" in record.getMessage()


@pytest.mark.parametrize(
    "path",
    [
        "/suppressions/ann.lee@example.com",
        "/v1/suppressions/ann.lee%40example.com",
        "/suppressions/ann.lee%2540example.com",  # encoded twice: the log shows it decoded
        "/v1/suppressions?after=ann.lee@example.com&limit=5",
    ],
)
def test_access_log_lines_hide_addresses(path: str) -> None:
    from observability import protect_logs

    protect_logs()
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None
    )
    record.args = ("127.0.0.1:5000", "DELETE", path, "1.1", 200)
    assert logging.getLogger("uvicorn.access").filter(record)
    line = record.getMessage()
    assert "ann.lee" not in line and "example.com" not in line and "[address]" in line, line
    assert line.startswith('127.0.0.1:5000 - "DELETE /'), line


@pytest.mark.parametrize(
    ("variable", "weak"),
    [
        ("API_KEYS", "Q"),  # the issue's `a`, in a letter no log line holds
        ("API_KEYS", "QQQQQQQQQQQQQQQQQQQQQQQQQQQQ"),
        ("CODEC_UI_SECRET", "Q"),
        ("CODEC_UI_SECRET", "Q-short-but-not-32-chars"),
        ("TENANTS", '{"acme": {"api_keys": ["Qw3ak"], "sender_domains": ["acme.example"]}}'),
    ],
)
async def test_api_refuses_to_start_with_a_weak_secret_naming_it_never_echoing_it(
    settings: Settings, tmp_path: Path, variable: str, weak: str
) -> None:
    api = api_proc(stack_env(settings, **{variable: weak}), tmp_path, free_port())
    code, log = await run_until_exit(api)
    assert code != 0
    assert variable in log and "too weak" in log, log
    secret = weak if variable != "TENANTS" else "Qw3ak"
    assert secret not in log, log


async def test_no_spelling_of_the_codec_capability_reaches_the_access_log(
    settings: Settings, tmp_path: Path
) -> None:
    # uvicorn as deployed: with its access log (testkit's API runs without one).
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", API_APP, "--host", "127.0.0.1", "--port", str(port)]
    api = Proc("api-access-log", args, stack_env(settings), tmp_path / "api.log")
    url = f"http://127.0.0.1:{port}"
    encoded = "".join(f"%{byte:02X}" for byte in CODEC_UI_SECRET.encode())
    try:
        await start_api(api, url)
        async with httpx.AsyncClient(base_url=url) as http:
            # The real capability works; its encoded spellings are not capabilities.
            ok = await http.post(f"/codec/{CODEC_UI_SECRET}/decode", json={"payloads": []})
            assert ok.status_code == 200
            for path in (f"/codec/{CODEC_UI_SECRET}%2Fdecode", f"/codec/{encoded}/decode"):
                answer = await http.post(path, json={"payloads": []})
                assert answer.status_code == 401, path
            for path in (f"/codec/{CODEC_UI_SECRET}", f"/codec/{CODEC_UI_SECRET}/foo"):
                assert (await http.post(path, json={})).status_code in (401, 404, 405)
    finally:
        await api.stop()
    log = api.log_since_start()
    assert log.count("/codec/[redacted]") >= 5, log
    assert CODEC_UI_SECRET not in log and encoded not in log
