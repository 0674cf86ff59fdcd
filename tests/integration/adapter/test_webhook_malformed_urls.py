"""Whatever URL a stored destination holds, `deliver()` returns an outcome and never raises.

The API refuses malformed URLs, but a row written by an older version, or by
`courier.destinations.create_destination` behind the API's back, reaches the adapter as
it is. The adapter's guard is on and its DNS is a loopback server that knows no names,
so nothing here can reach a network.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from courier.adapters.base import AttemptResult, DeliveryRequest
from courier.adapters.webhook import WebhookAdapter
from courier.redact import MAX_SUMMARY_CHARS
from courier.signing import generate_secret
from tests.support.dns_server import DnsServer

SECRET = generate_secret()
BODY = json.dumps({"type": "t"}).encode()
FAILURES = ("retryable_failure", "permanent_failure")

# yarl raises IndexError, not ValueError, for these; the adapter used to let it escape.
NOT_PARSEABLE = [
    "https://[]@",
    "https://[]@/hook",
    "https://user:hunter2-pass@[]@",
]
ODD = [
    "",
    "http://[]@example.com/",
    " ",
    "http://",
    "http://[",
    "http://[::1",
    "https://[]",
    "http://:99999/",
    "http://[::1]:x/",
    "https://@/",
    "http://\udcff/",
    "http://%/",
    "http://a b/",
    "http://\x00/",
    "https://[v1.x]/",
    "http://[fe80::1%25eth0]/",
    "http://h\r\nx/",
    "http://h/\r\nx",
    "https://xn--/",
    "http://.../",
    "http://h:0/",
    "mailto:someone@example.com",
]


def request(url: str) -> DeliveryRequest:
    return DeliveryRequest(url=url, event_id="msg_x", body=BODY, secrets=(SECRET,), timeout_s=2.0)


async def deliver_once(url: str) -> AttemptResult:
    async with DnsServer({}) as dns:
        adapter = WebhookAdapter(dns_servers=[dns.address], dns_timeout=1.0)
        try:
            return await adapter.deliver(request(url))
        finally:
            await adapter.close()


def assert_failed_cleanly(result: AttemptResult, url: str) -> None:
    assert isinstance(result, AttemptResult)
    assert result.outcome in FAILURES
    assert result.http_status is None
    assert result.error_summary
    assert len(result.error_summary) <= MAX_SUMMARY_CHARS
    if len(url) > 8:
        assert url not in result.error_summary


@pytest.mark.parametrize("url", NOT_PARSEABLE)
async def test_a_url_the_parser_chokes_on_is_a_permanent_failure(url: str) -> None:
    result = await deliver_once(url)
    assert_failed_cleanly(result, url)
    assert result.outcome == "permanent_failure"
    assert result.error_summary == "invalid URL (IndexError)"
    assert "hunter2" not in result.error_summary


@pytest.mark.parametrize("url", ODD)
async def test_odd_urls_fail_without_raising(url: str) -> None:
    assert_failed_cleanly(await deliver_once(url), url)


# No digits and no hex letters: no IP literal but "::" (refused) can be formed, and names
# only resolve through the test's DNS server, which knows none.
_URL_CHARS = "[]@:/?#%.\\ \t\r\n\x00xyzü-_~!$&'()*+,;="
_PREFIXES = ("", "http://", "https://", "HTTPS://", "http:", "https:/", "http://[", "https://x@")


@settings(max_examples=200, deadline=None)
@given(url=st.builds(str.__add__, st.sampled_from(_PREFIXES), st.text(_URL_CHARS, max_size=24)))
def test_deliver_returns_an_outcome_for_any_url(url: str) -> None:
    assert_failed_cleanly(asyncio.run(deliver_once(url)), url)
