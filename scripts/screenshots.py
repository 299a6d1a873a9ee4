"""`make screenshots`: PNGs of the Temporal Web UI and the outbox page of a running `make dev`.

    python scripts/screenshots.py                               # send one invite, shoot it
    python scripts/screenshots.py --retries       # with `make dev PROVIDER=fake`: retried sends
    python scripts/screenshots.py retried-500=invite-<hex> details=invite-<hex>/user-metadata
    python scripts/screenshots.py --no-send --no-outbox sent=invite-<hex>

Each `NAME=WORKFLOW_ID` (or a bare workflow id) becomes `<out>/<NAME>.png`: the workflow's
page in the Web UI, taken once its event history is rendered and its payloads decoded
through the codec (`/user-metadata` after the id: its summary and current details instead).
`--retries` makes the fake Resend of `make dev PROVIDER=fake` fail (two 500s, then a 429),
sends an invite after each and shoots both, and the first's summary and current details.
`outbox.png` is the API's `/dev/outbox` page. Headless Chromium (Debian
package `chromium`) is driven over the DevTools protocol, so the shots can be retaken on
any machine with `make dev` running; nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testkit.fake_resend import FakeResendClient, fault_of_kind  # noqa: E402
from testkit.procs import stop_popen  # noqa: E402

DEV = ROOT / ".dev"
# Written by `make dev PROVIDER=fake` (scripts/dev.py).
FAKE_URL_FILE = DEV / "fake_resend_url"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-port=0",
]  # fmt: skip
INVITE = {
    "email": "ann@example.com",
    "tenant_name": "Acme",
    "inviter_name": "Bob",
    "tenant_id": "acme",
}
# The Web UI's workflow page is ready when its event history lists every event (up to the
# 100 of its first page) and the codec server has decoded the payloads.
WORKFLOW_PAGE_READY = """(() => {
  const rows = document.querySelectorAll("table tbody tr").length;
  const decoded = document.querySelector("[data-testid='data-encoder-status-success']");
  const text = document.body ? document.body.innerText : "";
  return rows >= %(rows)d && !!decoded && !text.includes("binary/encrypted");
})()"""
OUTBOX_PAGE_READY = "document.readyState === 'complete' && document.body.innerText.length > 0"
# The User Metadata tab: the summary and the current details, each rendered (markdown) in
# its own iframe once decoded through the codec and queried from a worker.
METADATA_PAGE_READY = """(() => {
  const frames = [...document.querySelectorAll("iframe[src*='/render?content=']")];
  const shown = frames.filter((f) => f.contentDocument?.body?.innerText.trim());
  return frames.length >= 2 && shown.length === frames.length;
})()"""
TABS = ("history", "user-metadata")
# The Web UI scrolls inside this element, not the document.
UI_SCROLLER = "#content-wrapper"
MIN_HEIGHT, MAX_HEIGHT = 200, 6000
# The outbox page is a short list: narrower, as tall as its content.
OUTBOX_WIDTH = 1000

log = logging.getLogger("screenshots")


class DevTools:
    """A minimal Chrome DevTools protocol client: one page, one command at a time."""

    def __init__(self, ws: ClientConnection, size: tuple[int, int]) -> None:
        self._ws = ws
        self._next_id = 0
        self.size = size

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        await self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self._ws.recv())
            if message.get("id") != call_id:
                continue  # an event: not used
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def open(self, url: str, ready: str, timeout: float) -> None:
        """Navigate to `url` and wait until the JavaScript expression `ready` is true."""
        await self.call("Page.navigate", url=url)
        await self.wait(url, ready, timeout)

    async def wait(self, url: str, ready: str, timeout: float) -> None:
        """Wait until the JavaScript expression `ready` is true on the page."""
        deadline = time.monotonic() + timeout
        while not await self.evaluate(ready):
            if time.monotonic() > deadline:
                text = await self.evaluate("document.body ? document.body.innerText : ''")
                raise TimeoutError(
                    f"{url} not ready after {timeout:.0f} s; page text: {text!r:.500}"
                )
            await asyncio.sleep(0.25)

    async def screenshot(self, path: Path, scroller: str, width: int | None = None) -> None:
        """A PNG of the whole page: the window takes the height of its scrolling element."""
        width = width or self.size[0]
        await self.resize(width, self.size[1])
        element = f"document.querySelector({json.dumps(scroller)})"
        content = await self.evaluate(f"{element}.scrollHeight")
        height = min(max(int(content or 0), MIN_HEIGHT), MAX_HEIGHT)
        await self.resize(width, height)
        await asyncio.sleep(0.5)  # let the layout and the last transitions settle
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        await self.resize(*self.size)
        log.info("wrote %s (%dx%d)", path, width, height)

    async def resize(self, width: int, height: int) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip


@asynccontextmanager
async def chromium(width: int, height: int) -> AsyncIterator[DevTools]:
    """Headless Chromium with a fresh profile, driven through its first page."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise SystemExit(
            "chromium not found: `apt-get install -y chromium` (make screenshots does)"
        )
    with tempfile.TemporaryDirectory(prefix="screenshots-", ignore_cleanup_errors=True) as profile:
        args = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                f"--window-size={width},{height}", "about:blank"]  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = await _devtools_port(Path(profile) / "DevToolsActivePort", proc)
            async with httpx.AsyncClient() as http:
                targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            page = next(t for t in targets if t["type"] == "page")
            async with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
                tools = DevTools(ws, (width, height))
                await tools.call("Page.enable")
                await tools.resize(width, height)
                yield tools
        finally:
            stop_popen(proc, grace=10)


