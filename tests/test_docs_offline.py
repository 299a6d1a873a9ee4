"""`/docs` and `/redoc` load everything from the app itself: they work without internet."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from api.docs import install_offline_docs
from api.main import create_app
from config import Settings
from tests.helpers import asgi_client

# Any absolute URL written in the page, in an attribute or in the inline script.
ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


class _Assets(HTMLParser):
    """The URLs a browser fetches to render a page: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src", "redoc": "spec-url"}
        for name, value in attrs:
            if name == wanted.get(tag) and value:
                self.urls.append(value)


def assets_of(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


@pytest.fixture
async def docs_client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(_env_file=None, api_keys=SecretStr("dm_docs_test"))
    app = create_app(settings)
    async with asgi_client(app, key=None) as http:
        yield http


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_references_no_external_host(
    docs_client: httpx.AsyncClient, page: str
) -> None:
    response = await docs_client.get(page)
    assert response.status_code == 200
    assert ABSOLUTE_URL.findall(response.text) == []
    urls = assets_of(response.text)
    assert any(u.endswith(".js") for u in urls), urls
    assert all(urlsplit(u).netloc == "" for u in urls), urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_assets_are_served_by_the_app(
    docs_client: httpx.AsyncClient, page: str
) -> None:
    html = (await docs_client.get(page)).text
    for url in assets_of(html):
        response = await docs_client.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 1000, url
        if url.endswith(".js"):
            assert "javascript" in response.headers["content-type"]
            # The bundle, not an error page or a loader that fetches the real thing.
            assert len(response.content) > 500_000, url


async def test_swagger_ui_oauth2_redirect_is_served(docs_client: httpx.AsyncClient) -> None:
    response = await docs_client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "swaggerUIRedirectOauth2" in response.text


def test_installing_over_fastapi_cdn_pages_is_refused() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        install_offline_docs(FastAPI())
