"""/docs and /redoc load everything from this server, so they work in a closed network."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from booking_service.config import Settings
from booking_service.docs import CONTENT_SECURITY_POLICY
from booking_service.main import create_app

ASSETS = {
    "/docs/assets/swagger-ui-bundle.js": "javascript",
    "/docs/assets/swagger-ui.css": "text/css",
    "/docs/assets/redoc.standalone.js": "javascript",
    "/docs/assets/favicon.png": "image/png",
}


@pytest.fixture
async def rate_limited_client(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[httpx.AsyncClient]:
    # The default configuration, rate limits on: the docs must still load in one go.
    app = create_app(settings_factory(rate_limit_enabled=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_pages_load_only_local_files(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    urls = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)""", response.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)""", response.text)
    assert urls, "the page loads its script"
    assert all(url.startswith("/") for url in urls), urls
    assert "cdn" not in response.text.lower()
    assert "fonts.googleapis" not in response.text


async def test_bundled_assets_are_served(client: httpx.AsyncClient) -> None:
    for path, content_type in ASSETS.items():
        response = await client.get(path)
        assert response.status_code == 200, path
        assert content_type in response.headers["content-type"], path
        assert len(response.content) > 1000, path


async def test_docs_are_not_rate_limited(rate_limited_client: httpx.AsyncClient) -> None:
    # A browser fetches the page, its files and the document at once, and reloads freely.
    for _ in range(3):
        for path in ["/docs", "/redoc", "/openapi.json", *ASSETS]:
            response = await rate_limited_client.get(path)
            assert response.status_code == 200, (path, response.text[:200])
