"""Adapter tests run on asyncio's event loop and on uvloop's, which the worker runs on.

The HTTP client is a protocol over raw transports, and uvloop's transports are only
alike to asyncio's (not subclasses), so each loop gets every test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
import uvloop
from pytest_asyncio.plugin import LoopFactory


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, LoopFactory]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
