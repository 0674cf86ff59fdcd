"""Destination options as pure rules: header names, the shown/secret split and its
inverse, the envelope, what an adapter gets, the captured excerpt's bound, and token
answers."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from courier import destination_options as opts
from courier.adapters.oauth2 import TokenError, endpoint_name, parse_token
from courier.adapters.webhook import CAPTURED_BYTES, captured_excerpt
from courier.redact import REDACTED
from courier.web.destination_input import HEADER_NAME_DOC_PATTERN

TOKEN_CHARS = "!#$%&'*+.^_`|~-" + "abcXYZ019"
names = st.text(TOKEN_CHARS, min_size=1, max_size=20)
values = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)


@pytest.mark.parametrize(
    "name",
    ["Host", "content-type", "Content-Length", "TRANSFER-ENCODING", "connection",
     "webhook-id", "Webhook-Signature", "webhook-", "courier-event-type"],
)  # fmt: skip
def test_reserved_names_are_refused(name: str) -> None:
    assert opts.header_name_problem(name) == "is a reserved header that courier sets itself"
    assert not re.match(HEADER_NAME_DOC_PATTERN, name)


@pytest.mark.parametrize("name", ["bad name", "", "X:A", "é", "a\r\nb", "x" * 257])
def test_names_that_are_not_tokens_are_refused(name: str) -> None:
    reason = opts.header_name_problem(name)
    assert reason is not None and reason.startswith("is not an HTTP header name")
    assert not re.match(HEADER_NAME_DOC_PATTERN, name)


@given(names)
def test_the_documented_pattern_admits_exactly_what_the_api_admits(name: str) -> None:
    assert (opts.header_name_problem(name) is None) == bool(re.match(HEADER_NAME_DOC_PATTERN, name))


auths = st.one_of(
    st.builds(lambda u, p: {"type": "basic", "username": u, "password": p}, names, values),
    st.builds(lambda t: {"type": "bearer", "token": t}, names),
    st.builds(
        lambda i, s, scope: {
            "type": "oauth2_client_credentials",
            "token_url": "https://auth.example.com/token",
            "client_id": i,
            "client_secret": s,
            **({"scope": scope} if scope else {}),
        },
        names,
        values,
        st.none() | names,
    ),
)
options = st.fixed_dictionaries(
    {},
    optional={
        "headers": st.dictionaries(names, values, min_size=1, max_size=5),
        "auth": auths,
        "tls_client_certificate": st.builds(
            lambda c, k: {"certificate": c, "private_key": k}, values, values
        ),
        "tls_ca_certificate": values.filter(bool),
    },
)


@given(options)
def test_split_then_open_gives_the_options_back_and_shows_no_secret(whole: dict) -> None:
    shown, secret = opts.split_options(whole)
    assert opts.open_options(shown, secret) == whole
    read = opts.shown_options(shown, secret.keys())
    for path in secret:
        field, _, name = path.partition(".")
        assert read[field][name] == "<redacted>"
    # What is stored in the clear holds no secret field at all.
    assert isinstance(shown.get("headers", []), list)
    assert not opts.SECRET_AUTH_FIELDS & set(shown.get("auth", {}))
    assert "private_key" not in shown.get("tls_client_certificate", {})
    assert set(secret) == {f"headers.{n}" for n in whole.get("headers", {})} | {
        f"auth.{k}" for k in whole.get("auth", {}) if k in opts.SECRET_AUTH_FIELDS
    } | ({"tls_client_certificate.private_key"} if "tls_client_certificate" in whole else set())


def test_request_options_carry_the_credentials_and_every_secret() -> None:
    basic = opts.request_options(
        {
            "headers": {"X-Api-Key": "key-1234", "user-agent": "acme/1"},
            "auth": {"type": "basic", "username": "u", "password": "p@ss:word"},
        },
        True,
    )
    encoded = base64.b64encode(b"u:p@ss:word").decode()
    assert basic.headers == (("X-Api-Key", "key-1234"), ("authorization", f"Basic {encoded}"))
    assert basic.user_agent == "acme/1" and basic.capture_response_body
    assert {"key-1234", "p@ss:word", encoded} <= set(basic.secrets)
    bearer = opts.request_options({"auth": {"type": "bearer", "token": "tok-123456"}}, False)
    assert bearer.headers == (("authorization", "Bearer tok-123456"),)
    assert bearer.key != basic.key
    same = opts.request_options({"auth": {"type": "bearer", "token": "tok-123456"}}, False)
    assert same.key == bearer.key


def test_the_envelope_wraps_the_payload_text_as_it_is() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    body = opts.envelope("order.paid", created, b'{"a": [1, 2.50]}')
    assert body.endswith(b',"data":{"a": [1, 2.50]}}')
    assert json.loads(body) == {
        "type": "order.paid",
        "timestamp": "2026-01-02T01:04:05.000006Z",
        "data": {"a": [1, 2.5]},
    }
    assert datetime.fromisoformat(json.loads(body)["timestamp"]).tzinfo == UTC


def test_certificates_and_keys_are_checked() -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("a.example.com")
    certificate = issued.cert_chain_pems[0].bytes().decode()
    key = issued.private_key_pem.bytes().decode()
    assert opts.key_problem(certificate, key) is None
    assert opts.certificates_problem(ca.cert_pem.bytes().decode()) is None
    other = ca.issue_cert("b.example.com").private_key_pem.bytes().decode()
    assert opts.key_problem(certificate, other) == ("private_key", "does not match the certificate")
    assert opts.key_problem("nope", key) == ("certificate", "is not a PEM certificate")
    assert opts.key_problem(certificate, "nope")[0] == "private_key"  # type: ignore[index]
    assert opts.certificates_problem(key) == "is not a PEM certificate"


@given(
    prefix=st.text(max_size=6000),
    secret=st.text("abcdefXYZ0123456789-_", min_size=8, max_size=40),
    suffix=st.text(max_size=6000),
)
def test_a_captured_excerpt_is_bounded_and_never_holds_a_known_secret(
    prefix: str, secret: str, suffix: str
) -> None:
    body = (prefix[:3000] + secret + suffix).encode("utf-8")[: 2 * CAPTURED_BYTES]
    excerpt = captured_excerpt(body, (secret,))
    assert len(excerpt.encode("utf-8")) <= CAPTURED_BYTES
    if len((prefix[:3000] + secret).encode("utf-8")) <= 2 * CAPTURED_BYTES:
        assert secret not in excerpt
    assert "\x00" not in excerpt
    assert not excerpt.endswith(REDACTED[:-1] + "…")  # a marker is never cut in half


def test_token_answers() -> None:
    token = parse_token(200, b'{"access_token": "abc", "expires_in": 100}', 1000.0)
    assert (token.value, token.refresh_at, token.expires_at) == ("abc", 1090.0, 1100.0)
    long_lived = parse_token(200, b'{"access_token": "abc", "token_type": "bearer"}', 0.0)
    assert long_lived.expires_at - long_lived.refresh_at == 60.0  # at most a minute early
    for status, body, why in [
        (500, b"down", "answered HTTP 500: down"),
        (200, b"<html>", "answered with something other than JSON"),
        (200, b'{"token_type": "Bearer"}', "answered without an access_token"),
        (200, b'{"access_token": "a b"}', "answered with an access_token that is not"),
        (200, b'{"access_token": "a", "token_type": "mac"}', "answered with a token_type"),
        (200, b'{"access_token": "a", "expires_in": "soon"}', "answered with an expires_in"),
    ]:
        with pytest.raises(TokenError) as failed:
            parse_token(status, body, 0.0)
        assert str(failed.value).startswith(why)


def test_the_endpoint_is_named_without_credentials_or_query() -> None:
    assert endpoint_name("https://u:p@auth.example.com:8443/oauth/token?x=secret#f") == (
        "https://auth.example.com:8443/oauth/token"
    )
    assert endpoint_name("http://[::1]/token") == "http://[::1]/token"