async def _devtools_port(path: Path, proc: subprocess.Popen[bytes]) -> int:
    """The port Chromium chose (`--remote-debugging-port=0` writes it in the profile)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"chromium exited with {proc.returncode}")
        if path.exists() and path.read_text().strip():
            return int(path.read_text().split()[0])
        await asyncio.sleep(0.1)
    raise SystemExit("chromium did not open its DevTools port within 30 s")


async def send_invite(api: str, key: str) -> str:
    """Send one invite through the API; its workflow id once the worker has sent it."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=10) as http:
        accepted = (await http.post("/v1/invites", json=INVITE)).raise_for_status().json()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = (await http.get(accepted["status_url"])).json()
            if status["status"] not in ("queued", "sending", "retrying", "scheduled"):
                log.info("invite %s is %s", accepted["workflow_id"], status["status"])
                return str(accepted["workflow_id"])
            await asyncio.sleep(0.2)
    raise SystemExit(f"invite {accepted['workflow_id']} not sent within 30 s")


async def describe(ui: str, namespace: str, workflow_id: str) -> tuple[str, int]:
    """The latest run of a workflow and its number of events, from the Web UI's HTTP API."""
    async with httpx.AsyncClient(base_url=ui, timeout=10) as http:
        described = await http.get(f"/api/v1/namespaces/{namespace}/workflows/{workflow_id}")
    described.raise_for_status()
    info = described.json()["workflowExecutionInfo"]
    return str(info["execution"]["runId"]), int(info["historyLength"])


