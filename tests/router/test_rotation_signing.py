"""Signing during a rotation's grace period: both signatures before the expiry, only the new one from it on."""

from __future__ import annotations

import datetime as dt

from standardwebhooks.webhooks import Webhook

from cxone_eventbridge import signing
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.router.delivery import RequestTemplate

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = signing.generate_signing_secret()
EXPIRES = 1_800_000_000


def _target(previous_secret: str | None = OLD) -> IntegrationTarget:
    return IntegrationTarget.model_validate(
        {
            "name": "crm",
            "endpoint": "https://hooks.example.com/x",
            "signingSecret": NEW,
            "previousSigningSecret": {
                "secret": previous_secret,
                "expiresAt": dt.datetime.fromtimestamp(EXPIRES, dt.UTC).isoformat(),
            },
        }
    )


def test_both_signatures_until_the_expiry_then_only_the_new_one() -> None:
    """One second before the expiry the header has two v1 entries (new first); at the expiry only the new one."""
    template = RequestTemplate(_target())
    body = b'{"a":1}'
    before = template.headers("msg_1", EXPIRES - 1, body)["webhook-signature"]
    assert before == signing.signature_headers(NEW, "msg_1", EXPIRES - 1, body, also=[OLD])["webhook-signature"]
    assert before.split(" ") == [
        signing.sign(NEW, "msg_1", EXPIRES - 1, body),
        signing.sign(OLD, "msg_1", EXPIRES - 1, body),
    ]
    at = template.headers("msg_1", EXPIRES, body)["webhook-signature"]
    assert at == signing.sign(NEW, "msg_1", EXPIRES, body)


def test_either_secret_verifies_the_double_signature() -> None:
    """Our verifier and the reference one accept the two-signature header with either secret alone."""
    body = b'{"b":2}'
    headers = signing.signature_headers(NEW, "msg_2", EXPIRES - 10, body, also=[OLD])
    for secret in (OLD, NEW):
        signing.verify(secret, headers, body, now=EXPIRES - 10)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    live = signing.signature_headers(NEW, "msg_3", now, body, also=[OLD])
    assert Webhook(OLD).verify(body, live) == {"b": 2}
    assert Webhook(NEW).verify(body, live) == {"b": 2}


def test_a_previous_entry_without_its_secret_signs_once() -> None:
    """The read-back form (fingerprint only, no secret) cannot sign: one signature."""
    template = RequestTemplate(_target(previous_secret=None))
    assert " " not in template.headers("m", EXPIRES - 1, b"{}")["webhook-signature"]


def test_previous_secret_is_hidden_and_active_by_the_clock() -> None:
    """The previous secret is not in repr nor the read form; active_at follows the clock given."""
    target = _target()
    assert OLD not in repr(target)
    assert OLD not in str(target.to_wire())
    assert OLD in str(target.to_wire(reveal_secrets=True))
    previous = target.previous_signing_secret
    assert previous is not None
    assert previous.active_at(EXPIRES - 0.5)
    assert not previous.active_at(EXPIRES)
