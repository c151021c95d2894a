"""`verify` runs on input from the network: malformed headers give False, never an exception."""

from __future__ import annotations

import time
from typing import Any

import pytest

from driftline.alerts.subscriptions import new_secret
from driftline.alerts.webhook import sign, verify

SECRET = new_secret()
BODY = b'{"status": "firing"}'


def test_a_good_signature_verifies() -> None:
    now = int(time.time())
    header = sign(SECRET, "msg_1", now, BODY)
    assert verify(SECRET, "msg_1", str(now), BODY, header)
    assert verify(SECRET, "msg_1", str(now), BODY, f"v1,bm90LWl0 {header}")  # one of several signatures
    assert not verify(SECRET, "msg_1", str(now), BODY + b" ", header)
    assert not verify(SECRET, "msg_1", str(now - 3600), BODY, sign(SECRET, "msg_1", now - 3600, BODY))


@pytest.mark.parametrize(
    ("timestamp", "header", "secret"),
    [
        ("not-a-number", "v1,abc", SECRET),
        ("", "v1,abc", SECRET),
        ("1.5e9", "v1,abc", SECRET),
        (None, "v1,abc", SECRET),
        ("9" * 400, "v1,abc", SECRET),
        ("{now}", "v1,ünïcödé", SECRET),
        ("{now}", None, SECRET),
        ("{now}", 12345, SECRET),
        ("{now}", "v1,abc", "whsec_!!!not base64!!!"),
        ("{now}", "v1,abc", None),
    ],
)
def test_malformed_input_is_false_not_an_exception(timestamp: Any, header: Any, secret: Any) -> None:
    if timestamp == "{now}":
        timestamp = str(int(time.time()))
    assert verify(secret, "msg_1", timestamp, BODY, header) is False