async def wait_closed(ui: str, namespace: str, workflow_id: str, timeout: float) -> None:
    """Wait (bounded) until the workflow is no longer running; go on if it still is."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=ui, timeout=10) as http:
        while time.monotonic() < deadline:
            described = await http.get(f"/api/v1/namespaces/{namespace}/workflows/{workflow_id}")
            status = described.raise_for_status().json()["workflowExecutionInfo"]["status"]
            if status != "WORKFLOW_EXECUTION_STATUS_RUNNING":
                log.info("%s is %s", workflow_id, status.rsplit("_", 1)[-1].lower())
                return
            await asyncio.sleep(0.2)
    log.info("%s still runs after %.0f s (waiting for delivery events)", workflow_id, timeout)


def parse_targets(values: list[str]) -> list[tuple[str, str, str]]:
    """`NAME=WORKFLOW_ID[/TAB]` or `WORKFLOW_ID` -> (file name, workflow id, tab)."""
    targets = []
    for value in values:
        name, _, target = value.rpartition("=")
        workflow_id, _, tab = target.partition("/")
        if tab and tab not in TABS:
            raise SystemExit(f"unknown tab {tab!r} in {value!r}: one of {', '.join(TABS)}")
        targets.append((name or workflow_id, workflow_id, tab or "history"))
    return targets


async def send_retried(api: str, key: str, kind: str, count: int) -> str:
    """Queue `count` faults of `kind` in the fake Resend, then send an invite through them."""
    if not FAKE_URL_FILE.exists():
        raise SystemExit(f"--retries needs `make dev PROVIDER=fake` running (no {FAKE_URL_FILE})")
    fake = FakeResendClient(FAKE_URL_FILE.read_text().strip(), timeout=5.0)
    try:
        await fake.enqueue_faults([fault_of_kind(kind)] * count)
    finally:
        await fake.aclose()
    return await send_invite(api, key)


async def shoot(
    page: DevTools, args: argparse.Namespace, name: str, workflow_id: str, tab: str
) -> None:
    run_id, events = await describe(args.ui, args.namespace, workflow_id)
    url = f"{args.ui}/namespaces/{args.namespace}/workflows/{workflow_id}/{run_id}/history"
    await page.open(url, WORKFLOW_PAGE_READY % {"rows": min(events, 100)}, args.timeout)
    if tab != "history":
        # Opened directly, the tab stays empty: the Web UI fills it from the workflow page.
        link = f"document.querySelector('a[href$=\"/{tab}\"]')"
        await page.evaluate(f"{link}.click()")
        await page.wait(url.replace("/history", f"/{tab}"), METADATA_PAGE_READY, args.timeout)
    await page.screenshot(args.out / f"{name}.png", UI_SCROLLER)


async def main(args: argparse.Namespace) -> None:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    key = args.api_key or (DEV / "api_key").read_text().strip()
    targets = parse_targets(args.workflows)
    if args.retries:
        retried_500 = await send_retried(args.api, key, "500", 2)
        retried_429 = await send_retried(args.api, key, "429", 1)
        targets[:0] = [
            ("retried-500", retried_500, "history"),
            ("retried-500-details", retried_500, "user-metadata"),
            ("retried-429", retried_429, "history"),
        ]
    elif args.send:
        invite = await send_invite(args.api, key)
        # An outbox send completes when written: shoot it closed (others keep listening).
        await wait_closed(args.ui, args.namespace, invite, timeout=10)
        targets.insert(0, ("invite-sent", invite, "history"))
    async with chromium(args.width, args.height) as page:
        for name, workflow_id, tab in targets:
            await shoot(page, args, name, workflow_id, tab)
        if args.outbox and not args.retries:
            await page.open(f"{args.api}/dev/outbox", OUTBOX_PAGE_READY, args.timeout)
            await page.screenshot(out / "outbox.png", "body", OUTBOX_WIDTH)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ui_port = os.environ.get("DEV_UI_PORT", "8233")
    api_port = os.environ.get("DEV_API_PORT", "8000")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflows", nargs="*", help="NAME=WORKFLOW_ID or WORKFLOW_ID")
    # localhost, not 127.0.0.1: the codec answers CORS for the Web UI at http://localhost:<port>.
    parser.add_argument("--ui", default=f"http://localhost:{ui_port}", help="Temporal Web UI")
    parser.add_argument("--api", default=f"http://localhost:{api_port}", help="durable-mail API")
    parser.add_argument("--api-key", help="an API key (default: .dev/api_key)")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--no-send", dest="send", action="store_false",
                        help="do not send an invite to shoot (invite-sent.png)")  # fmt: skip
    parser.add_argument("--no-outbox", dest="outbox", action="store_false",
                        help="skip the outbox page (outbox.png)")  # fmt: skip
    parser.add_argument("--retries", action="store_true",
                        help="with `make dev PROVIDER=fake`: retried-500/-429 sends, not the "
                        "invite and outbox")  # fmt: skip
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per page")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(main(parse_args(sys.argv[1:])))
