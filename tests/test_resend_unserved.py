"""What Resend's SDKs call that we do not serve answers in Resend's error format, with a
message that says so; `/v1` keeps its own format for its unknown paths."""

from __future__ import annotations

import httpx
import pytest
import resend
import resend.exceptions

from testkit.keys import API_KEY
from tests.test_resend_compat import (
    Stack,
    call,
    needs_node_sdk,
    run_node,
    sdk,  # noqa: F401  (the SDK pointed at this module's stack)
    stack,  # noqa: F401
)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/domains"),
        ("POST", "/api-keys"),
        ("DELETE", "/audiences/aud_1/contacts/someone@example.com"),
        ("PATCH", "/broadcasts/b_1"),
        ("GET", "/oauth/grants"),
    ],
)
async def test_resends_other_apis_are_404_not_found_naming_the_api(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await api.request(method, path)
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"statusCode", "name", "message"}
    assert (body["statusCode"], body["name"]) == (404, "not_found")
    assert f"`/{path.split('/')[1]}` API" in body["message"]
    assert "someone@example.com" not in body["message"]


async def test_a_served_path_with_another_method_is_405_naming_the_methods(
    api: httpx.AsyncClient,
) -> None:
    response = await api.delete("/emails/em_0123456789abcdef")
    assert response.status_code == 405
    assert response.json()["name"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, PATCH"
    assert "use GET, PATCH" in response.json()["message"]
    whole = await api.put("/emails")
    assert whole.status_code == 405 and whole.headers["allow"] == "GET, POST"
    deeper = await api.post("/emails/em_0123456789abcdef/resend")
    assert deeper.status_code == 404 and deeper.json()["name"] == "not_found"


async def test_unserved_paths_need_a_key_like_the_rest(api: httpx.AsyncClient) -> None:
    no_key = await api.get("/domains", headers={"Authorization": ""})
    assert no_key.status_code == 401 and no_key.json()["name"] == "missing_api_key"


async def test_v1_unknown_paths_keep_v1s_format(api: httpx.AsyncClient) -> None:
    unknown = await api.get("/v1/domains")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}


async def test_python_sdk_gets_resends_exception(sdk: Stack) -> None:  # noqa: F811
    with pytest.raises(resend.exceptions.ResendError) as raised:
        await call(resend.Domains.list)
    assert (raised.value.code, raised.value.error_type) == (404, "not_found")
    assert "does not serve Resend's `/domains` API" in raised.value.message


@needs_node_sdk
async def test_node_sdk_gets_resends_error(sdk: Stack) -> None:  # noqa: F811
    answers = await run_node("unserved.cjs", sdk.url, API_KEY)
    for name in ("domains", "contact"):
        assert answers[name]["data"] is None
        assert answers[name]["error"]["name"] == "not_found"
        assert answers[name]["error"]["statusCode"] == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/emails/em_0123456789abcdef/share"),
        ("GET", "/emails/metrics"),
        ("GET", "/emails/em_0123456789abcdef/attachments"),
        ("GET", "/emails/receiving"),
    ],
)
async def test_unserved_email_calls_answer_in_resends_format(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    # Emails.share, metrics, attachments and receiving: not served (no share links, metrics,
    # stored attachments or inbound mail here), answered in Resend's shape, never a 500.
    response = await api.request(method, path)
    assert response.status_code == 404, response.text
    assert set(response.json()) == {"statusCode", "name", "message"}
    assert response.json()["name"] == "not_found"
