"""courier.receiver: the published vectors (tests/fixtures/webhook-vectors.json), each
checked with courier.receiver and, where it applies, the `standardwebhooks` package; and
the replay cache's bounds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from courier.receiver import ReplayCache, verify_request
from courier.signing import generate_secret, webhook_headers

VECTORS_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "webhook-vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text("utf-8"))["vectors"]
SIGNATURE_HOLDS = {"ok", "stale", "future", "replayed"}  # verdicts of authentic signatures


def test_the_vectors_cover_every_case_the_kit_promises() -> None:
    reasons = {v["expected"]["reason"] for v in VECTORS}
    assert {"ok", "stale", "future", "bad_signature", "replayed"} <= reasons
    names = {v["name"] for v in VECTORS}
    assert {"valid", "stale", "future", "tampered_body", "wrong_secret", "replayed_id"} <= names
    assert any(len(v["headers"].get("webhook-signature", "").split()) == 2 for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_with_courier_receiver(vector: dict[str, Any]) -> None:
    seen = ReplayCache()
    for msg_id in vector["seen_ids"]:
        assert not seen.check_and_add(msg_id, keep_until=vector["now"] + 300, now=vector["now"])
    verdict = verify_request(
        vector["secrets"],
        vector["headers"],
        vector["body"].encode("utf-8"),
        tolerance_s=vector["tolerance_s"],
        now=vector["now"],
        seen=seen,
    )
    assert verdict.ok is vector["expected"]["valid"]
    assert verdict.reason == vector["expected"]["reason"]
    assert bool(verdict) is verdict.ok
    if verdict.ok:
        assert verdict.msg_id in seen  # recorded: the same request again is a replay
        again = verify_request(
            vector["secrets"],
            vector["headers"],
            vector["body"].encode("utf-8"),
            now=vector["now"],
            seen=seen,
        )
        assert again.reason == "replayed" and again.authentic and not again.ok


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_with_standardwebhooks(vector: dict[str, Any]) -> None:
    headers, body = vector["headers"], vector["body"]
    if "webhook-signature" in headers:
        # The library's own signer, at the vector's timestamp: does it agree?
        when = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
        sent = headers["webhook-signature"].split(" ")
        agrees = any(
            Webhook(s).sign(headers["webhook-id"], when, body) in sent for s in vector["secrets"]
        )
        assert agrees is (vector["expected"]["reason"] in SIGNATURE_HOLDS)
    if vector["standardwebhooks"] == "reject":
        for secret in vector["secrets"]:
            with pytest.raises(WebhookVerificationError):
                Webhook(secret).verify(body, headers)
    else:
        assert vector["standardwebhooks"] == "signature"


def test_fresh_requests_agree_with_standardwebhooks_at_the_real_clock() -> None:
    new, old = generate_secret(), generate_secret()
    body = b'{"fresh": true}'
    headers = webhook_headers((new, old), "msg_fresh", int(datetime.now(UTC).timestamp()), body)
    for secret in (new, old):
        assert verify_request([secret], headers, body).ok
        assert Webhook(secret).verify(body, headers) == {"fresh": True}
    stranger = generate_secret()
    assert verify_request([stranger], headers, body).reason == "bad_signature"
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)


def test_header_names_are_case_insensitive_and_secret_order_is_reported() -> None:
    old, new = generate_secret(), generate_secret()
    body = b"{}"
    headers = {k.title(): v for k, v in webhook_headers((old,), "m1", 1000, body).items()}
    verdict = verify_request([new, old], headers, body, now=1000)
    assert verdict.ok and verdict.secret_index == 1 and verdict.timestamp == 1000


@pytest.mark.parametrize("value", ["", "abc", "1e9", "-5", "١٢٣", "9" * 40, " 1000x"])
def test_unusable_timestamps_are_rejected(value: str) -> None:
    secret = generate_secret()
    headers = webhook_headers((secret,), "m", 1000, b"{}")
    headers["webhook-timestamp"] = value
    verdict = verify_request([secret], headers, b"{}", now=1000)
    assert not verdict.ok
    assert verdict.reason in ("missing_headers", "invalid_timestamp")


def test_a_malformed_secret_is_skipped_and_reported_when_alone() -> None:
    good = generate_secret()
    headers = webhook_headers((good,), "m", 1000, b"{}")
    assert verify_request(["whsec_!!!", good], headers, b"{}", now=1000).ok
    assert verify_request(["whsec_!!!"], headers, b"{}", now=1000).reason == "invalid_secret"


def test_a_forged_request_does_not_poison_the_cache() -> None:
    secret, forger = generate_secret(), generate_secret()
    seen = ReplayCache()
    forged = webhook_headers((forger,), "m-victim", 1000, b"{}")
    assert verify_request([secret], forged, b"{}", now=1000, seen=seen).reason == "bad_signature"
    real = webhook_headers((secret,), "m-victim", 1000, b"{}")
    assert verify_request([secret], real, b"{}", now=1000, seen=seen).ok


def test_forget_lets_a_retry_through_and_the_window_expires_ids() -> None:
    secret = generate_secret()
    seen = ReplayCache()
    first = webhook_headers((secret,), "m-retry", 1000, b"{}")
    assert verify_request([secret], first, b"{}", now=1000, seen=seen).ok
    retry = webhook_headers((secret,), "m-retry", 1010, b"{}")  # courier: same id, new ts
    assert verify_request([secret], retry, b"{}", now=1010, seen=seen).reason == "replayed"
    seen.forget("m-retry")
    assert verify_request([secret], retry, b"{}", now=1010, seen=seen).ok
    late = webhook_headers((secret,), "m-retry", 1400, b"{}")  # after 1010 + 300 + 1
    assert verify_request([secret], late, b"{}", now=1400, seen=seen).ok
    assert len(seen) == 1


def test_the_cache_is_bounded_oldest_first() -> None:
    seen = ReplayCache(max_entries=3)
    for n in range(5):
        assert not seen.check_and_add(f"id{n}", keep_until=2000, now=1000)
    assert len(seen) == 3
    assert "id0" not in seen and "id1" not in seen and "id4" in seen
    with pytest.raises(ValueError):
        ReplayCache(max_entries=0)
