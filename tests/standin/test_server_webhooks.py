"""Standard Webhooks signing/verification (webhooks.py): the scheme, tolerance and forgeries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from standin.keys.webhooks import (WebhookVerificationError, call_incoming_event,
                                          new_webhook_secret, sign, signed_headers, verify)

BODY = json.dumps(call_incoming_event("evt_1", "rtc_1", [{"name": "From", "value": "<sip:a@b>"}],
                                      1_700_000_000)).encode()


def test_signature_is_hmac_sha256_of_id_timestamp_body_with_the_decoded_secret() -> None:
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = base64.b64encode(hmac.new(key, b"evt_1.1700000000." + BODY, hashlib.sha256).digest()).decode()
    assert sign(secret, "evt_1", 1_700_000_000, BODY) == "v1," + expected


def test_verify_accepts_a_fresh_signature_among_several() -> None:
    secret = new_webhook_secret()
    headers = signed_headers(secret, "evt_1", BODY, now=1_700_000_000)
    headers["webhook-signature"] = "v1,bm90IGl0 " + headers["webhook-signature"]
    event = verify(secret, BODY, headers, now=1_700_000_000 + 299)
    assert event["data"]["call_id"] == "rtc_1" and event["type"] == "realtime.call.incoming"


@pytest.mark.parametrize("mutate", ["other secret", "stale", "future", "body", "missing", "v2"])
def test_verify_refuses_forgeries(mutate: str) -> None:
    secret = new_webhook_secret()
    now = 1_700_000_000
    headers = signed_headers(new_webhook_secret() if mutate == "other secret" else secret, "evt_1", BODY, now=now)
    body = BODY
    check_at = {"stale": now + 301, "future": now - 301}.get(mutate, now)
    if mutate == "body":
        body = BODY.replace(b"rtc_1", b"rtc_2")
    elif mutate == "missing":
        del headers["webhook-signature"]
    elif mutate == "v2":
        headers["webhook-signature"] = "v2," + headers["webhook-signature"][3:]
    with pytest.raises(WebhookVerificationError) as info:
        verify(secret, body, headers, now=check_at)
    assert secret[6:] not in str(info.value)
