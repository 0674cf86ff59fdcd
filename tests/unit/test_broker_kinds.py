"""Broker kinds as pure rules: config validation per kind, what reads show, the display
address, and summaries that never carry a broker URL's credentials (Hypothesis)."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from courier import kinds
from courier.adapters import brokers
from courier.adapters.base import DeliveryRequest
from courier.signing import generate_secret

ALPHABET = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?#%[] "


def test_each_broker_kind_names_its_required_fields() -> None:
    for kind, field in (("rabbitmq", "exchange"), ("nats", "subject"), ("redis_stream", "stream")):
        with pytest.raises(ValidationError) as caught:
            kinds.SPECS[kind].config.model_validate({"url": "x://h"})
        assert caught.value.errors()[0]["loc"] == (field,)


def test_reads_show_secret_fields_by_name_only() -> None:
    valid = kinds.SPECS["redis_stream"].config.model_validate(
        {"url": "redis://:pw@h/0", "stream": "s", "maxlen": 10}
    )
    shown, secret = kinds.split_config(valid.model_dump())
    assert secret == {"url": "redis://:pw@h/0"}
    assert kinds.shown_config(shown, secret) == {
        "stream": "s",
        "maxlen": 10,
        "url": kinds.SECRET_SHOWN,
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://user:pw@rabbit.example:5671/vhost?x=1", "amqp://rabbit.example:5671"),
        ("nats://token@[::1]:4222", "nats://[::1]:4222"),
        ("redis://h", "redis://h"),
    ],
)
def test_the_display_address_drops_credentials_path_and_query(url: str, shown: str) -> None:
    assert kinds.display_url(url) == shown


def _request(url: str) -> DeliveryRequest:
    return DeliveryRequest(
        url="",
        event_id="msg_1",
        body=b"{}",
        secrets=(generate_secret(),),
        timeout_s=1.0,
        kind="rabbitmq",
        config={"url": url},
        config_secrets=(url,),
    )


@given(
    user=st.text(string.ascii_letters + string.digits, min_size=4, max_size=12),
    password=st.text(ALPHABET, min_size=6, max_size=24).filter(lambda p: p.strip()),
    form=st.sampled_from(["url", "raw", "plain", "userinfo"]),
)
def test_a_summary_never_carries_the_broker_credentials(
    user: str, password: str, form: str
) -> None:
    quoted = quote(password, safe="")
    url = f"amqp://{user}:{quoted}@127.0.0.1:5672/"
    quoted_text = {
        "url": url,
        "raw": quoted,
        "plain": password,
        "userinfo": f"{user}:{password}",
    }[form]
    result = brokers.result(
        _request(url), 0.0, "retryable_failure", f"cannot connect to {quoted_text}: refused"
    )
    assert result.error_summary is not None
    assert quoted not in result.error_summary
    if len(password.strip()) >= 6:
        assert password not in result.error_summary


@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "lone \ud800 surrogate"])
def test_config_text_that_cannot_be_stored_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        kinds.SPECS["rabbitmq"].config.model_validate({"url": "amqp://h", "exchange": bad})
    assert caught.value.errors()[0]["loc"] == ("exchange",)


async def test_the_client_pool_replaces_a_client_the_broker_dropped() -> None:
    opened: list[dict[str, bool]] = []
    closed: list[dict[str, bool]] = []

    async def open_client(url: str, size: int) -> dict[str, bool]:
        opened.append({"up": True})
        return opened[-1]

    async def close_client(client: dict[str, bool]) -> None:
        closed.append(client)

    pool = brokers.ClientPool(open_client, close_client, lambda client: client["up"])
    first = await pool.get("t", "u", "u", 1)
    assert await pool.get("t", "u", "u", 1) is first  # kept while alive
    assert await pool.get("other tenant", "u", "u", 1) is not first  # never shared
    first["up"] = False  # the broker went away between attempts
    second = await pool.get("t", "u", "u", 1)
    assert second is not first and second["up"] and closed == [first]
    await pool.close()
    assert closed == [first, second, opened[1]]
