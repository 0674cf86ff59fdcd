from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from courier.signing import (
    SECRET_PREFIX,
    generate_secret,
    secret_key_bytes,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

# The test vector from the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

msg_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64
)
timestamps = st.integers(min_value=0, max_value=2**40)
bodies = st.binary(max_size=2048)
# Drawn from hypothesis (not generate_secret) so failures shrink and replay.
secrets_st = st.binary(min_size=24, max_size=64).map(
    lambda key: SECRET_PREFIX + base64.b64encode(key).decode("ascii")
)


def reference_verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


# --- the specification vector -------------------------------------------------------


def test_spec_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_spec_vector_without_prefix() -> None:
    bare = SPEC_SECRET.removeprefix(SECRET_PREFIX)
    assert sign(bare, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_spec_vector_verifies() -> None:
    assert verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE)


# --- secrets ------------------------------------------------------------------------


def test_generate_secret_format() -> None:
    secret = generate_secret()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    assert len(secret_key_bytes(secret)) == 32


@given(st.integers())
def test_generate_secret_property(_: int) -> None:
    secret = generate_secret()
    assert secret.startswith(SECRET_PREFIX)
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    assert len(key) == 32
    assert secret_key_bytes(secret) == key


def test_generated_secrets_differ() -> None:
    assert len({generate_secret() for _ in range(50)}) == 50


def test_secret_key_bytes_tolerates_missing_padding() -> None:
    key = bytes(range(31))
    encoded = base64.b64encode(key).decode().rstrip("=")
    assert secret_key_bytes(SECRET_PREFIX + encoded) == key


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "whsec_",
        "whsec_not base64!",
        "whsec_abcde",  # 5 characters: no padding can make this base64
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
        "whsec_MfKQ9r8GKYqrTwjUPD8I-_ZIo2LaLaSw",  # url-safe alphabet is not the standard
        "whsec_Mf\u00e9Q9r8GKYqrTwjUPD8ILPZIo2L",
        "whsec_====",
    ],
)
def test_secret_key_bytes_rejects_invalid(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        secret_key_bytes(bad)
    message = str(info.value)
    assert "secret" in message
    body = bad.removeprefix(SECRET_PREFIX).strip()
    if body:
        assert body not in message
    # No chained exception whose text could carry part of the secret into a traceback.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_secret_key_bytes_is_cached() -> None:
    secret = generate_secret()
    assert secret_key_bytes(secret) is secret_key_bytes(secret)


def test_sign_with_invalid_secret_raises() -> None:
    with pytest.raises(ValueError):
        sign("whsec_!!!!", "msg_1", 1, b"{}")


# --- headers ------------------------------------------------------------------------


def test_signature_header_one_entry_per_secret_in_order() -> None:
    secrets = [generate_secret() for _ in range(3)]
    header = signature_header(secrets, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    entries = header.split(" ")
    assert entries == [sign(s, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) for s in secrets]


def test_signature_header_requires_a_secret() -> None:
    with pytest.raises(ValueError):
        signature_header([], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)


def test_webhook_headers() -> None:
    headers = webhook_headers([SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert headers == {
        "content-type": "application/json",
        "webhook-id": SPEC_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": SPEC_SIGNATURE,
    }


# --- verify -------------------------------------------------------------------------


def test_verify_any_of_several_entries() -> None:
    other = generate_secret()
    header = signature_header([other, SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, header)
    assert verify(other, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, header)
    assert not verify(generate_secret(), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, header)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "v1",
        "v1,",
        "v1,not-base64!",
        "v2," + SPEC_SIGNATURE.removeprefix("v1,"),
        SPEC_SIGNATURE.removeprefix("v1,"),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",  # one padding char short
        "v1,\u00e9\u00e9\u00e9\u00e9",
        "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ],
)
def test_verify_rejects_malformed_headers(header: str) -> None:
    assert not verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, header)


def test_verify_skips_malformed_entries_before_a_good_one() -> None:
    header = f"v1,%%% v2,abc   {SPEC_SIGNATURE}"
    assert verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, header)


def test_verify_rejects_changed_id_and_timestamp() -> None:
    assert not verify(SPEC_SECRET, SPEC_ID + "x", SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE)
    assert not verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP + 1, SPEC_BODY, SPEC_SIGNATURE)


@given(secret=secrets_st, msg_id=msg_ids, timestamp=timestamps, body=bodies)
def test_sign_verify_roundtrip(secret: str, msg_id: str, timestamp: int, body: bytes) -> None:
    header = sign(secret, msg_id, timestamp, body)
    assert verify(secret, msg_id, timestamp, body, header)


@given(
    secret=secrets_st,
    msg_id=msg_ids,
    timestamp=timestamps,
    body=bodies,
    data=st.data(),
)
def test_tampered_body_fails(
    secret: str, msg_id: str, timestamp: int, body: bytes, data: st.DataObject
) -> None:
    header = sign(secret, msg_id, timestamp, body)
    if body:
        index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
        flip = data.draw(st.integers(min_value=1, max_value=255))
        tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    else:
        tampered = b"x"
    assert not verify(secret, msg_id, timestamp, tampered, header)
    assert not verify(secret, msg_id, timestamp, body + b" ", header)


@given(secret=secrets_st, other=secrets_st, msg_id=msg_ids, body=bodies)
def test_wrong_secret_fails(secret: str, other: str, msg_id: str, body: bytes) -> None:
    # HMAC zero-pads keys to the block size, so keys differing only in trailing NULs
    # are the same key.
    assume(secret_key_bytes(secret).rstrip(b"\0") != secret_key_bytes(other).rstrip(b"\0"))
    header = sign(secret, msg_id, 1_700_000_000, body)
    assert not verify(other, msg_id, 1_700_000_000, body, header)


# --- cross-check against the reference implementation (standardwebhooks on PyPI) ----


def test_reference_library_accepts_spec_secret() -> None:
    now = int(time.time())
    headers = webhook_headers([SPEC_SECRET], SPEC_ID, now, SPEC_BODY)
    assert reference_verifies(SPEC_SECRET, SPEC_BODY, headers)


def test_reference_library_multi_secret_header() -> None:
    secrets = [generate_secret() for _ in range(3)]
    now = int(time.time())
    headers = webhook_headers(secrets, SPEC_ID, now, SPEC_BODY)
    for secret in secrets:
        assert reference_verifies(secret, SPEC_BODY, headers)
        assert verify(secret, SPEC_ID, now, SPEC_BODY, headers["webhook-signature"])
    assert not reference_verifies(generate_secret(), SPEC_BODY, headers)


def test_reference_library_rejects_tampered_body() -> None:
    now = int(time.time())
    headers = webhook_headers([SPEC_SECRET], SPEC_ID, now, SPEC_BODY)
    assert not reference_verifies(SPEC_SECRET, SPEC_BODY + b" ", headers)


@given(
    secrets=st.lists(secrets_st, min_size=1, max_size=4),
    msg_id=msg_ids,
    # the reference library decodes the body as UTF-8 text
    text=st.text(max_size=512),
)
def test_reference_library_agrees(secrets: list[str], msg_id: str, text: str) -> None:
    body = text.encode("utf-8")
    now = int(time.time())  # the reference library rejects timestamps 5+ minutes away
    headers = webhook_headers(secrets, msg_id, now, body)
    reference = Webhook(secrets[0])
    assert headers["webhook-signature"].split(" ")[0] == reference.sign(
        msg_id, datetime.fromtimestamp(now, tz=UTC), body.decode("utf-8")
    )
    for secret in secrets:
        assert reference_verifies(secret, body, headers)
