"""Adapter tests run on asyncio's event loop and on uvloop's, which the worker runs on.

The HTTP client is a protocol over raw transports, and uvloop's transports are only
alike to asyncio's (not subclasses), so each loop gets every test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import pytest
import uvloop
from pytest_asyncio.plugin import LoopFactory

from courier.adapters.webhook import WebhookAdapter


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, LoopFactory]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
async def adapter() -> AsyncIterator[WebhookAdapter]:
    """Loopback is what the SSRF guard forbids, so the shared adapter allows private hosts."""
    a = WebhookAdapter(allow_private=True)
    try:
        yield a
    finally:
        await a.close()
