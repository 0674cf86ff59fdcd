"""`/docs` works offline: Swagger UI's script, style sheet and icon come from the API."""

from __future__ import annotations

import re

import httpx


async def test_docs_page_loads_its_assets_from_the_api_not_a_cdn(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "https://" not in page.text
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert "/docs/assets/swagger-ui-bundle.js" in assets
    assert "/docs/assets/swagger-ui.css" in assets
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100
    assert "'/openapi.json'" in page.text or '"/openapi.json"' in page.text
    assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.1")
