"""Write tests/fixtures/webhook-vectors.json: signed requests and the verdict each must get.

Deterministic (fixed secrets, ids and clock), so running it again rewrites the same file.
The secrets are published test values: never use them for a real destination.

    .venv/bin/python scripts/make_webhook_vectors.py
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from courier.signing import sign, signature_header

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "webhook-vectors.json"
NOW = 1_700_000_000  # 2023-11-14T22:13:20Z: the clock every vector is judged at
TOLERANCE = 300  # seconds
CURRENT = "whsec_" + base64.b64encode(bytes(range(32))).decode()
PREVIOUS = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
STRANGER = "whsec_" + base64.b64encode(b"not-the-destination-secret-00000").decode()
# Non-ASCII and irregular spacing: a receiver that re-serialises the JSON breaks here.
BODY = '{"type":"order.created","data":{"id":42,"customer":"Zoë","total": 19.90}}'


def _request(msg_id: str, timestamp: int, body: str, signature: str) -> dict[str, Any]:
    return {
        "headers": {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        },
        "body": body,
    }


def _vector(
    name: str,
    description: str,
    request: dict[str, Any],
    *,
    secrets: list[str],
    valid: bool,
    reason: str,
    seen_ids: tuple[str, ...] = (),
    standardwebhooks: str,
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "secrets": secrets,
        "now": NOW,
        "tolerance_s": TOLERANCE,
        "seen_ids": list(seen_ids),
        **request,
        "expected": {"valid": valid, "reason": reason},
        "standardwebhooks": standardwebhooks,
    }


def vectors() -> list[dict[str, Any]]:
    def signed(msg_id: str, ts: int, secrets: list[str], body: str = BODY) -> dict[str, Any]:
        return _request(msg_id, ts, body, signature_header(secrets, msg_id, ts, body.encode()))

    tampered = signed("msg_tampered", NOW, [CURRENT])
    tampered["body"] = BODY.replace("19.90", "0.01")
    unknown_version = _request(
        "msg_v2", NOW, BODY, "v2," + sign(CURRENT, "msg_v2", NOW, BODY.encode()).split(",")[1]
    )
    return [
        _vector("valid", "signed with the current secret, timestamp = now",
                signed("msg_valid", NOW, [CURRENT]), secrets=[CURRENT], valid=True,
                reason="ok", standardwebhooks="signature"),
        _vector("valid_at_the_past_edge", "timestamp exactly tolerance_s before now",
                signed("msg_edge_past", NOW - TOLERANCE, [CURRENT]), secrets=[CURRENT],
                valid=True, reason="ok", standardwebhooks="signature"),
        _vector("valid_at_the_future_edge", "timestamp exactly tolerance_s after now",
                signed("msg_edge_future", NOW + TOLERANCE, [CURRENT]), secrets=[CURRENT],
                valid=True, reason="ok", standardwebhooks="signature"),
        _vector("stale", "correctly signed, timestamp 301 s before now",
                signed("msg_stale", NOW - TOLERANCE - 1, [CURRENT]), secrets=[CURRENT],
                valid=False, reason="stale", standardwebhooks="reject"),
        _vector("future", "correctly signed, timestamp 301 s after now",
                signed("msg_future", NOW + TOLERANCE + 1, [CURRENT]), secrets=[CURRENT],
                valid=False, reason="future", standardwebhooks="signature"),
        _vector("tampered_body", "signed body, then one value changed in transit",
                tampered, secrets=[CURRENT], valid=False, reason="bad_signature",
                standardwebhooks="reject"),
        _vector("wrong_secret", "signed with a secret the receiver does not hold",
                signed("msg_stranger", NOW, [STRANGER]), secrets=[CURRENT], valid=False,
                reason="bad_signature", standardwebhooks="reject"),
        _vector("rotation_receiver_has_new", "during a rotation: two signatures (new "
                "first); the receiver already switched to the new secret",
                signed("msg_rot_new", NOW, [CURRENT, PREVIOUS]), secrets=[CURRENT],
                valid=True, reason="ok", standardwebhooks="signature"),
        _vector("rotation_receiver_has_old", "during a rotation: two signatures; the "
                "receiver still holds only the previous secret",
                signed("msg_rot_old", NOW, [CURRENT, PREVIOUS]), secrets=[PREVIOUS],
                valid=True, reason="ok", standardwebhooks="signature"),
        _vector("rotation_receiver_holds_both", "a receiver mid-switch holds both secrets "
                "and gets the old signature only (sent before the rotation)",
                signed("msg_rot_both", NOW, [PREVIOUS]), secrets=[CURRENT, PREVIOUS],
                valid=True, reason="ok", standardwebhooks="signature"),
        _vector("rotation_after_grace", "the grace ended: only the new secret signs; a "
                "receiver holding only the old secret must reject",
                signed("msg_rot_after", NOW, [CURRENT]), secrets=[PREVIOUS], valid=False,
                reason="bad_signature", standardwebhooks="reject"),
        _vector("replayed_id", "an authentic request whose webhook-id was already accepted "
                "inside the window (seen_ids): acknowledge, do not handle again",
                signed("msg_replayed", NOW, [CURRENT]), secrets=[CURRENT], valid=False,
                reason="replayed", seen_ids=("msg_replayed",), standardwebhooks="signature"),
        _vector("unknown_signature_version", "only a v2 signature: unknown versions are "
                "skipped, so nothing matches", unknown_version, secrets=[CURRENT],
                valid=False, reason="bad_signature", standardwebhooks="reject"),
        _vector("missing_signature", "no webhook-signature header",
                {"headers": {"webhook-id": "msg_nosig", "webhook-timestamp": str(NOW)},
                 "body": BODY}, secrets=[CURRENT], valid=False, reason="missing_headers",
                standardwebhooks="reject"),
    ]  # fmt: skip


def main() -> None:
    document = {
        "about": "courier webhook verification vectors (Standard Webhooks v1). Judge each "
        "request at `now` (unix seconds) with `tolerance_s`, after marking `seen_ids` as "
        "already accepted; the body is the exact UTF-8 bytes. See docs/receivers.md.",
        "vectors": vectors(),
    }
    OUT.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {len(document['vectors'])} vectors to {OUT}")


if __name__ == "__main__":
    main()
