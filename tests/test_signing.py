"""Standard Webhooks signing: the spec's known-answer vector and one test per failure mode."""

from __future__ import annotations

import time

import pytest
import standardwebhooks

from cxone_eventbridge import signing
from cxone_eventbridge.exceptions import SignatureVerificationError

# The known-answer vector published with the Standard Webhooks specification.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_known_answer_vector() -> None:
    """Our signature equals the one the specification publishes."""
    assert signing.sign(SECRET, MSG_ID, TIMESTAMP, BODY) == EXPECTED


def test_reference_package_verifies_our_signature() -> None:
    """The reference standardwebhooks package accepts the headers we produce."""
    secret = signing.generate_signing_secret()

    now = int(time.time())
    headers = signing.signature_headers(secret, "msg_1", now, b'{"a":1}')
    assert standardwebhooks.Webhook(secret).verify(b'{"a":1}', headers) == {"a": 1}


def test_verify_accepts_valid() -> None:
    """A fresh, correct signature verifies."""
    headers = signing.signature_headers(SECRET, MSG_ID, TIMESTAMP, BODY)
    signing.verify(SECRET, headers, BODY, now=TIMESTAMP + 10)


def test_verify_rejects_tampered_body() -> None:
    """A changed body fails verification."""
    headers = signing.signature_headers(SECRET, MSG_ID, TIMESTAMP, BODY)
    with pytest.raises(SignatureVerificationError, match="no matching"):
        signing.verify(SECRET, headers, BODY + b" ", now=TIMESTAMP)


def test_verify_rejects_stale_timestamp() -> None:
    """A timestamp outside the tolerance window fails, even with a correct signature."""
    headers = signing.signature_headers(SECRET, MSG_ID, TIMESTAMP, BODY)
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        signing.verify(SECRET, headers, BODY, now=TIMESTAMP + 301)


def test_verify_rejects_missing_headers() -> None:
    """Missing headers fail with a message saying so."""
    with pytest.raises(SignatureVerificationError, match="missing"):
        signing.verify(SECRET, {}, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("nope", "must start with"),
        ("whsec_!!!", "base64"),
        ("whsec_" + "QUFB", "24 to 64 bytes"),
    ],
)
def test_validate_signing_secret_rejects(secret: str, message: str) -> None:
    """Malformed secrets are refused with a reason that does not echo them."""
    with pytest.raises(ValueError, match=message) as info:
        signing.validate_signing_secret(secret)
    assert secret not in str(info.value) or secret == "whsec_"
